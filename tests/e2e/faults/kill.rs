//! Fault family 1, `kill -9`: of `canary` at random points, then `--resume` (or the same
//! command) completes; of `rollback`, then `rollback` again; and the exact state a kill
//! between rollback's write and its stuck-pod delete leaves.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use rand::Rng;
use sts_safe::model;

use super::*;
use crate::support::{images_of, template_of, Check, Recorder, TestNs};

/// Where a kill landed, judged from the StatefulSet right after it.
fn kill_point(finished: bool, sts: &StatefulSet, image: &str) -> String {
    if finished {
        return "after the run finished".into();
    }
    let (p, r) = (model::partition(sts), model::replicas(sts));
    if images_of(&template_of(sts)) != [image] {
        "before the freeze patch".into()
    } else if p >= r {
        "after the freeze patch, before step 1".into()
    } else {
        format!("during step {} of {r} (partition {p})", r - p)
    }
}

#[tokio::test]
async fn kill_9_at_random_points_of_a_canary_then_resume_completes() {
    let trials = 2 * fault_trials();
    let mut rng = seeded("kill -9 canary", trials);
    let ns = TestNs::new("fault-kill").await;
    use_short_lease(&ns);
    ns.ready_redis(3).await;
    let mut takeovers = 0;
    let mut points: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..trials {
        let before = get_sts(&ns, "redis").await;
        let image = format!("redis:k{i}-ready-after-1s");
        let want = with_image(&template_of(&before), &image);
        let rec = Recorder::start(&ns).await;
        // Spread the kills: right at the start (before/around the freeze), around the
        // freeze and the first step, and anywhere in the ~5 s of steps.
        let delay = match i % 5 {
            0 => rng.random_range(0..200),
            1 => rng.random_range(150..700),
            _ => rng.random_range(500..4200),
        };
        let args = ["canary", "redis", "--image", &image, "--yes"];
        let mut child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
        let finished = tokio::time::timeout(Duration::from_millis(delay), child.wait())
            .await
            .is_ok();
        child.start_kill().ok();
        let out = finish(child, &args).await;
        let at = kill_point(finished, &get_sts(&ns, "redis").await, &image);
        *points.entry(at.clone()).or_default() += 1;
        eprintln!("kill trial {i}: SIGKILL after {delay} ms: {at}");
        if finished {
            expect_code(&out, 0, "a canary that finished before the kill");
        }

        let what = format!("kill trial {i} ({at}, {delay} ms)");
        let left = lock_of(&ns).await;
        let runs = complete_canary(&ns, &image, i % 2 == 0).await;
        expect_all_ok(&runs, &what);
        // A lock the killed run left is taken over, with a notice, once it runs out, by
        // the first run that writes (one that finds nothing to do leaves it to run out).
        let wrote = runs
            .first()
            .is_some_and(|r| !r.stderr.contains("nothing to"));
        if let (false, Some(holder), true) = (finished, left, wrote) {
            let notice = "taking over the lock of statefulset \"redis\"";
            assert!(
                runs.first().is_some_and(|r| r.stderr.contains(notice)),
                "{what}: the lock of {holder} was not taken over with a notice: {:?}",
                runs.first().map(|r| &r.stderr)
            );
            takeovers += 1;
        }
        if wrote {
            assert!(
                lock_of(&ns).await.is_none(),
                "{what}: the lock was given back"
            );
        }
        expect_converged(&ns, &want, &what).await;
        rec.caught_up().await;
        let check = Check {
            sts: "redis",
            step: 1,
            rollback_to: vec![],
        };
        rec.analyse(&check).assert_safe(&check, &what);
    }
    eprintln!("kill points over {trials} trial(s): {points:?}; {takeovers} lock takeover(s)");
}

/// Pods of `redis` on a revision other than the update revision and not Ready: the pods
/// `rollback` must delete because the controller never replaces them (kubernetes#67250).
fn stuck_pods(sts: &StatefulSet, pods: &[Pod]) -> Vec<String> {
    let update = model::update_revision(sts).unwrap_or_default();
    pods.iter()
        .filter(|p| model::revision(p) != Some(update) && !model::is_ready(p))
        .filter(|p| !model::is_terminating(p))
        .map(|p| p.name_any())
        .collect()
}

