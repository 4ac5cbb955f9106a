//! `prune-pvcs` against the real controllers: scale-down orphans and their PVs, a PVC
//! mounted by a standalone pod, look-alike names, a scale-up between the prompt and the
//! answer (driven through a pseudo-terminal), a StatefulSet scaled to 0, a deleted
//! StatefulSet, --dry-run and -A.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::ResourceExt;

use crate::support::{
    audit_received, kubeconfig, plugin_audit_events, redis_scaled, Pty, Run, TestNs, PLUGIN,
};

const WAIT: Duration = Duration::from_secs(60);

fn redis_pvcs(ordinals: impl IntoIterator<Item = i32>) -> Vec<String> {
    ordinals
        .into_iter()
        .map(|o| format!("redis-data-redis-{o}"))
        .collect()
}

async fn wait_pvcs(ns: &TestNs, want: &[String]) {
    ns.eventually(WAIT, &format!("PVCs to be exactly {want:?}"), || async {
        (ns.pvc_names().await == want).then_some(())
    })
    .await;
}

fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect();
    n.sort();
    n
}

fn uids(pvcs: &[PersistentVolumeClaim]) -> BTreeMap<String, String> {
    pvcs.iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

// ---- the audit log: what the plugin asked the API server -----------------------------------

/// The plugin's requests about objects in `namespace` received in [from, to]:
/// (verb, resource, requestURI).
fn audited(namespace: &str, from: Timestamp, to: Timestamp) -> Vec<(String, String, String)> {
    plugin_audit_events(namespace)
        .into_iter()
        .filter(|e| audit_received(e).is_some_and(|t| t >= from && t <= to))
        .map(|e| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&e["verb"]),
                s(&e["objectRef"]["resource"]),
                s(&e["requestURI"]),
            )
        })
        .collect()
}

/// The terminal session's exit code and screen (stdout and stderr together).
async fn finished(pty: Pty) -> Run {
    let (code, screen) = pty.wait().await;
    Run {
        code,
        stdout: screen.replace('\r', ""),
        stderr: String::new(),
    }
}

// ---- tests -----------------------------------------------------------------------------

