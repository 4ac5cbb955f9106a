//! Fault family 8, recover: `kill -9` of `recover` at random points (before the fence,
//! after the taint, after the delete, while the pod comes back) in 10 trials, each with a
//! node of its own lost; a re-run (half of them breaking the dead run's lock) completes:
//! the pod runs again on the live node with its claim, the stranded pod was the only one
//! ever deleted (never the replacement), and the volume was attached to one node at a time.

use std::time::Duration;

use kube::ResourceExt;
use rand::Rng;
use sts_safe::model;
use sts_safe::model::node as nodes;

use super::*;
use crate::recover::{attachments_of, pod, strand, volume_of, AttachWatch, TestNodes};
use crate::support::{plugin_audit_events, TestNs};

/// Trials fixed by the issue: every one loses a node of its own.
const TRIALS: usize = 10;

async fn trial(i: usize, delay_ms: u64) -> String {
    let ns = TestNs::new(&format!("fault-recover-{i}")).await;
    use_short_lease(&ns);
    let t = TestNodes::new(&ns, 2).await;
    ns.apply(&t.statefulset("redis", 1, "OrderedReady")).await;
    ns.wait_ready("redis", WAIT).await;
    let pv = volume_of(&ns, "data-redis-0").await;
    let watch = AttachWatch::start(&ns, &pv).await;
    let (lost, uid) = strand(&ns, &t, "redis-0").await;
    let args = [
        "recover",
        "redis",
        "--min-down",
        "5s",
        "--yes",
        "--fence-cmd",
        "true",
        "--timeout",
        "2m",
    ];
    let mut child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    let finished = tokio::time::timeout(Duration::from_millis(delay_ms), child.wait())
        .await
        .is_ok();
    child.start_kill().ok();
    let out = finish(child, &args).await;
    let what = format!("recover kill trial {i} (SIGKILL after {delay_ms} ms)");
    if finished {
        expect_code(&out, 0, &what);
    }
    let tainted = nodes::out_of_service(&t.node(&lost).await);
    let old = pod(&ns, "redis-0").await;
    let at = match (&old, tainted) {
        (Some(p), false) if p.uid().as_deref() == Some(uid.as_str()) => "before the taint",
        (Some(p), true) if p.uid().as_deref() == Some(uid.as_str()) => "after the taint",
        (_, _) if finished => "finished",
        _ => "after the delete",
    }
    .to_string();
    eprintln!("{what}: {at}");
    let rerun = if i.is_multiple_of(2) {
        plugin_after_lock(&ns, ADMIN, &args).await
    } else {
        let mut breaking = args.to_vec();
        breaking.push("--break-lock");
        plugin(&ns, ADMIN, &breaking).await
    };
    expect_code(&rerun, 0, &format!("{what}: the re-run"));
    // The pod is back on the live node with its claim and volume.
    let back = ns
        .eventually(WAIT, "redis-0 Ready again", || async {
            pod(&ns, "redis-0").await.filter(model::is_ready)
        })
        .await;
    assert_ne!(
        back.uid().as_deref(),
        Some(uid.as_str()),
        "{what}: replaced"
    );
    assert_ne!(
        model::node(&back),
        Some(lost.as_str()),
        "{what}: on the live node"
    );
    assert_eq!(
        volume_of(&ns, "data-redis-0").await,
        pv,
        "{what}: same volume"
    );
    let atts = attachments_of(&ns, &pv).await;
    assert_eq!(atts.len(), 1, "{what}: attached to one node: {atts:?}");
    assert_eq!(
        watch.max_attached(),
        1,
        "{what}: never attached to two nodes at once"
    );
    // Only the stranded pod was ever deleted by the plugin, however many runs: every
    // delete carries the planned uid, so a delete of the replacement would be refused
    // (409) and at most one can succeed.
    let deleted = plugin_audit_events(&ns.name)
        .iter()
        .filter(|e| e["objectRef"]["resource"] == "pods" && e["verb"] == "delete")
        .filter(|e| e["responseStatus"]["code"].as_i64().unwrap_or(0) < 300)
        .count();
    assert!(
        deleted <= 1,
        "{what}: {deleted} pod deletes by the plugin succeeded"
    );
    t.power(&lost, true).await;
    at
}

#[tokio::test]
async fn kill_9_during_recover_then_a_rerun_completes_and_one_identity_never_runs_twice() {
    let mut rng = seeded("kill -9 recover", TRIALS);
    // A run takes about 1.5 s here (the replacement's ready delay is 300 ms): spread the
    // kills over it, trial i somewhere in [150 i, 150 (i + 1)) ms.
    let delays: Vec<u64> = (0..TRIALS as u64)
        .map(|i| 150 * i + rng.random_range(0..150))
        .collect();
    let points =
        futures::future::join_all(delays.iter().enumerate().map(|(i, d)| trial(i, *d))).await;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for p in points {
        *counts.entry(p).or_default() += 1;
    }
    eprintln!("recover kill points over {TRIALS} trial(s): {counts:?}");
    assert!(
        counts.get("finished").copied().unwrap_or(0) < TRIALS,
        "some kill must land before the run finished: {counts:?}"
    );
}
