//! The lock of a StatefulSet (Lease `sts-safe-<name>`) against the real API server: a run
//! holds it while it writes and others are refused naming it; `status` and `doctor` show
//! a live and a stale lock; an abandoned lock is taken over with a notice; `--break-lock`
//! needs its own flag and a confirmation; a controller-owned StatefulSet is refused unless
//! `--allow-owned`; GitOps markers put a warning in the plan; prune-pvcs skips the claims
//! of a locked StatefulSet.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;

use crate::support::TestNs;

const WAIT: Duration = Duration::from_secs(60);

/// A lease as another run would have left it, renewed `ago` seconds ago.
fn foreign_lease(sts: &str, holder: &str, ago: i64) -> Lease {
    let renewed = Timestamp::now() - SignedDuration::from_secs(ago);
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("sts-safe-{sts}"),
            "annotations": {
                "sts-safe.dev/user": "bob",
                "sts-safe.dev/host": holder,
                "sts-safe.dev/pid": "4242",
                "sts-safe.dev/command": format!("canary {sts} --image redis=redis:7.4-alpine"),
                "sts-safe.dev/step": "2/3",
            }
        },
        "spec": {
            "holderIdentity": format!("bob@{holder}/4242"),
            "leaseDurationSeconds": 30,
            "acquireTime": MicroTime(renewed),
            "renewTime": MicroTime(renewed),
        }
    }))
    .unwrap()
}

async fn lease(ns: &TestNs, sts: &str) -> Option<Lease> {
    ns.api::<Lease>()
        .get_opt(&format!("sts-safe-{sts}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_canary_holds_the_lock_and_everyone_else_is_refused_while_status_and_doctor_show_it() {
    let ns = TestNs::new("lock-live").await;
    ns.ready_redis(3).await;
    let before = ns.sts("redis").await.resource_version();
    let canary = ns
        .plugin_command(&[
            "canary",
            "redis",
            "--image",
            "redis=redis:7.4-alpine",
            "--soak",
            "4s",
            "--yes",
        ])
        .spawn()
        .unwrap();
    // The step is recorded with the periodic renewal (every 15 s): not waited for here.
    let held = ns
        .eventually(WAIT, "the canary's lease", || async {
            lease(&ns, "redis").await
        })
        .await;
    let holder = held.spec.as_ref().unwrap().holder_identity.clone().unwrap();
    assert!(
        holder.ends_with(&format!("/{}", canary.id().unwrap())),
        "{holder}"
    );
    assert_eq!(
        held.annotations()["sts-safe.dev/command"],
        "canary redis --image redis=redis:7.4-alpine --soak 4s --yes -n ".to_string()
            + &ns.name
            + " --context sts-safe-admin"
    );

    // Another writer is refused before it writes anything, naming the holder.
    let scale = ns
        .plugin(&["scale", "redis", "--replicas", "4", "--yes"])
        .await;
    scale.expect_code(3);
    scale.expect_one_error_line("statefulset \"redis\" is being changed by");
    assert!(
        scale.stderr.contains("canary redis --image"),
        "{}",
        scale.stderr
    );
    assert!(scale.stderr.contains("--break-lock"), "{}", scale.stderr);
    let rollback = ns.plugin(&["rollback", "redis", "--yes"]).await;
    rollback.expect_code(3);
    assert!(
        rollback.stderr.contains("is being changed by"),
        "{}",
        rollback.stderr
    );

    // status and doctor show the operation in progress.
    let status = ns.plugin(&["status", "redis"]).await;
    status.expect_code(0);
    assert!(
        status.stdout.contains("Operation:  in progress by ")
            && status
                .stdout
                .contains("canary redis --image redis=redis:7.4-alpine"),
        "{}",
        status.stdout
    );
    let json = ns.plugin(&["status", "redis", "-o", "json"]).await.json();
    assert_eq!(json["lock"]["holder"], holder.as_str(), "{json}");
    assert_eq!(json["lock"]["expired"], false);
    let doctor = ns.plugin(&["doctor", "redis", "-o", "json"]).await.json();
    let found = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "operation-in-progress")
        .unwrap_or_else(|| panic!("{doctor}"));
    assert_eq!(found["severity"], "info");

    let out = canary.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lease(&ns, "redis").await.is_none(), "released at the end");
    let after = ns.sts("redis").await;
    assert_ne!(after.resource_version(), before);
    // The verdict, recorded under the lock before it was given back.
    let verdict: serde_json::Value =
        serde_json::from_str(&after.annotations()["sts-safe.dev/last-operation"]).unwrap();
    assert_eq!(verdict["command"], "canary", "{verdict}");
    assert_eq!(verdict["outcome"], "succeeded");
    assert_eq!(verdict["exitCode"], 0);
    assert_eq!(verdict["holder"], holder.as_str());
    assert_eq!(verdict["partition"], 0);
    assert_eq!(
        verdict["currentRevision"], verdict["updateRevision"],
        "{verdict}"
    );
    assert_eq!(
        after.spec.replicas,
        Some(3),
        "the refused scale wrote nothing"
    );
}

