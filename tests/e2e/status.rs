//! `status` against the real controllers, through the binary and through kubectl.

use std::time::Duration;

use crate::support::{TestNs, PLUGIN};

async fn scaled_down_redis(prefix: &str) -> TestNs {
    let ns = TestNs::new(prefix).await;
    ns.ready_redis(3).await;
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=2"])
        .expect_code(0);
    ns.eventually(Duration::from_secs(30), "redis-2 gone", || async {
        let pods = ns.pods().await;
        (pods.len() == 2).then_some(())
    })
    .await;
    ns.wait_ready("redis", Duration::from_secs(30)).await;
    ns
}

#[tokio::test]
async fn status_text_and_json_show_ordinals_and_the_orphan_pvc() {
    let ns = scaled_down_redis("status").await;
    let text = ns.plugin(&["status", "redis"]).await;
    text.expect_code(0);
    let out = &text.stdout;
    assert!(
        out.contains(&format!("StatefulSet {}/redis", ns.name)),
        "{out}"
    );
    assert!(
        out.contains("Replicas:   2 desired, 2 current, 2 ready, 2 updated"),
        "{out}"
    );
    // 1.24+ servers default maxUnavailable to 1 and status shows it.
    assert!(out.contains("RollingUpdate (partition 0"), "{out}");
    assert!(out.contains("redis-0") && out.contains("redis-1"), "{out}");
    assert!(out.contains("redis-data-redis-0 Bound 10Gi"), "{out}");
    assert!(
        out.contains("1 PVC(s) outside the live ordinal range (10Gi)"),
        "{out}"
    );
    assert!(
        out.contains("redis-data-redis-2  ordinal 2  Bound"),
        "{out}"
    );

    let json = ns.plugin(&["status", "redis", "-o", "json"]).await;
    json.expect_code(0);
    let v = json.json();
    assert_eq!(v["kind"], "StatusReport");
    assert_eq!(v["replicas"]["desired"], 2);
    assert_eq!(v["replicas"]["ready"], 2);
    let ords: Vec<_> = v["ordinals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["ordinal"].as_i64().unwrap())
        .collect();
    assert_eq!(ords, [0, 1]);
    for o in v["ordinals"].as_array().unwrap() {
        assert_eq!(o["phase"], "Running");
        assert_eq!(o["ready"], true);
        assert_eq!(o["revision"], "current");
        assert_eq!(o["images"][0], "redis:7.2-alpine");
        // sim-kubelet's nodes; the real scheduler (current server) spreads the pods.
        assert!(o["node"].as_str().unwrap().starts_with("sim-node-"), "{o}");
        assert_eq!(o["pvcs"][0]["phase"], "Bound");
    }
    assert_eq!(v["orphanPvcs"][0]["name"], "redis-data-redis-2");
    assert_eq!(v["orphanPvcs"][0]["ordinal"], 2);
    assert_eq!(v["orphanPvcs"].as_array().unwrap().len(), 1);

    let yaml = ns.plugin(&["status", "redis", "-o", "yaml"]).await;
    yaml.expect_code(0);
    let y: serde_json::Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    // Two runs a moment apart: ages may have moved on by a second.
    let without_ages = |mut doc: serde_json::Value| {
        for list in ["ordinals", "orphanPvcs"] {
            for item in doc[list].as_array_mut().into_iter().flatten() {
                item["ageSeconds"] = serde_json::Value::Null;
            }
        }
        doc
    };
    assert_eq!(
        without_ages(y),
        without_ages(v.clone()),
        "yaml and json carry the same structure"
    );
}

#[tokio::test]
async fn kubectl_discovers_the_plugin() {
    let ns = TestNs::new("discovery").await;
    ns.ready_redis(1).await;
    let dir = std::path::Path::new(PLUGIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", crate::support::kubeconfig())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let help = run(&["sts-safe", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for cmd in [
        "status",
        "doctor",
        "canary",
        "rollback",
        "scale",
        "prune-pvcs",
        "completion",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from help:\n{help}");
    }
    let status = run(&["sts-safe", "status", "redis", "-n", &ns.name]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("1 desired, 1 current, 1 ready"));
    let list = run(&["plugin", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("kubectl-sts_safe"));
}

#[tokio::test]
async fn limited_context_gets_a_clear_403() {
    let ns = TestNs::new("forbidden").await;
    ns.ready_redis(1).await;
    let r = ns.plugin_as("sts-safe-limited", &["status", "redis"]).await;
    r.expect_code(1)
        .expect_one_error_line("forbidden: user \"sts-safe-limited\" cannot get statefulsets");
    assert!(r.stderr.contains(&format!("namespace \"{}\"", ns.name)));
    // With deploy/rbac.yaml bound, the same identity can read it.
    ns.grant_limited_user().await;
    let ok = ns
        .plugin_as("sts-safe-limited", &["status", "redis", "-o", "json"])
        .await;
    ok.expect_code(0);
    assert_eq!(ok.json()["replicas"]["ready"], 1);
}

#[tokio::test]
async fn watch_re_renders_on_change() {
    use tokio::io::AsyncReadExt;
    let ns = TestNs::new("status-watch").await;
    ns.ready_redis(1).await;
    let mut child = ns
        .plugin_command(&["status", "redis", "--watch", "-o", "json"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let reports = |text: &str| -> Vec<serde_json::Value> {
        serde_json::Deserializer::from_str(text)
            .into_iter::<serde_json::Value>()
            .filter_map(Result::ok)
            .collect()
    };
    let mut scaled = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = tokio::time::timeout(Duration::from_secs(1), stdout.read(&mut buf))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        let seen = reports(&text);
        if !scaled && !seen.is_empty() {
            assert_eq!(seen[0]["replicas"]["ready"], 1);
            ns.kubectl(&["scale", "statefulset", "redis", "--replicas=2"])
                .expect_code(0);
            scaled = true;
        }
        if seen.iter().any(|r| r["replicas"]["ready"] == 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no re-render with 2 ready replicas:\n{text}"
        );
    }
    child.kill().await.unwrap();
}
