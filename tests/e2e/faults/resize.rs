//! Fault family 7, resize-pvcs: `kill -9` at random points (and, every fourth trial, at
//! the StatefulSet's delete, before its create), then a plain re-run completes: the
//! StatefulSet exists with the new claim templates, every claim is grown and no pod was
//! deleted or replaced; an edit of the StatefulSet's spec while the claims grow stops the
//! run before the delete, and nothing is lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use rand::Rng;
use sts_safe::model;

use super::*;
use crate::support::{ensure_slow_resize_class, pod_deletes, TestNs};

pub(super) async fn pod_uids(ns: &TestNs) -> BTreeMap<String, String> {
    list_pods(ns)
        .await
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

/// The StatefulSet is whole at `size`: template, every claim, its partition, no record.
pub(super) async fn expect_resized(
    ns: &TestNs,
    size: &str,
    pods: &BTreeMap<String, String>,
    what: &str,
) {
    let sts = ns.wait_ready("redis", WAIT).await;
    let tpl = sts.spec.volume_claim_templates.as_ref().unwrap()[0].clone();
    let want = tpl.spec.unwrap().resources.unwrap().requests.unwrap()["storage"]
        .0
        .clone();
    assert_eq!(want, size, "{what}: the template");
    assert_eq!(
        model::partition(&sts),
        0,
        "{what}: the partition given back"
    );
    for p in ns.pvcs().await {
        assert_eq!(
            model::pvc_capacity(&p).as_deref(),
            Some(size),
            "{what}: {}",
            p.name_any()
        );
    }
    assert_eq!(&pod_uids(ns).await, pods, "{what}: no pod replaced");
    let record = ns
        .api::<ConfigMap>()
        .get_opt("sts-safe-resize-redis")
        .await
        .unwrap();
    assert!(record.is_none(), "{what}: the record is gone");
    for p in list_pods(ns).await {
        let owner = p
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        assert_eq!(
            owner,
            sts.uid(),
            "{what}: {} owned by the StatefulSet",
            p.name_any()
        );
    }
}

/// Waits until claim `name` asks for `size` (the run is growing the claims).
pub(super) async fn wait_requested(ns: &TestNs, name: &str, size: &str) {
    let api = ns.api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>();
    ns.eventually(WAIT, &format!("{name} to request {size}"), || async {
        let p = api.get(name).await.ok()?;
        (model::pvc_request(&p).as_deref() == Some(size)).then_some(())
    })
    .await;
}

/// Where a kill landed, judged from the StatefulSet, its claims and the record after it.
async fn kill_point(ns: &TestNs, finished: bool, size: &str) -> String {
    if finished {
        return "after the run finished".into();
    }
    let sts = ns.api::<StatefulSet>().get_opt("redis").await.unwrap();
    let record = ns
        .api::<ConfigMap>()
        .get_opt("sts-safe-resize-redis")
        .await
        .unwrap();
    let grown = ns
        .pvcs()
        .await
        .iter()
        .filter(|p| model::pvc_capacity(p).as_deref() == Some(size))
        .count();
    match (sts, record) {
        (None, _) => "between the delete and the create".into(),
        (Some(s), _) if s.metadata.deletion_timestamp.is_some() => {
            // Killed after its delete: the garbage collector finishes it, and nobody
            // creates it again until the re-run.
            let api = ns.api::<StatefulSet>();
            ns.eventually(WAIT, "the deleted StatefulSet gone", || async {
                api.get_opt("redis").await.ok()?.is_none().then_some(())
            })
            .await;
            "between the delete and the create".into()
        }
        (Some(_), None) if grown == 0 => "before the record".into(),
        (Some(_), None) => "after the record was dropped".into(),
        (Some(s), Some(_))
            if model::partition(&s) >= model::replicas(&s) && s.metadata.generation == Some(1) =>
        {
            "after the create, before the check".into()
        }
        (Some(_), Some(_)) => format!("while the claims grew ({grown} of 3 grown)"),
    }
}

/// Kills the run as soon as the StatefulSet's delete went through (the object has a
/// deletionTimestamp or is gone): the window the record exists for.
async fn kill_at_delete(ns: &TestNs, child: &mut tokio::process::Child, uid: &str) -> bool {
    let api = ns.api::<StatefulSet>();
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        match api.get_opt("redis").await {
            Ok(None) => break,
            Ok(Some(s))
                if s.metadata.deletion_timestamp.is_some() || s.uid().as_deref() != Some(uid) =>
            {
                break
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    child.start_kill().ok();
    false
}

#[tokio::test]
async fn kill_9_at_random_points_of_a_resize_then_a_rerun_completes() {
    let trials = (4 * fault_trials()).max(20);
    let mut rng = seeded("kill -9 resize-pvcs", trials);
    let ns = TestNs::new("fault-resize-kill").await;
    use_short_lease(&ns);
    ns.ready_redis_in_class(3, "sim-standard").await;
    let pods = pod_uids(&ns).await;
    let mut points: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..trials {
        let size = format!("{}Gi", 11 + i);
        let what_size = size.clone();
        let args = ["resize-pvcs", "redis", "--size", &what_size, "--yes"];
        let uid = get_sts(&ns, "redis").await.uid().unwrap();
        let mut child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
        let (finished, how) = if i % 4 == 3 {
            (
                kill_at_delete(&ns, &mut child, &uid).await,
                "at the delete".to_string(),
            )
        } else {
            // A run takes about 1.4 s: 3 claims of ~0.3 s each, then the re-create.
            let delay = rng.random_range(0..1400);
            let done = tokio::time::timeout(Duration::from_millis(delay), child.wait())
                .await
                .is_ok();
            child.start_kill().ok();
            (done, format!("after {delay} ms"))
        };
        let out = finish(child, &args).await;
        let at = kill_point(&ns, finished, &size).await;
        *points.entry(at.clone()).or_default() += 1;
        eprintln!("resize kill trial {i}: SIGKILL {how}: {at}");
        let what = format!("resize kill trial {i} ({at})");
        if at == "between the delete and the create" {
            // Any command that looks for it points at the way back.
            let status = plugin(&ns, ADMIN, &["status", "redis"]).await;
            assert!(
                status.code == 1
                    && status.stderr.contains("resize-pvcs redis")
                    && status.stderr.contains("--resume"),
                "{what}: status names the resume: {}",
                status.stderr
            );
        }
        if finished {
            expect_code(&out, 0, &what);
        }
        // Half the re-runs wait for the killed run's lock to run out; the other half are
        // an operator who knows that run is dead and breaks its lock.
        let rerun = if i % 2 == 0 {
            plugin_after_lock(&ns, ADMIN, &args).await
        } else {
            let mut breaking = args.to_vec();
            breaking.push("--break-lock");
            plugin(&ns, ADMIN, &breaking).await
        };
        expect_code(&rerun, 0, &format!("{what}: the re-run"));
        expect_resized(&ns, &size, &pods, &what).await;
        // A re-run that finds nothing to do leaves a killed run's lock to run out: the
        // next trial waits until the plugin counts it abandoned (3 s lease + 5 s skew),
        // or its run would be refused.
        if rerun.stderr.contains("nothing to resize") {
            wait_lock_lapsed(&ns).await;
        } else {
            assert!(
                lock_of(&ns).await.is_none(),
                "{what}: the lock was given back"
            );
        }
    }
    eprintln!("resize kill points over {trials} trial(s): {points:?}");
    assert_eq!(
        pod_deletes(&ns.name),
        Vec::<String>::new(),
        "no pod deleted, by anyone"
    );
    assert!(
        points
            .get("between the delete and the create")
            .copied()
            .unwrap_or(0)
            >= trials / 4,
        "some kill must land between the delete and the create: {points:?}"
    );
}

#[tokio::test]
async fn a_spec_edit_while_the_claims_grow_stops_before_the_delete_and_nothing_is_lost() {
    let ns = TestNs::new("fault-resize-edit").await;
    ensure_slow_resize_class(&ns.client, "sim-slow-resize", "1s").await;
    ns.ready_redis_in_class(3, "sim-slow-resize").await;
    let pods = pod_uids(&ns).await;
    let before = get_sts(&ns, "redis").await;
    let args = ["resize-pvcs", "redis", "--size", "20Gi", "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    // Once the first claim asks for 20Gi, someone else edits the spec.
    wait_requested(&ns, "redis-data-redis-2", "20Gi").await;
    ns.patch_sts(
        "redis",
        serde_json::json!({"spec": {"revisionHistoryLimit": 7}}),
    )
    .await;
    let out = finish(child, &args).await;
    expect_code(&out, 3, "an edit between the plan and the re-create");
    assert!(
        out.stderr
            .contains("statefulset \"redis\" was changed by someone else")
            && out.stderr.contains("it was not deleted"),
        "{}",
        out.stderr
    );
    let after = get_sts(&ns, "redis").await;
    assert_eq!(after.uid(), before.uid(), "not deleted");
    assert_eq!(
        after.spec.revision_history_limit,
        Some(7),
        "the edit stands"
    );
    // The operator looks, then runs it again: it finishes, and keeps the edit.
    let rerun = plugin(&ns, ADMIN, &args).await;
    expect_code(&rerun, 0, "the re-run after the edit");
    expect_resized(&ns, "20Gi", &pods, "after the edit").await;
    assert_eq!(
        get_sts(&ns, "redis").await.spec.revision_history_limit,
        Some(7),
        "nothing lost"
    );
    assert_eq!(pod_deletes(&ns.name), Vec::<String>::new());
}
