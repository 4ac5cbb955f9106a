//! Fault family 6, the lock: two canaries started on the same StatefulSet with random
//! offsets (4N trials, one as the admin and one as the limited user so the audit log
//! tells their writes apart): in every trial exactly one writes the StatefulSet and its
//! pods, and the other exits 3 naming the first. (Kills of a holder are in [`super::kill`],
//! an API server outage longer than the lease in [`super::restart`].)

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rand::Rng;

use super::*;
use crate::support::{
    audit_is_write, audit_received, images_of, plugin_audit_events, template_of, TestNs,
};

/// The plugin's writes to the StatefulSet and its pods as `user` in `namespace` since `from`.
fn writes_by(namespace: &str, user: &str, from: Timestamp) -> Vec<String> {
    plugin_audit_events(namespace)
        .into_iter()
        .filter(|e| {
            audit_is_write(e)
                && e["user"]["username"] == user
                && audit_received(e).is_some_and(|t| t >= from)
                && matches!(
                    e["objectRef"]["resource"].as_str(),
                    Some("statefulsets" | "pods")
                )
        })
        .map(|e| format!("{} {}", e["verb"], e["objectRef"]["resource"]))
        .collect()
}

#[tokio::test]
async fn two_canaries_with_random_offsets_exactly_one_writes() {
    let trials = 4 * fault_trials();
    let mut rng = seeded("two canaries", trials);
    let ns = TestNs::new("fault-lock").await;
    ns.grant_limited_user().await;
    ns.ready_redis(3).await;
    let users = [(ADMIN, "sts-safe-admin"), (LIMITED, "sts-safe-limited")];
    for i in 0..trials {
        let from = Timestamp::now();
        let image = format!("redis:c{i}-alpine");
        let args = ["canary", "redis", "--image", &image, "--yes"];
        // Who starts first alternates; the second follows 0–300 ms later.
        let (first, second) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
        let offset = rng.random_range(0..300);
        let a = plugin_cmd(&ns, users[first].0, &args).spawn().unwrap();
        let a_pid = a.id().unwrap();
        tokio::time::sleep(Duration::from_millis(offset)).await;
        let b = plugin_cmd(&ns, users[second].0, &args).spawn().unwrap();
        let b_pid = b.id().unwrap();
        let (ra, rb) = futures::join!(finish(a, &args), finish(b, &args));
        let what = format!("trial {i} (offset {offset} ms)");
        let (winner, loser, winner_pid, loser_user) = match (ra.code, rb.code) {
            (0, 3) => (&ra, &rb, a_pid, users[second].1),
            (3, 0) => (&rb, &ra, b_pid, users[first].1),
            _ => panic!(
                "{what}: exactly one must finish and the other stop\nfirst:\n{}\nsecond:\n{}",
                ra.stderr, rb.stderr
            ),
        };
        loser.expect_one_error_line(LOCKED);
        assert!(
            loser.stderr.contains(&format!("(pid {winner_pid})")),
            "{what}: the refusal names the winner (pid {winner_pid}): {}",
            loser.stderr
        );
        assert!(!winner.stderr.contains(LOCKED), "{what}: {}", winner.stderr);
        let sts = get_sts(&ns, "redis").await;
        assert_eq!(
            images_of(&template_of(&sts)),
            std::slice::from_ref(&image),
            "{what}"
        );
        let stray = writes_by(&ns.name, loser_user, from);
        assert!(stray.is_empty(), "{what}: the refused run wrote: {stray:?}");
        eprintln!("{what}: pid {winner_pid} won");
    }
}