#[tokio::test]
async fn scale_down_orphans_are_deleted_with_their_pvs_after_dry_runs_and_a_refusal() {
    let ns = redis_scaled("prune-redis", 5, 2).await;
    let before = uids(&ns.pvcs().await);
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), redis_pvcs(0..5));

    // --dry-run: the plan as a table; one paginated list per kind, no request per PVC.
    let from = Timestamp::now();
    let dry = ns.plugin(&["prune-pvcs", "redis", "--dry-run"]).await;
    let to = Timestamp::now();
    dry.expect_code(0);
    let out = &dry.stdout;
    assert!(
        out.contains(&format!(
            "PVCs orphaned by scale-down of StatefulSet {}/redis:",
            ns.name
        )),
        "{out}"
    );
    assert!(
        out.contains("PVC                 STATEFULSET  ORDINAL  CAPACITY  STORAGECLASS"),
        "{out}"
    );
    for o in 2..5 {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("redis-data-redis-{o} ")))
            .expect(out);
        assert!(
            row.contains(&format!("redis        {o}        10Gi      gp3-encrypted")),
            "{row}"
        );
        assert!(
            row.contains("Delete: the data is destroyed") && row.ends_with("Bound"),
            "{row}"
        );
    }
    assert!(
        !out.contains("redis-data-redis-0") && !out.contains("redis-data-redis-1"),
        "{out}"
    );
    assert!(out.contains("Total: 3 PVC(s), 30Gi"), "{out}");
    let requests = audited(&ns.name, from, to);
    let count = |verb: &str, res: &str| {
        requests
            .iter()
            .filter(|r| r.0 == verb && r.1 == res)
            .count()
    };
    assert_eq!(count("list", "statefulsets"), 1, "{requests:#?}");
    assert_eq!(count("list", "pods"), 1, "{requests:#?}");
    assert_eq!(count("list", "persistentvolumeclaims"), 1, "{requests:#?}");
    assert_eq!(count("get", "persistentvolumeclaims"), 0, "{requests:#?}");
    assert!(
        requests
            .iter()
            .filter(|r| r.0 == "list")
            .all(|r| r.2.contains("limit=500")),
        "{requests:#?}"
    );

    // -o json: the same plan as data.
    let plan = ns.plugin(&["prune-pvcs", "--dry-run", "-o", "json"]).await;
    plan.expect_code(0);
    let plan = plan.json();
    assert_eq!(
        (plan["apiVersion"].as_str(), plan["kind"].as_str()),
        (Some("sts-safe/v1"), Some("PrunePlan"))
    );
    assert_eq!(names(&plan["pvcs"]), redis_pvcs(2..5));
    assert_eq!(plan["total"]["capacity"], "30Gi");
    let volumes: Vec<String> = plan["pvcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["statefulset"], "redis");
            assert_eq!(e["reclaimPolicy"], "Delete");
            assert_eq!(e["phase"], "Bound");
            assert_eq!(
                e["uid"].as_str(),
                before.get(e["name"].as_str().unwrap()).map(String::as_str)
            );
            e["volume"].as_str().expect("bound PV").to_string()
        })
        .collect();

    // --dry-run=server: every delete validated by the API server, nothing deleted.
    let server = ns
        .plugin(&["prune-pvcs", "redis", "--dry-run=server", "-o", "json"])
        .await;
    server.expect_code(0);
    let report = server.json();
    assert_eq!(report["kind"], "PruneReport");
    assert_eq!(report["dryRun"], "server");
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "validated"),
        "{report}"
    );
    assert_eq!(report["results"].as_array().unwrap().len(), 3);

    // No terminal and no --yes: refused at once, nothing deleted.
    let refused = ns.plugin(&["prune-pvcs", "redis"]).await;
    refused.expect_code(3);
    assert!(
        refused
            .stderr
            .contains("refusing to proceed without confirmation"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        uids(&ns.pvcs().await),
        before,
        "dry runs and the refusal deleted nothing"
    );

    // --yes: exactly ordinals 2, 3, 4 go, highest first; 0 and 1 are untouched.
    let run = ns.plugin(&["prune-pvcs", "redis", "--yes"]).await;
    run.expect_code(0);
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("deleted "))
        .collect();
    assert_eq!(
        lines,
        [
            "deleted redis-data-redis-4",
            "deleted redis-data-redis-3",
            "deleted redis-data-redis-2"
        ],
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Deleted 3 PVC(s) (30Gi)."),
        "{}",
        run.stdout
    );
    wait_pvcs(&ns, &redis_pvcs(0..2)).await;
    let after = uids(&ns.pvcs().await);
    assert_eq!(
        after.get("redis-data-redis-0"),
        before.get("redis-data-redis-0")
    );
    assert_eq!(
        after.get("redis-data-redis-1"),
        before.get("redis-data-redis-1")
    );
    // Reclaim policy Delete: the PVs go too.
    let pvs: Api<PersistentVolume> = Api::all(ns.client.clone());
    for v in &volumes {
        ns.eventually(WAIT, &format!("PV {v} deleted"), || async {
            pvs.get_opt(v).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    ns.wait_ready("redis", WAIT).await;

    let again = ns.plugin(&["prune-pvcs", "redis", "--yes"]).await;
    again.expect_code(0);
    assert!(
        again.stdout.contains("No PVC orphaned by scale-down"),
        "{}",
        again.stdout
    );
}

#[tokio::test]
async fn a_pvc_mounted_by_a_standalone_pod_is_kept() {
    let ns = redis_scaled("prune-mounted", 3, 1).await;
    ns.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers: [{name: sh, image: busybox:1.36}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: redis-data-redis-2}}]
"#,
    )
    .await;
    let run = ns.plugin(&["prune-pvcs", "--yes", "-o", "json"]).await;
    run.expect_code(0);
    let report = run.json();
    assert_eq!(names(&report["results"]), redis_pvcs([1]));
    assert_eq!(report["results"][0]["result"], "deleted");
    let kept = &report["plan"]["skipped"];
    assert_eq!(names(kept), redis_pvcs([2]));
    assert_eq!(kept[0]["code"], "mounted");
    assert_eq!(kept[0]["reason"], "mounted by pod \"debug\"");
    wait_pvcs(&ns, &redis_pvcs([0, 2])).await;

    let text = ns.plugin(&["prune-pvcs", "--dry-run"]).await;
    text.expect_code(0);
    assert!(
        text.stdout.contains(
            "redis-data-redis-2 (StatefulSet redis, ordinal 2): mounted by pod \"debug\""
        ),
        "{}",
        text.stdout
    );
}