#[tokio::test]
async fn a_stale_lock_is_reported_then_taken_over_with_a_notice() {
    let ns = TestNs::new("lock-stale").await;
    ns.ready_redis(2).await;
    let leases: Api<Lease> = ns.api();
    leases
        .create(&PostParams::default(), &foreign_lease("redis", "gone", 120))
        .await
        .unwrap();
    let doctor = ns.plugin(&["doctor", "redis"]).await;
    assert!(
        doctor.stdout.contains("lock-stale")
            && doctor.stdout.contains("held by bob@gone (pid 4242)")
            && doctor.stdout.contains("--resume"),
        "{}",
        doctor.stdout
    );
    let status = ns.plugin(&["status", "redis"]).await;
    assert!(
        status.stdout.contains("Operation:  stale lock of bob@gone"),
        "{}",
        status.stdout
    );

    let scale = ns
        .plugin(&["scale", "redis", "--replicas", "3", "--yes"])
        .await;
    scale.expect_code(0);
    assert!(
        scale
            .stderr
            .contains("taking over the lock of statefulset \"redis\" from bob@gone (pid 4242)"),
        "{}",
        scale.stderr
    );
    assert_eq!(ns.sts("redis").await.spec.replicas, Some(3));
    assert!(lease(&ns, "redis").await.is_none());
}

#[tokio::test]
async fn break_lock_needs_its_own_flag_and_a_confirmation() {
    let ns = TestNs::new("lock-break").await;
    ns.ready_redis(2).await;
    let leases: Api<Lease> = ns.api();
    leases
        .create(
            &PostParams::default(),
            &foreign_lease("redis", "elsewhere", 0),
        )
        .await
        .unwrap();
    // --yes alone never breaks a lock.
    let refused = ns
        .plugin(&["scale", "redis", "--replicas", "3", "--yes"])
        .await;
    refused.expect_code(3);
    refused.expect_one_error_line("is being changed by bob@elsewhere (pid 4242)");
    // --break-lock without a terminal and without --yes: nobody to ask.
    let unasked = ns
        .plugin(&["scale", "redis", "--replicas", "3", "--break-lock"])
        .await;
    unasked.expect_code(3);
    assert_eq!(ns.sts("redis").await.spec.replicas, Some(2));
    // Both flags: taken, after waiting out the other run's lease.
    let started = std::time::Instant::now();
    let broke = ns
        .plugin(&["scale", "redis", "--replicas", "3", "--yes", "--break-lock"])
        .await;
    broke.expect_code(0);
    assert!(
        broke.stderr.contains("taking the lock from bob@elsewhere"),
        "{}",
        broke.stderr
    );
    assert!(broke.stderr.contains("waiting 30s"), "{}", broke.stderr);
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert_eq!(ns.sts("redis").await.spec.replicas, Some(3));
}

