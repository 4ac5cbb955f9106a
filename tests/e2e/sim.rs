//! The simulator behaves like kubelet + scheduler + provisioner for the real controllers.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::ResourceExt;

use crate::support::TestNs;

fn ready_at(p: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

#[tokio::test]
async fn statefulset_becomes_ready_in_ordinal_order_with_bound_pvcs() {
    let ns = TestNs::new("sim-order").await;
    ns.seed_redis(3, "redis:7.2-alpine").await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    let pods = ns.pods().await;
    assert_eq!(
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        ["redis-0", "redis-1", "redis-2"]
    );
    // OrderedReady: each pod is created only after the previous one became Ready.
    for w in pods.windows(2) {
        let prev_ready = ready_at(&w[0]).expect("ready time");
        let next_created = w[1].metadata.creation_timestamp.as_ref().unwrap().0;
        assert!(
            next_created
                >= prev_ready
                    .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(1))
                    .unwrap(),
            "{} created before {} was Ready",
            w[1].name_any(),
            w[0].name_any()
        );
    }
    for p in &pods {
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.image, "redis:7.2-alpine");
        assert!(cs.ready);
        assert!(st.pod_ip.is_some());
    }
    let pvcs = ns
        .eventually(Duration::from_secs(30), "3 Bound PVCs", || async {
            let v = ns.pvcs().await;
            (v.len() == 3
                && v.iter()
                    .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")))
            .then_some(v)
        })
        .await;
    assert_eq!(
        pvcs.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        [
            "redis-data-redis-0",
            "redis-data-redis-1",
            "redis-data-redis-2"
        ]
    );
}

#[tokio::test]
async fn crashloop_pod_never_becomes_ready_and_restarts_grow() {
    let ns = TestNs::new("sim-crash").await;
    ns.seed_redis(1, "redis:7.4-crashloop").await;
    let first = ns
        .eventually(Duration::from_secs(30), "redis-0 restarting", || async {
            let p = ns.api::<Pod>().get("redis-0").await.ok()?;
            let cs = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            (cs.restart_count >= 1).then_some(cs)
        })
        .await;
    assert!(!first.ready);
    let waiting = first
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone());
    assert_eq!(waiting.as_deref(), Some("CrashLoopBackOff"));
    let later = ns
        .eventually(Duration::from_secs(30), "restartCount to grow", || async {
            let p = ns.api::<Pod>().get("redis-0").await.ok()?;
            let n = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .restart_count;
            (n > first.restart_count).then_some(p)
        })
        .await;
    assert!(!sts_safe::model::is_ready(&later));
}

#[tokio::test]
async fn deleted_pod_is_terminating_then_replaced() {
    let ns = TestNs::new("sim-delete").await;
    ns.ready_redis(1).await;
    let old = ns.api::<Pod>().get("redis-0").await.unwrap();
    ns.api::<Pod>()
        .delete("redis-0", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = ns.api::<Pod>().get("redis-0").await.unwrap();
    assert_eq!(terminating.uid(), old.uid());
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "graceful deletion leaves the pod Terminating for a moment"
    );
    let new = ns
        .eventually(
            Duration::from_secs(30),
            "redis-0 replaced and Ready",
            || async {
                let p = ns.api::<Pod>().get("redis-0").await.ok()?;
                (p.uid() != old.uid() && sts_safe::model::is_ready(&p)).then_some(p)
            },
        )
        .await;
    assert!(new.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn pvc_of_the_unprovisioned_class_stays_pending() {
    let ns = TestNs::new("sim-pending").await;
    ns.apply(
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: lonely}
spec: {accessModes: [ReadWriteOnce], storageClassName: sim-unprovisioned, resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: served}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#,
    )
    .await;
    ns.eventually(
        Duration::from_secs(30),
        "default-class PVC Bound",
        || async {
            let p = ns
                .api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>()
                .get("served")
                .await
                .ok()?;
            (sts_safe::model::pvc_phase(&p) == "Bound").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lonely = ns
        .api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>()
        .get("lonely")
        .await
        .unwrap();
    assert_eq!(sts_safe::model::pvc_phase(&lonely), "Pending");
}

/// The state of a pod's first container: (reason it waits, restart count, ready, started).
fn first_container(p: &Pod) -> Option<(Option<String>, i32, bool, Option<bool>)> {
    let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let waiting = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone());
    Some((waiting, cs.restart_count, cs.ready, cs.started))
}

#[tokio::test]
async fn real_images_play_their_spec_failing_command_crash_loops_failing_probe_never_ready() {
    let ns = TestNs::new("sim-spec").await;
    let pod = |name: &str, annotation: &str, container: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {{{annotation}}}\n\
             spec:\n  containers:\n    - name: redis\n      image: redis:7.4-alpine\n{container}"
        )
    };
    let exits = "      command: [sh, -c, 'echo bad release >&2; exit 1']\n";
    let probe_fails = "      readinessProbe: {exec: {command: [sh, -c, 'exit 1']}}\n";
    let probe_passes = "      readinessProbe: {exec: {command: [redis-cli, ping]}}\n";
    let yaml = [
        pod("crashing", "", exits),
        pod("unready", "", probe_fails),
        pod("healthy", "", probe_passes),
        // the annotation still takes precedence over the spec
        pod("overridden", "sim.sts-safe.dev/behavior: healthy", exits),
    ]
    .join("---\n");
    ns.apply(&yaml).await;

    let api = ns.api::<Pod>();
    let (waiting, restarts, ready, _) = ns
        .eventually(Duration::from_secs(30), "crashing restarting", || async {
            let c = first_container(&api.get("crashing").await.ok()?)?;
            (c.1 >= 1).then_some(c)
        })
        .await;
    assert_eq!(waiting.as_deref(), Some("CrashLoopBackOff"));
    assert!(restarts >= 1 && !ready);
    for name in ["healthy", "overridden"] {
        ns.eventually(
            Duration::from_secs(30),
            &format!("{name} Ready"),
            || async { sts_safe::model::is_ready(&api.get(name).await.ok()?).then_some(()) },
        )
        .await;
    }
    // By now the never-Ready pod has long been Running with its container started.
    let unready = ns
        .eventually(Duration::from_secs(30), "unready Running", || async {
            let p = api.get("unready").await.ok()?;
            let phase = p.status.as_ref()?.phase.clone()?;
            (phase == "Running").then_some(p)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unready = api.get("unready").await.unwrap_or(unready);
    assert!(!sts_safe::model::is_ready(&unready));
    assert_eq!(
        first_container(&unready).map(|c| (c.1, c.2, c.3)),
        Some((0, false, Some(true))),
        "started, never restarted, not Ready"
    );
    let crashing = api.get("crashing").await.unwrap();
    assert!(!sts_safe::model::is_ready(&crashing));
}