/// Waits until all pods run `template` again; on timeout fails naming the stuck pods and
/// what the re-run printed.
async fn expect_rolled_back(ns: &TestNs, template: &serde_json::Value, what: &str, rerun: &str) {
    let api = ns.api::<StatefulSet>();
    let start = Instant::now();
    loop {
        if let Ok(sts) = api.get("redis").await {
            let pods = list_pods(ns).await;
            let update = model::update_revision(&sts).unwrap_or_default().to_string();
            let done = !model::rollout_pending(&sts)
                && model::observed(&sts)
                && pods.len() as i32 == model::replicas(&sts)
                && pods
                    .iter()
                    .all(|p| model::is_available(p) && model::revision(p) == Some(update.as_str()));
            if done {
                expect_converged(ns, template, what).await;
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!(
                    "{what}: 30 s after re-running the rollback, pods are still not all Ready on one revision; \
                     stuck on another revision: {:?}; rollout pending: {}; the re-run printed:\n{rerun}",
                    stuck_pods(&sts, &pods),
                    model::rollout_pending(&sts)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kill_9_during_rollback_then_rerun_completes() {
    let trials = fault_trials().div_ceil(2);
    let mut rng = seeded("kill -9 rollback", trials);
    let ns = TestNs::new("fault-killrb").await;
    use_short_lease(&ns);
    ns.ready_redis(3).await;
    let good = template_of(&get_sts(&ns, "redis").await);
    for i in 0..trials {
        let rec = Recorder::start(&ns).await;
        let bad = format!("redis:b{i}-crashloop");
        // After the lock of the last trial's killed run ran out (a re-run that found
        // nothing to roll back leaves it), or this exit 3 would be the lock's refusal.
        let canary =
            plugin_after_lock(&ns, ADMIN, &["canary", "redis", "--image", &bad, "--yes"]).await;
        expect_code(&canary, 3, "a crash-looping canary stops at its first pod");
        assert!(
            !canary.stderr.contains(LOCKED),
            "the canary ran (not refused by a lock): {}",
            canary.stderr
        );

        let stuck_uid = ns
            .api::<Pod>()
            .get("redis-2")
            .await
            .ok()
            .and_then(|p| p.uid());
        // A rollback of one stuck pod takes about 1 s.
        let delay = if i % 3 == 0 {
            rng.random_range(0..200) // around its write
        } else {
            rng.random_range(150..900)
        };
        let args = ["rollback", "redis", "--yes"];
        let mut child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
        let finished = tokio::time::timeout(Duration::from_millis(delay), child.wait())
            .await
            .is_ok();
        child.start_kill().ok();
        let out = finish(child, &args).await;
        if finished {
            expect_code(&out, 0, "a rollback that finished before the kill");
        }
        let sts = get_sts(&ns, "redis").await;
        let stuck_left = ns
            .api::<Pod>()
            .get("redis-2")
            .await
            .ok()
            .is_some_and(|p| p.uid() == stuck_uid && !model::is_terminating(&p));
        let at = if finished {
            "after the rollback finished"
        } else if images_of(&template_of(&sts)) != images_of(&good) {
            "before its write"
        } else if stuck_left {
            "after its write, before its stuck-pod delete"
        } else {
            "after its write and its stuck-pod delete"
        };
        eprintln!("rollback kill trial {i}: SIGKILL after {delay} ms, {at}");

        // The operator's next step: run the rollback again (once the lock ran out).
        let rerun = plugin_after_lock(&ns, ADMIN, &["rollback", "redis", "--yes"]).await;
        let what = format!("rollback kill trial {i} ({at}, {delay} ms)");
        expect_code(&rerun, 0, &what);
        expect_rolled_back(&ns, &good, &what, &rerun.stderr).await;
        rec.caught_up().await;
        let check = Check {
            sts: "redis",
            step: 1,
            rollback_to: vec![images_of(&good)],
        };
        rec.analyse(&check).assert_safe(&check, &what);
    }
}

/// A `kill -9` that lands between rollback's first write (old template, partition 0) and
/// its delete of the pod stuck on the bad revision leaves exactly this state; the window
/// is a few milliseconds, so the test makes the same write itself (src/commands/rollback.rs
/// `execute`: the template of currentRevision and partition 0, guarded by resourceVersion)
/// and then runs `rollback` again, as an operator would.
#[tokio::test]
async fn rollback_killed_between_its_write_and_the_stuck_pod_delete_can_be_finished() {
    let ns = TestNs::new("fault-rbwin").await;
    ns.ready_redis(3).await;
    let good = template_of(&ns.sts("redis").await);
    let canary = ns
        .plugin(&["canary", "redis", "--image", "redis:7.4-crashloop", "--yes"])
        .await;
    canary.expect_code(3);
    let sts = ns.sts("redis").await;
    let current = model::current_revision(&sts).unwrap().to_string();
    let cr = ns
        .api::<ControllerRevision>()
        .get(&current)
        .await
        .expect("current controller revision");
    // The template the revision holds (what `rollback` restores), written the way
    // `rollback` writes it: template and partition 0 in one write guarded by resourceVersion.
    let mut template = serde_json::to_value(&cr).unwrap()["data"]["spec"]["template"].clone();
    template
        .as_object_mut()
        .expect("the controller revision holds a template")
        .remove("$patch");
    assert_eq!(images_of(&template), images_of(&good));
    let rv = sts.resource_version().unwrap();
    ns.api::<StatefulSet>()
        .patch(
            "redis",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"resourceVersion": rv},
                "spec": {
                    "template": template,
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
                }
            })),
        )
        .await
        .expect("rollback's first write");
    ns.eventually(
        WAIT,
        "the controller to observe the rollback write",
        || async {
            let s = ns.api::<StatefulSet>().get("redis").await.ok()?;
            model::observed(&s).then_some(())
        },
    )
    .await;
    let rerun = ns.plugin(&["rollback", "redis", "--yes"]).await;
    rerun.expect_code(0);
    expect_rolled_back(
        &ns,
        &good,
        "re-running rollback after a kill between its write and its stuck-pod delete",
        &rerun.stderr,
    )
    .await;
}