#[tokio::test]
async fn an_owned_statefulset_is_refused_unless_allowed_and_gitops_markers_warn() {
    let ns = TestNs::new("lock-owned").await;
    ns.ready_redis(2).await;
    // A ConfigMap stands in for an operator's custom resource.
    let cms: Api<ConfigMap> = ns.api();
    let owner: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "db-operator"}})).unwrap();
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "db-operator",
            "uid": owner.uid().unwrap(), "controller": true}],
        "labels": {"argocd.argoproj.io/instance": "shop"}
    }});
    ns.api::<k8s_openapi::api::apps::v1::StatefulSet>()
        .patch("redis", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let rv = ns.sts("redis").await.resource_version();
    for args in [
        vec!["scale", "redis", "--replicas", "3", "--yes"],
        vec![
            "canary",
            "redis",
            "--image",
            "redis=redis:7.4-alpine",
            "--yes",
        ],
    ] {
        let r = ns.plugin(&args).await;
        r.expect_code(3);
        r.expect_one_error_line("is controlled by ConfigMap/db-operator (v1)");
        assert!(r.stderr.contains("--allow-owned"), "{}", r.stderr);
    }
    assert_eq!(
        ns.sts("redis").await.resource_version(),
        rv,
        "nothing written"
    );
    let plan = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "3",
            "--allow-owned",
            "--dry-run",
        ])
        .await;
    plan.expect_code(0);
    assert!(
        plan.stdout
            .contains("managed by Argo CD: the next sync may revert replicas"),
        "{}",
        plan.stdout
    );
    let allowed = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "3",
            "--allow-owned",
            "--yes",
        ])
        .await;
    allowed.expect_code(0);
    let sts = ns.sts("redis").await;
    assert_eq!(sts.spec.replicas, Some(3));
    let verdict: serde_json::Value =
        serde_json::from_str(&sts.annotations()["sts-safe.dev/last-operation"]).unwrap();
    assert_eq!(
        (&verdict["command"], &verdict["replicas"]),
        (&"scale".into(), &3.into())
    );
}

#[tokio::test]
async fn prune_skips_the_claims_of_a_locked_statefulset() {
    let ns = TestNs::new("lock-prune").await;
    ns.ready_redis(3).await;
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=2"])
        .expect_code(0);
    ns.eventually(WAIT, "redis down to 2 pods", || async {
        (ns.pods().await.len() == 2).then_some(())
    })
    .await;
    let leases: Api<Lease> = ns.api();
    leases
        .create(
            &PostParams::default(),
            &foreign_lease("redis", "elsewhere", 0),
        )
        .await
        .unwrap();
    let run = ns.plugin(&["prune-pvcs", "redis", "--yes"]).await;
    run.expect_code(3);
    assert!(
        run.stdout.contains(
            "skipped redis-data-redis-2: statefulset \"redis\" is being changed by bob@elsewhere"
        ),
        "{}",
        run.stdout
    );
    assert!(ns
        .pvc_names()
        .await
        .contains(&"redis-data-redis-2".to_string()));
    // Once the lock is gone, the same command deletes it, under its own lock.
    leases
        .delete("sts-safe-redis", &Default::default())
        .await
        .unwrap();
    let run = ns.plugin(&["prune-pvcs", "redis", "--yes"]).await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("deleted redis-data-redis-2"),
        "{}",
        run.stdout
    );
    assert!(lease(&ns, "redis").await.is_none());
}

#[tokio::test]
async fn every_ending_is_recorded_on_the_statefulset_and_rollback_reports_in_json() {
    let ns = TestNs::new("lock-verdict").await;
    ns.ready_redis(3).await;
    let verdict = |sts: &k8s_openapi::api::apps::v1::StatefulSet| -> serde_json::Value {
        serde_json::from_str(&sts.annotations()["sts-safe.dev/last-operation"]).unwrap()
    };
    let failed = ns
        .plugin(&["canary", "redis", "--image", "redis:7.4-crashloop", "--yes"])
        .await;
    failed.expect_code(3);
    let v = verdict(&ns.sts("redis").await);
    assert_eq!(
        (&v["command"], &v["outcome"], &v["exitCode"]),
        (&"canary".into(), &"stopped".into(), &3.into()),
        "{v}"
    );
    assert_ne!(
        v["updateRevision"], v["currentRevision"],
        "a rollout is left pending: {v}"
    );

    let rollback = ns
        .plugin(&["rollback", "redis", "--yes", "-o", "json"])
        .await;
    rollback.expect_code(0);
    let report = rollback.json();
    assert_eq!(report["kind"], "RollbackReport", "{report}");
    assert_eq!(report["exitCode"], 0);
    assert!(
        report["lock"].as_str().is_some_and(|h| h.contains('@')),
        "{report}"
    );
    assert_eq!(report["plan"]["kind"], "RollbackPlan");
    let v = verdict(&ns.sts("redis").await);
    assert_eq!(
        (&v["command"], &v["outcome"]),
        (&"rollback".into(), &"succeeded".into()),
        "{v}"
    );
    assert_eq!(v["holder"], report["lock"]);
    assert!(lease(&ns, "redis").await.is_none());
}
