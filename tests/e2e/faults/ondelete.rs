//! Fault family 10, `kill -9` of a `--order primary-last` canary (the OnDelete
//! mechanism) at random points in 10 trials, each on a StatefulSet of its own and all at
//! once: a re-run of the same command restores the original strategy and completes, and
//! never more than one pod is unavailable.

use std::time::Duration;

use rand::Rng;

use super::{expect_code, finish, plugin_after_lock, plugin_cmd, seeded, use_short_lease};
use crate::ondelete::current::converged;
use crate::support::{pod_names, Recorder, TestNs, SEED_REDIS};

const ADMIN: &str = "sts-safe-admin";
const TRIALS: usize = 10;

async fn trial(i: usize, delay: u64) {
    let ns = TestNs::new(&format!("fault-od-kill{i}")).await;
    use_short_lease(&ns);
    let yaml = SEED_REDIS.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 0, maxUnavailable: 2}}\n",
    );
    ns.apply(&yaml).await;
    ns.wait_ready("redis", Duration::from_secs(90)).await;
    let strategy = serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}});
    let role = "if [ \"$POD_NAME\" = redis-1 ]; then echo primary; else echo replica; fi";
    let image = format!("redis:od{i}-ready-after-1s");
    let container_image = format!("redis={image}");
    let args = [
        "canary",
        "redis",
        "--image",
        &container_image,
        "--order",
        "primary-last",
        "--role-cmd",
        role,
        "--yes",
    ];
    let rec = Recorder::start(&ns).await;
    let mut child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    let finished = tokio::time::timeout(Duration::from_millis(delay), child.wait())
        .await
        .is_ok();
    child.start_kill().ok();
    let out = finish(child, &args).await;
    let what = format!("primary-last kill trial {i} (after {delay} ms)");
    eprintln!("{what}: finished before the kill: {finished}");
    if finished {
        expect_code(&out, 0, "a canary that finished before the kill");
    }
    // The same command again: it resumes (or finds the rollout done) and restores.
    let again = plugin_after_lock(&ns, ADMIN, &args).await;
    expect_code(&again, 0, &what);
    converged(&ns, strategy).await;
    for p in ns.pods().await {
        assert_eq!(
            sts_safe::model::images(&p),
            [image.as_str()],
            "{what}: every pod runs the new image"
        );
    }
    rec.caught_up().await;
    assert!(
        rec.max_unavailable(&pod_names("redis", 3)) <= 1,
        "{what}: never more than one pod unavailable"
    );
}

#[tokio::test]
async fn kill_9_of_a_primary_last_canary_then_a_rerun_restores_the_strategy_and_completes() {
    let mut rng = seeded("kill -9 primary-last", TRIALS);
    // Spread over the run: around the first write, and anywhere in the ~5 s of deletes.
    let delays: Vec<u64> = (0..TRIALS)
        .map(|i| match i % 3 {
            0 => rng.random_range(0..600),
            _ => rng.random_range(400..5000),
        })
        .collect();
    futures::future::join_all(delays.iter().enumerate().map(|(i, d)| trial(i, *d))).await;
}
