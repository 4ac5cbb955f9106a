//! Fault family 2, kube-apiserver restarts (`scripts/cluster.sh restart-apiserver`)
//! mid-canary and mid-scale, with the isolation and the lock that keep them from breaking
//! other tests (see the module comment of [`super`]).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use rand::Rng;
use sts_safe::model;

use super::*;
use crate::support::{
    audit_is_write, audit_received, images_of, kubeconfig, plugin_audit_events, template_of, Check,
    Recorder, Run, TestNs,
};

/// Serialises restart tests of different test processes on this machine.
async fn restart_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("sts-safe-fault-apiserver-restart.lock");
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.lock().expect("lock the restart lock file");
        f
    })
    .await
    .unwrap()
}

/// Other tests' namespaces that are in use now (see the module comment).
async fn busy_namespaces(ns: &TestNs) -> Vec<String> {
    let api: Api<Namespace> = Api::all(ns.client.clone());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return vec!["(cannot list namespaces)".into()];
    };
    let now = SystemTime::now();
    list.items
        .into_iter()
        .filter(|n| {
            let name = n.name_any();
            let active = n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active");
            let young = n.creation_timestamp().is_some_and(|t| {
                let created = UNIX_EPOCH + Duration::from_secs(t.0.as_second().max(0) as u64);
                now.duration_since(created).unwrap_or_default() < Duration::from_secs(1800)
            });
            name.starts_with("t-")
                && !name.starts_with("t-fault-restart-")
                && name != ns.name
                && active
                && young
        })
        .map(|n| n.name_any())
        .collect()
}

/// Plugin processes (`kubectl-sts_safe`, e.g. a benchmark or a demo) that this test
/// process did not start, talking to this cluster (their $KUBECONFIG is ours or unset:
/// `make test` runs the 1.20 floor's suite beside this one). Only reads /proc.
fn foreign_plugin_processes() -> Vec<String> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv0 = cmdline.split(|b| *b == 0).next()?;
            let exe = String::from_utf8_lossy(argv0);
            if Path::new(exe.as_ref()).file_name()? != "kubectl-sts_safe" {
                return None;
            }
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            if ppid == me || on_another_cluster(pid) {
                return None;
            }
            Some(format!("pid {pid} ({exe})"))
        })
        .collect()
}

/// The process's $KUBECONFIG names another file than this test's (a process whose
/// environment cannot be read counts as on this cluster).
fn on_another_cluster(pid: u32) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let ours = crate::support::kubeconfig();
    environ
        .split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(b"KUBECONFIG="))
        .any(|k| Path::new(String::from_utf8_lossy(k).as_ref()) != ours)
}

