//! Fault family 9, the metric gate's Prometheus going away mid-canary: the gate fails
//! with the server's error (it never passes silently), the partition stays where it was,
//! and a re-run with Prometheus back resumes the canary to the end.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sts_safe::model;

use super::{expect_code, finish, plugin, plugin_cmd};
use crate::metrics::current::{gate_args, prometheus, release};
use crate::support::{kubeconfig, TestNs};

/// `scripts/cluster.sh prometheus-stop|prometheus-start` for the cluster under test.
fn prometheus_ctl(what: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = kubeconfig()
        .parent()
        .expect("kubeconfig in the cluster state dir")
        .to_path_buf();
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/cluster.sh"))
        .arg(what)
        .env("STS_SAFE_CLUSTER_DIR", &state)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/cluster.sh");
    assert!(
        out.status.success(),
        "scripts/cluster.sh {what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts Prometheus again however the test ends: the other tests need it.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        prometheus_ctl("prometheus-start");
    }
}

#[tokio::test]
async fn prometheus_stopped_mid_canary_fails_the_gate() {
    let ns = TestNs::new("fault-prom").await;
    ns.ready_redis(3).await;
    let prom = prometheus();
    let patch = release(&ns, "healthy");
    let patch = patch.to_str().unwrap();
    // A long soak keeps redis-2 in its gate, evaluated every second, when the server goes.
    let args = gate_args(&prom, patch, &["--soak", "60s"]);
    let child = plugin_cmd(&ns, "sts-safe-admin", &args)
        .spawn()
        .expect("start the plugin");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = ns.pods().await;
        let sts = ns.sts("redis").await;
        let update = model::update_revision(&sts).map(str::to_string);
        let ready_new = pods.iter().any(|p| {
            kube::ResourceExt::name_any(p) == "redis-2"
                && model::revision(p) == update.as_deref()
                && model::is_available(p)
        });
        if ready_new && model::partition(&sts) == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis-2 never became Ready on the new revision"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few evaluations pass first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restart = Restart;
    let stopped = Instant::now();
    prometheus_ctl("prometheus-stop");
    let r = finish(child, &args).await;
    let reacted = stopped.elapsed();
    expect_code(&r, 3, "the gate with Prometheus stopped");
    let report = r.json();
    let failure = &report["failure"];
    assert_eq!(failure["pod"], "redis-2", "{report}");
    let reason = failure["reason"].as_str().unwrap();
    assert!(
        reason.contains("could not be evaluated") && reason.contains(&prom),
        "{reason}"
    );
    assert!(failure["metric"]["error"].as_str().is_some(), "{failure}");
    assert!(
        reacted < Duration::from_secs(15),
        "the gate failed {reacted:?} after the stop"
    );
    assert_eq!(
        model::partition(&ns.sts("redis").await),
        2,
        "nothing more exposed"
    );

    // Prometheus back: the same gate resumes the canary (soak short now) to the end.
    drop(restart);
    let resumed = plugin(
        &ns,
        "sts-safe-admin",
        &[
            "canary",
            "redis",
            "--resume",
            "--soak",
            "0s",
            "--metric-passes",
            "2",
            "--yes",
        ],
    )
    .await;
    expect_code(&resumed, 0, "the resumed canary");
    let sts = ns.wait_ready("redis", Duration::from_secs(60)).await;
    assert_eq!(model::partition(&sts), 0);
    assert_eq!(model::current_revision(&sts), model::update_revision(&sts));
}