const LOOK_ALIKES: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 2
  serviceName: web
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  - metadata: {name: data-web}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web-1}
spec:
  replicas: 1
  serviceName: web-1
  selector: {matchLabels: {app: web-1}}
  template:
    metadata: {labels: {app: web-1}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db3}
spec:
  replicas: 1
  serviceName: db3
  selector: {matchLabels: {app: db3}}
  template:
    metadata: {labels: {app: db3}}
    spec: {containers: [{name: db, image: postgres:16}]}
  volumeClaimTemplates:
  - metadata: {name: vol2}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;

fn pvc_yaml(name: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n\
         spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"
    )
}

/// Waits until every PVC of the namespace is Bound: the PV controller's last write, so
/// that the plan's resourceVersions stay valid.
async fn wait_all_bound(ns: &TestNs) {
    ns.eventually(WAIT, "every PVC Bound", || async {
        let pvcs = ns.pvcs().await;
        pvcs.iter()
            .all(|p| sts_safe::model::pvc_phase(p) == "Bound")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn look_alike_names_are_never_cross_attributed() {
    let ns = TestNs::new("prune-names").await;
    ns.apply(LOOK_ALIKES).await;
    // Left-overs of earlier scale-downs, as the controller would have named them.
    let leftovers = [
        ("data-web-3", "app: web"),
        ("data-web-web-2", "app: web"),
        ("data-web-1-4", "app: web-1"),
        ("vol2-db3-10", "app: db3"),
    ];
    let yaml: String = leftovers.iter().map(|(n, l)| pvc_yaml(n, l)).collect();
    ns.apply(&yaml).await;
    for s in ["web", "web-1", "db3"] {
        ns.wait_ready(s, WAIT).await;
    }
    wait_all_bound(&ns).await;
    let live = [
        "data-web-0",
        "data-web-1",
        "data-web-1-0",
        "data-web-web-0",
        "data-web-web-1",
        "vol2-db3-0",
    ];

    let plan = ns.plugin(&["prune-pvcs", "--dry-run", "-o", "json"]).await;
    plan.expect_code(0);
    let plan = plan.json();
    let got: Vec<(String, String, String, i64)> = plan["pvcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (
                s("name"),
                s("statefulset"),
                s("template"),
                e["ordinal"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("vol2-db3-10", "db3", "vol2", 10),
        ("data-web-3", "web", "data", 3),
        ("data-web-web-2", "web", "data-web", 2),
        ("data-web-1-4", "web-1", "data", 4),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), *d))
        .collect();
    assert_eq!(got, want);
    assert!(plan["skipped"].as_array().unwrap().is_empty(), "{plan}");

    // Restricted to web-1: only its own claim, though every web-1 name starts with "web".
    let web1 = ns
        .plugin(&["prune-pvcs", "web-1", "--dry-run", "-o", "json"])
        .await
        .json();
    assert_eq!(names(&web1["pvcs"]), ["data-web-1-4"]);

    ns.plugin(&["prune-pvcs", "--yes"]).await.expect_code(0);
    let mut remaining: Vec<String> = live.iter().map(|s| s.to_string()).collect();
    remaining.sort();
    wait_pvcs(&ns, &remaining).await;
}

#[tokio::test]
async fn a_scale_up_between_the_prompt_and_the_answer_keeps_that_pvc() {
    let ns = redis_scaled("prune-race", 5, 2).await;
    let before = uids(&ns.pvcs().await);
    let mut pty = Pty::spawn(&ns, &["prune-pvcs", "redis"]);
    pty.expect("Delete 3 PVC(s), 30Gi in total", WAIT).await;
    // The plan is made; scale up before answering.
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=3"])
        .expect_code(0);
    pty.send("y").await;
    let run = finished(pty).await;
    run.expect_code(3);
    let out = &run.stdout;
    assert!(out.contains("deleted redis-data-redis-4"), "{out}");
    assert!(out.contains("deleted redis-data-redis-3"), "{out}");
    assert!(
        out.contains(
            "skipped redis-data-redis-2: StatefulSet \"redis\" scaled up to 3 since the plan: ordinal 2 is live again"
        ),
        "{out}"
    );
    assert!(out.contains("Deleted 2 PVC(s) (20Gi), 1 skipped."), "{out}");
    wait_pvcs(&ns, &redis_pvcs(0..3)).await;
    let sts = ns.wait_ready("redis", WAIT).await;
    assert_eq!(sts.spec.replicas, Some(3));
    // redis-2 came back on its old disk.
    let after = uids(&ns.pvcs().await);
    assert_eq!(
        after.get("redis-data-redis-2"),
        before.get("redis-data-redis-2")
    );
}

#[tokio::test]
async fn a_statefulset_scaled_to_zero_is_skipped_unless_asked() {
    let ns = redis_scaled("prune-zero", 2, 0).await;
    let before = ns.pvc_names().await;
    assert_eq!(before, redis_pvcs(0..2));
    let run = ns.plugin(&["prune-pvcs", "--yes"]).await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("No PVC orphaned by scale-down"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("StatefulSet redis is scaled to 0: skipped, its 2 PVC(s) are kept (use --include-scaled-to-zero)"),
        "{}",
        run.stdout
    );
    let named = ns
        .plugin(&["prune-pvcs", "redis", "--yes", "-o", "json"])
        .await;
    named.expect_code(0);
    assert!(named.json()["results"].as_array().unwrap().is_empty());
    let asked = ns
        .plugin(&[
            "prune-pvcs",
            "--include-scaled-to-zero",
            "--dry-run",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(names(&asked["pvcs"]), redis_pvcs(0..2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ns.pvc_names().await, before, "nothing deleted");
}

#[tokio::test]
async fn claims_of_a_deleted_statefulset_need_include_deleted_and_their_own_confirmation() {
    let ns = TestNs::new("prune-gone").await;
    ns.ready_redis(2).await;
    ns.kubectl(&["delete", "statefulset", "redis", "--cascade=orphan"])
        .expect_code(0);
    // The orphaned pods still mount the claims: nothing to propose yet.
    let mounted = ns
        .plugin(&["prune-pvcs", "--include-deleted", "--dry-run", "-o", "json"])
        .await
        .json();
    assert!(mounted["gone"].as_array().unwrap().is_empty(), "{mounted}");
    ns.kubectl(&["delete", "pod", "-l", "app=redis", "--wait=true"])
        .expect_code(0);
    ns.eventually(WAIT, "orphaned pods gone", || async {
        ns.pods().await.is_empty().then_some(())
    })
    .await;

    let plain = ns
        .plugin(&["prune-pvcs", "--dry-run", "-o", "json"])
        .await
        .json();
    assert!(
        plain["pvcs"].as_array().unwrap().is_empty()
            && plain["gone"].as_array().unwrap().is_empty(),
        "{plain}"
    );
    let missing = ns.plugin(&["prune-pvcs", "redis", "--dry-run"]).await;
    missing
        .expect_code(1)
        .expect_one_error_line("statefulset \"redis\" not found");

    let text = ns
        .plugin(&["prune-pvcs", "--include-deleted", "--dry-run"])
        .await;
    text.expect_code(0);
    assert!(
        text.stdout.contains("No PVC orphaned by scale-down"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("StatefulSet gone: PVCs of StatefulSets that no longer exist"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("redis-data-redis-0  redis-data-redis  0"),
        "{}",
        text.stdout
    );
    let named = ns
        .plugin(&[
            "prune-pvcs",
            "redis",
            "--include-deleted",
            "--dry-run",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(names(&named["gone"]), redis_pvcs(0..2));
    assert_eq!(named["goneTotal"]["capacity"], "20Gi");

    let refused = ns.plugin(&["prune-pvcs", "--include-deleted"]).await;
    refused.expect_code(3);
    assert_eq!(
        ns.pvc_names().await,
        redis_pvcs(0..2),
        "refused: nothing deleted"
    );

    // Through a terminal: the group has its own question; "no" keeps it.
    let mut pty = Pty::spawn(&ns, &["prune-pvcs", "--include-deleted"]);
    pty.expect("Delete 2 \"StatefulSet gone\" PVC(s), 20Gi in total", WAIT)
        .await;
    pty.send("n").await;
    let declined = finished(pty).await;
    declined.expect_code(3);
    assert!(
        declined
            .stdout
            .contains("not confirmed; nothing was changed"),
        "{}",
        declined.stdout
    );
    assert_eq!(ns.pvc_names().await, redis_pvcs(0..2));

    let run = ns
        .plugin(&["prune-pvcs", "--include-deleted", "--yes", "-o", "json"])
        .await;
    run.expect_code(0);
    let report = run.json();
    assert_eq!(names(&report["results"]), redis_pvcs(0..2));
    assert!(report["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["group"] == "gone" && r["result"] == "deleted"));
    wait_pvcs(&ns, &[]).await;
}

#[tokio::test]
async fn all_namespaces_prunes_across_three_namespaces() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag = format!("p{}-{nanos}", std::process::id());
    let sts = format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  replicas: 1
  serviceName: db
  selector: {{matchLabels: {{app: db, prune-test: {tag}}}}}
  template:
    metadata: {{labels: {{app: db, prune-test: {tag}}}}}
    spec: {{containers: [{{name: db, image: postgres:16}}]}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"#
    );
    let mut spaces = vec![];
    for i in 0..3 {
        let ns = TestNs::new(&format!("prune-all{i}")).await;
        ns.apply(&sts).await;
        // An orphan carrying the test's label, and one without it (outside -l).
        ns.apply(
            &(pvc_yaml("data-db-3", &format!("app: db, prune-test: {tag}"))
                + &pvc_yaml("data-db-4", "app: db")),
        )
        .await;
        spaces.push(ns);
    }
    for ns in &spaces {
        ns.wait_ready("db", WAIT).await;
        wait_all_bound(ns).await;
    }
    let selector = format!("prune-test={tag}");
    let first = &spaces[0];
    let plan = first
        .plugin(&[
            "prune-pvcs",
            "-A",
            "-l",
            &selector,
            "--dry-run",
            "-o",
            "json",
        ])
        .await;
    plan.expect_code(0);
    let plan = plan.json();
    assert!(plan["namespace"].is_null());
    let mut got: Vec<(String, String)> = plan["pvcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["namespace"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = spaces
        .iter()
        .map(|n| (n.name.clone(), "data-db-3".to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);

    let text = first
        .plugin(&["prune-pvcs", "-A", "-l", &selector, "--dry-run"])
        .await;
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("PVCs orphaned by scale-down in all namespaces:"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .take(2)
            .eq(["NAMESPACE", "PVC"]),
        "{}",
        text.stdout
    );

    let both = first.plugin(&["prune-pvcs", "db", "-A"]).await;
    both.expect_code(2);

    let run = first
        .plugin(&["prune-pvcs", "-A", "-l", &selector, "--yes"])
        .await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("Deleted 3 PVC(s) (3Gi)."),
        "{}",
        run.stdout
    );
    for ns in &spaces {
        assert!(
            run.stdout
                .contains(&format!("deleted {}/data-db-3", ns.name)),
            "{}",
            run.stdout
        );
        wait_pvcs(ns, &["data-db-0".to_string(), "data-db-4".to_string()]).await;
    }
}

#[tokio::test]
async fn older_than_keeps_young_pvcs() {
    let ns = redis_scaled("prune-young", 2, 1).await;
    let run = ns
        .plugin(&["prune-pvcs", "--older-than", "1h", "--yes", "-o", "json"])
        .await;
    run.expect_code(0);
    let report = run.json();
    assert!(report["results"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["plan"]["skipped"][0]["code"], "too-young");
    assert_eq!(ns.pvc_names().await, redis_pvcs(0..2));
}

#[tokio::test]
async fn ctrl_c_stops_between_deletions() {
    signal_stops_between_deletions("INT", "prune-ctrlc").await;
}

/// SIGTERM (a CI job cancelled, `kill`) stops prune like Ctrl-C, as it stops the
/// other writers.
#[tokio::test]
async fn sigterm_stops_between_deletions() {
    signal_stops_between_deletions("TERM", "prune-sigterm").await;
}

async fn signal_stops_between_deletions(signal: &str, ns_name: &str) {
    let ns = TestNs::new(ns_name).await;
    ns.ready_redis(1).await;
    // Many left-over claims of a class nothing provisions: deletions take a while.
    let count = 120;
    let yaml: String = (10..10 + count)
        .map(|o| {
            format!(
                "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: redis-data-redis-{o}, labels: {{app: redis}}}}\n\
                 spec: {{accessModes: [ReadWriteOnce], storageClassName: sim-unprovisioned, resources: {{requests: {{storage: 1Gi}}}}}}\n"
            )
        })
        .collect();
    ns.apply(&yaml).await;
    // The PV controller's last write to an unprovisioned claim is this annotation.
    ns.eventually(WAIT, "every claim seen by the PV controller", || async {
        let pvcs = ns.pvcs().await;
        pvcs.iter()
            .all(|p| {
                p.annotations()
                    .contains_key("volume.beta.kubernetes.io/storage-provisioner")
                    || sts_safe::model::pvc_phase(p) == "Bound"
            })
            .then_some(())
    })
    .await;

    let mut child = std::process::Command::new(PLUGIN)
        .args([
            "prune-pvcs",
            "--yes",
            "-n",
            &ns.name,
            "--context",
            "sts-safe-admin",
        ])
        .env("KUBECONFIG", kubeconfig())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run plugin");
    let mut stdout = child.stdout.take().expect("stdout");
    let screen = Arc::new(Mutex::new(String::new()));
    let sink = screen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let start = Instant::now();
    while !screen.lock().unwrap().contains("deleted redis-data-redis-") {
        assert!(
            start.elapsed() < WAIT,
            "no deletion started: {}",
            screen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    let out = screen.lock().unwrap().clone();
    assert_eq!(
        status.code(),
        Some(130),
        "stdout:\n{out}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("interrupted: stopped after deleting"),
        "{stderr}"
    );
    let deleted = out.lines().filter(|l| l.starts_with("deleted ")).count();
    let not_attempted = out
        .lines()
        .filter(|l| l.ends_with("not attempted: interrupted"))
        .count();
    assert!(deleted >= 1 && not_attempted >= 1, "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("deleted ")
                || l.starts_with("skipped ")
                || l.starts_with("not deleted "))
            .count(),
        count as usize,
        "every planned PVC is reported: {out}"
    );
    // Exactly the reported deletions happened: redis-data-redis-0 and the rest stay.
    let want = count as usize + 1 - deleted;
    ns.eventually(WAIT, &format!("{want} PVCs left"), || async {
        (ns.pvcs().await.len() == want).then_some(())
    })
    .await;
    assert!(ns
        .pvc_names()
        .await
        .contains(&"redis-data-redis-0".to_string()));
}

#[tokio::test]
async fn a_namespaced_identity_sees_unknown_reclaim_policies_and_can_prune() {
    let ns = redis_scaled("prune-limited", 2, 1).await;
    // deploy/rbac.yaml bound in this namespace only: PersistentVolumes (cluster-scoped)
    // stay unreadable.
    ns.grant_limited_user().await;
    let plan = ns
        .plugin_as(
            "sts-safe-limited",
            &["prune-pvcs", "--dry-run", "-o", "json"],
        )
        .await;
    plan.expect_code(0);
    let plan = plan.json();
    assert_eq!(names(&plan["pvcs"]), redis_pvcs([1]));
    assert_eq!(plan["pvcs"][0]["reclaimPolicy"], "unknown");
    assert_eq!(
        plan["pvcs"][0]["consequence"],
        "unknown: PersistentVolumes may not be listed"
    );
    let run = ns
        .plugin_as("sts-safe-limited", &["prune-pvcs", "redis", "--yes"])
        .await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("deleted redis-data-redis-1"),
        "{}",
        run.stdout
    );
    wait_pvcs(&ns, &redis_pvcs([0])).await;
}