/// Waits until no other test has a namespace, and no plugin process this test did not
/// start runs, for `quiet` in a row.
async fn wait_until_alone(ns: &TestNs, quiet: Duration) {
    let start = Instant::now();
    let mut quiet_since: Option<Instant> = None;
    let mut said = false;
    loop {
        let mut busy = busy_namespaces(ns).await;
        busy.extend(foreign_plugin_processes());
        if busy.is_empty() {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= quiet {
                if said {
                    eprintln!(
                        "apiserver restarts: alone after {:.0}s",
                        start.elapsed().as_secs_f64()
                    );
                }
                return;
            }
        } else {
            quiet_since = None;
            if !said {
                eprintln!("apiserver restarts: waiting for other tests to finish first: {busy:?}");
                said = true;
            }
            if start.elapsed() > Duration::from_secs(1800) {
                panic!("other tests kept running for 30 min ({busy:?}); the apiserver restarts need the cluster to themselves");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn restart_apiserver() -> Duration {
    restart_apiserver_down(0).await
}

/// Stops kube-apiserver, keeps it down `down_secs`, starts it again.
async fn restart_apiserver_down(down_secs: u64) -> Duration {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = kubeconfig()
        .parent()
        .expect("kubeconfig in the cluster state dir")
        .to_path_buf();
    let started = Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg(root.join("scripts/cluster.sh"))
        .arg("restart-apiserver")
        .arg(down_secs.to_string())
        .env("STS_SAFE_CLUSTER_DIR", &state)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run scripts/cluster.sh");
    assert!(
        out.status.success(),
        "scripts/cluster.sh restart-apiserver failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Numbers that follow "partition " in `line`.
fn partitions_named(line: &str) -> Vec<i32> {
    line.match_indices("partition ")
        .filter_map(|(i, m)| {
            let rest = &line[i + m.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Judges how a run interrupted by an apiserver restart ended; returns problems.
fn judge_restart_exit(r: &Run, hint: &str, sts: &StatefulSet) -> Vec<String> {
    if r.code == 0 {
        return vec![];
    }
    let last = last_line(&r.stderr);
    let mut problems = vec![];
    if !last.starts_with("error: ") {
        problems.push(format!("exit {} without an error line: {last:?}", r.code));
    }
    if !last.contains(hint) {
        problems.push(format!(
            "exit {} without the command to continue ({hint:?}): {last}",
            r.code
        ));
    }
    let actual = model::partition(sts);
    for p in partitions_named(last) {
        if p != actual {
            problems.push(format!(
                "the message names partition {p} but the StatefulSet has partition {actual}: {last}"
            ));
        }
    }
    problems
}

#[tokio::test]
async fn apiserver_restarts_mid_canary_and_mid_scale() {
    let _lock = restart_lock().await;
    let ns = TestNs::new("fault-restart").await;
    wait_until_alone(&ns, Duration::from_secs(3)).await;
    let mut rng = seeded("apiserver restarts", restart_trials());
    ns.ready_redis(3).await;
    let total = restart_trials();
    let mut problems: Vec<String> = vec![];
    let mut outcomes: Vec<String> = vec![];
    let mut hit = 0;
    for i in 0..total {
        let rec = Recorder::start(&ns).await;
        let before = get_sts(&ns, "redis").await;
        let scale = i % 3 == 2;
        let (args, want_template, hint): (Vec<String>, serde_json::Value, &str) = if scale {
            let to = if model::replicas(&before) == 3 { 5 } else { 3 };
            let args = [
                "scale",
                "redis",
                "--replicas",
                &to.to_string(),
                "--soak",
                "1s",
                "--yes",
            ];
            (
                args.iter().map(|s| s.to_string()).collect(),
                template_of(&before),
                "sts-safe scale redis",
            )
        } else {
            // Even trials soak (a step can pass, and write, while the apiserver is away);
            // odd ones wait for pods that become Ready 1 s after they start.
            let image = if i % 2 == 0 {
                format!("redis:r{i}-alpine")
            } else {
                format!("redis:r{i}-ready-after-1s")
            };
            let mut args = vec![
                "canary".to_string(),
                "redis".into(),
                "--image".into(),
                image.clone(),
                "--yes".into(),
            ];
            if i % 2 == 0 {
                args.extend(["--soak".to_string(), "2s".into()]);
            }
            (args, with_image(&template_of(&before), &image), "--resume")
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = plugin_cmd(&ns, ADMIN, &argv).spawn().unwrap();
        let delay = if scale {
            rng.random_range(200..2500)
        } else {
            rng.random_range(300..4000)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        wait_until_alone(&ns, Duration::ZERO).await;
        if child.try_wait().unwrap().is_none() {
            hit += 1;
        }
        let took = restart_apiserver().await;
        let run = finish(child, &argv).await;
        let after = get_sts(&ns, "redis").await;
        let what = format!(
            "restart trial {i} ({}, restart after {delay} ms, apiserver back after {:.1}s)",
            argv[0],
            took.as_secs_f64()
        );
        let mut found = judge_restart_exit(&run, hint, &after);
        // Exit 0 means the plugin's part is done: nothing left for a re-run to do.
        if run.code == 0 {
            let done = if scale {
                after.spec.replicas.map(|r| r.to_string()).as_deref() == Some(argv[3])
            } else {
                images_of(&template_of(&after)) == [argv[3]] && model::partition(&after) == 0
            };
            if !done {
                found.push(format!(
                    "exit 0 but the run is not complete: replicas {:?}, partition {}, images {:?}",
                    after.spec.replicas,
                    model::partition(&after),
                    images_of(&template_of(&after))
                ));
            }
        }
        outcomes.push(format!(
            "{what}: exit {}{}",
            run.code,
            if run.code == 0 {
                String::new()
            } else {
                format!(": {}", last_line(&run.stderr))
            }
        ));
        problems.extend(found.into_iter().map(|p| format!("{what}: {p}")));

        // Continue as the message says (or as an operator would), until done.
        if scale {
            let to = argv[3];
            // A run that ended while the API server was away could not give its lock
            // back: the re-run waits until it runs out.
            let r =
                plugin_after_lock(&ns, ADMIN, &["scale", "redis", "--replicas", to, "--yes"]).await;
            expect_code(&r, 0, &format!("{what}: re-run of the scale"));
            let sts = ns.wait_ready("redis", WAIT).await;
            assert_eq!(sts.spec.replicas, Some(to.parse().unwrap()), "{what}");
            assert_eq!(
                template_of(&sts),
                want_template,
                "{what}: template untouched"
            );
        } else {
            let image = argv[3];
            let runs = complete_canary(&ns, image, true).await;
            expect_all_ok(&runs, &what);
            expect_converged(&ns, &want_template, &what).await;
        }
        rec.caught_up().await;
        let check = Check {
            sts: "redis",
            step: 1,
            rollback_to: vec![],
        };
        let f = rec.analyse(&check);
        f.assert_safe(&check, &what);
        if let Some(o) = outcomes.last_mut() {
            o.push_str(&format!(
                " (recording watch: {} error(s) while away)",
                f.watch_errors
            ));
        }
    }
    eprintln!("apiserver restarts:\n  {}", outcomes.join("\n  "));
    assert!(
        hit * 2 >= total,
        "only {hit} of {total} restarts happened while the plugin ran"
    );
    assert!(
        problems.is_empty(),
        "runs interrupted by an apiserver restart must complete, or exit with one clear line that \
         names the command to continue and matches the cluster:\n  {}",
        problems.join("\n  ")
    );
}

/// The plugin's writes in `namespace`: (time received, verb, resource, response code).
fn plugin_writes(namespace: &str) -> Vec<(k8s_openapi::jiff::Timestamp, String, String, String)> {
    plugin_audit_events(namespace)
        .into_iter()
        .filter(audit_is_write)
        .filter_map(|e| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            let code = e["responseStatus"]["code"].to_string();
            Some((
                audit_received(&e)?,
                s(&e["verb"]),
                s(&e["objectRef"]["resource"]),
                code,
            ))
        })
        .collect()
}

/// The API server goes away for longer than the lease during a canary: the run stops
/// before its next write (exit 3, the resume hint), and the audit log shows no write of
/// it after its lease ran out; `--resume` then takes the lock over and completes.
#[tokio::test]
async fn apiserver_down_longer_than_the_lease_stops_the_canary_writing() {
    let _lock = restart_lock().await;
    let ns = TestNs::new("fault-restart-lease").await;
    use_short_lease(&ns);
    wait_until_alone(&ns, Duration::from_secs(3)).await;
    ns.ready_redis(3).await;
    let image = "redis:l1-alpine";
    let args = ["canary", "redis", "--image", image, "--soak", "3s", "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    // Down once the first step is under way: the lease (3 s) runs out while it is away.
    wait_partition(&ns, 2).await;
    restart_apiserver_down(8).await;
    let out = finish(child, &args).await;
    assert_eq!(
        out.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr
            .contains("lost the lock of statefulset \"redis\"")
            && out.stderr.contains("--resume"),
        "{}",
        out.stderr
    );
    let writes = plugin_writes(&ns.name);
    let last_renewal = writes
        .iter()
        .filter(|w| w.2 == "leases" && matches!(w.1.as_str(), "create" | "update"))
        .map(|w| w.0)
        .max()
        .expect("the canary's lease writes are in the audit log");
    let expiry = last_renewal + std::time::Duration::from_secs(3);
    let late: Vec<_> = writes.iter().filter(|w| w.0 > expiry).collect();
    assert!(
        late.is_empty(),
        "writes after the lease ran out at {expiry}: {late:?}"
    );
    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "after the outage");
    assert!(
        runs.first()
            .is_some_and(|r| r.stderr.contains("taking over the lock")),
        "{:?}",
        runs.first().map(|r| &r.stderr)
    );
}

/// An API-server restart while resize-pvcs grows its claims: the run completes, or exits
/// with one clear line naming the command that finishes it; then a re-run does, no pod
/// deleted.
#[tokio::test]
async fn apiserver_restart_mid_resize_completes_or_names_the_resume() {
    let _lock = restart_lock().await;
    let ns = TestNs::new("fault-restart-resize").await;
    use_short_lease(&ns);
    wait_until_alone(&ns, Duration::from_secs(3)).await;
    crate::support::ensure_slow_resize_class(&ns.client, "sim-slow-resize", "1s").await;
    ns.ready_redis_in_class(3, "sim-slow-resize").await;
    let pods = super::resize::pod_uids(&ns).await;
    let args = ["resize-pvcs", "redis", "--size", "20Gi", "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    super::resize::wait_requested(&ns, "redis-data-redis-2", "20Gi").await;
    restart_apiserver().await;
    let out = finish(child, &args).await;
    if out.code != 0 {
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert!(
            errors.len() == 1
                && errors[0].contains("resize-pvcs redis")
                && errors[0].contains("to finish it"),
            "one clear line naming the command that finishes it:\n{}",
            out.stderr
        );
    }
    eprintln!(
        "resize across an apiserver restart: exit {} {}",
        out.code,
        last_line(&out.stderr)
    );
    let rerun = plugin_after_lock(&ns, ADMIN, &args).await;
    expect_code(&rerun, 0, "the re-run after the restart");
    super::resize::expect_resized(&ns, "20Gi", &pods, "after the restart").await;
    assert_eq!(crate::support::pod_deletes(&ns.name), Vec::<String>::new());
}
