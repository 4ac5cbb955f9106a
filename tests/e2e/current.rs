//! What a current server (v1.37.2) has and the v1.20 floor does not, tested for real:
//! the PVC retention policy, `ordinals.start`, `minReadySeconds` with
//! `availableReplicas`, `maxUnavailable`, and the real scheduler. `make test` runs this
//! module on the current server only (`--skip current::` on the floor).

use std::collections::BTreeSet;
use std::time::Duration;

use kube::ResourceExt;
use sts_safe::model;

use crate::support::{pod_names, Check, Recorder, TestNs, SEED_REDIS};

const WAIT: Duration = Duration::from_secs(90);

/// Fails with the fix when the server is older than these behaviours.
async fn require_current(ns: &TestNs) {
    let v = ns.client.apiserver_version().await.expect("GET /version");
    let minor: u32 = v.minor.trim_end_matches('+').parse().unwrap_or(0);
    assert!(
        minor >= 31,
        "server {} lacks what this module tests: run it against K8S_VERSION=v1.37.2",
        v.git_version
    );
}

/// The seed's Redis with `replicas` and `extra` spec lines (two-space indented), Ready.
async fn seed(ns: &TestNs, replicas: i32, extra: &str) {
    require_current(ns).await;
    let yaml = SEED_REDIS.replace(
        "  replicas: 3\n",
        &format!("  replicas: {replicas}\n{extra}"),
    );
    ns.apply(&yaml).await;
    ns.wait_ready("redis", WAIT).await;
}

#[tokio::test]
async fn retention_when_scaled_delete_the_preview_names_what_the_controller_deletes() {
    let ns = TestNs::new("cur-retention").await;
    seed(
        &ns,
        3,
        "  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Retain}\n",
    )
    .await;
    let status = ns.plugin(&["status", "redis", "-o", "json"]).await;
    status.expect_code(0);
    assert_eq!(status.json()["pvcRetentionPolicy"]["whenScaled"], "Delete");

    let preview = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "1",
            "--dry-run",
            "-o",
            "json",
        ])
        .await;
    preview.expect_code(0);
    let plan = preview.json();
    let mut doomed = BTreeSet::new();
    for pod in plan["pods"].as_array().unwrap() {
        for pvc in pod["pvcs"].as_array().unwrap() {
            assert_eq!(pvc["action"], "deleted", "{plan}");
            doomed.insert(pvc["name"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        doomed,
        BTreeSet::from([
            "redis-data-redis-1".to_string(),
            "redis-data-redis-2".to_string()
        ])
    );

    ns.plugin(&["scale", "redis", "--replicas", "1", "--yes"])
        .await
        .expect_code(0);
    // The controller (owner references) and the garbage collector delete exactly those.
    let left = ns
        .eventually(WAIT, "the claims of removed pods deleted", || async {
            let names = ns.pvc_names().await;
            (names.len() == 1).then_some(names)
        })
        .await;
    assert_eq!(left, ["redis-data-redis-0"]);
    let before: BTreeSet<String> = ["0", "1", "2"]
        .iter()
        .map(|o| format!("redis-data-redis-{o}"))
        .collect();
    let deleted: BTreeSet<String> = before
        .difference(&left.into_iter().collect())
        .cloned()
        .collect();
    assert_eq!(
        deleted, doomed,
        "the preview said exactly what the controller did"
    );
}

#[tokio::test]
async fn ordinals_start_shifts_status_canary_scale_prune_and_doctor() {
    let ns = TestNs::new("cur-ordinals").await;
    seed(&ns, 2, "  ordinals: {start: 5}\n").await;
    let pods: Vec<String> = ns.pods().await.iter().map(|p| p.name_any()).collect();
    assert_eq!(pods, ["redis-5", "redis-6"]);

    let status = ns.plugin(&["status", "redis", "-o", "json"]).await;
    status.expect_code(0);
    let v = status.json();
    assert_eq!(v["ordinalStart"], 5);
    let ords: Vec<i64> = v["ordinals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["ordinal"].as_i64().unwrap())
        .collect();
    assert_eq!(ords, [5, 6]);

    let rec = Recorder::start(&ns).await;
    let canary = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis=redis:7.4-alpine",
            "--yes",
        ])
        .await;
    canary.expect_code(0);
    assert!(
        canary.stderr.contains("updating redis-6"),
        "{}",
        canary.stderr
    );
    rec.caught_up().await;
    // Partitions count in index space (ordinal − start): freeze 2, then 1, then 0.
    assert_eq!(rec.partitions("redis"), [0, 2, 1, 0]);
    for p in ns.pods().await {
        assert_eq!(model::images(&p), ["redis:7.4-alpine"], "{}", p.name_any());
    }

    ns.plugin(&["scale", "redis", "--replicas", "3", "--yes"])
        .await
        .expect_code(0);
    assert!(ns.pods().await.iter().any(|p| p.name_any() == "redis-7"));
    ns.plugin(&["scale", "redis", "--replicas", "2", "--yes"])
        .await
        .expect_code(0);
    let prune = ns
        .plugin(&["prune-pvcs", "redis", "--dry-run", "-o", "json"])
        .await;
    prune.expect_code(0);
    let proposed: Vec<String> = prune.json()["pvcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(proposed, ["redis-data-redis-7"]);

    let doctor = ns.plugin(&["doctor", "redis", "-o", "json"]).await;
    let findings = doctor.json()["findings"].clone();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"
                && !f["check"].as_str().unwrap().starts_with("partition")),
        "{findings}"
    );
    doctor.expect_code(0);
}

#[tokio::test]
async fn min_ready_seconds_counts_in_available_replicas_and_in_every_gate() {
    let ns = TestNs::new("cur-minready").await;
    seed(&ns, 2, "  minReadySeconds: 2\n").await;
    ns.eventually(WAIT, "availableReplicas 2", || async {
        let r = ns.plugin(&["status", "redis", "-o", "json"]).await;
        (r.json()["replicas"]["available"] == 2).then_some(())
    })
    .await;

    let plan = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis=redis:7.4-alpine",
            "--dry-run",
            "-o",
            "json",
        ])
        .await;
    plan.expect_code(0);
    let gates = plan.json()["gates"].clone();
    assert_eq!(
        (
            gates["minReadySeconds"].as_i64(),
            gates["soakSeconds"].as_i64()
        ),
        (Some(2), Some(2)),
        "{gates}"
    );

    let run = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis=redis:7.4-alpine",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    run.expect_code(0);
    let report = run.json();
    assert_eq!(report["outcome"], "completed");
    for step in report["steps"].as_array().unwrap() {
        assert!(
            step["seconds"].as_f64().unwrap() >= 2.0,
            "a pod passes only after minReadySeconds: {step}"
        );
    }
    let sts = ns.sts("redis").await;
    assert_eq!(sts.status.unwrap().available_replicas, Some(2));
}

#[tokio::test]
async fn max_unavailable_is_counted_per_step_and_never_widens_a_canary_step() {
    // The server defaults (and here is asked for) maxUnavailable; the canary's partition
    // still exposes one pod per step by default and `--steps` pods per step at most.
    let ns = TestNs::new("cur-maxunavail").await;
    seed(
        &ns,
        4,
        "  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 3}}\n",
    )
    .await;
    let status = ns.plugin(&["status", "redis", "-o", "json"]).await;
    assert_eq!(status.json()["updateStrategy"]["maxUnavailable"], "3");

    let rec = Recorder::start(&ns).await;
    ns.plugin(&[
        "canary",
        "redis",
        "--image",
        "redis=redis:7.4-alpine",
        "--yes",
    ])
    .await
    .expect_code(0);
    rec.caught_up().await;
    assert_eq!(
        rec.max_unavailable(&pod_names("redis", 4)),
        1,
        "one pod per step"
    );
    assert_eq!(rec.partitions("redis"), [0, 4, 3, 2, 1, 0]);
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "default steps");

    // A PDB that allows one disruption: the plan counts the pods a step takes down.
    ns.apply(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: redis}\nspec: {minAvailable: 3, selector: {matchLabels: {app: redis}}}\n",
    )
    .await;
    ns.eventually(WAIT, "the PDB's status", || async {
        let pdbs: kube::Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> = ns.api();
        let p = pdbs.get("redis").await.ok()?;
        (p.status?.disruptions_allowed == Some(1)).then_some(())
    })
    .await;
    let rec = Recorder::start(&ns).await;
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis=redis:7.2-alpine",
            "--steps",
            "2,100%",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    r.expect_code(0);
    let plan = &r.json()["plan"];
    let down: Vec<i64> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["maxDown"].as_i64().unwrap())
        .collect();
    assert_eq!(down, [2, 2], "maxUnavailable 3 on a 2-pod step: 2 at once");
    assert!(
        plan["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("PodDisruptionBudget \"redis\" allows 1 disruption(s) right now, but a step takes up to 2 pods down at once")),
        "{plan}"
    );
    rec.caught_up().await;
    let most = rec.max_unavailable(&pod_names("redis", 4));
    assert!(
        (1..=2).contains(&most),
        "a 2-pod step takes at most 2 down at once (maxUnavailable 3 allows the controller 2 here), saw {most}"
    );
}

#[tokio::test]
async fn a_pod_no_node_can_take_stays_pending_and_scale_says_why() {
    // Required anti-affinity per host: three sim nodes take three pods; the real
    // scheduler leaves the fourth Pending.
    let ns = TestNs::new("cur-antiaffinity").await;
    let affinity = "  template:\n    metadata:\n      labels:\n        app: redis\n    spec:\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector: {matchLabels: {app: redis}}\n            topologyKey: kubernetes.io/hostname\n";
    require_current(&ns).await;
    let yaml = SEED_REDIS.replace(
        "  template:\n    metadata:\n      labels:\n        app: redis\n    spec:\n",
        affinity,
    );
    assert_ne!(yaml, SEED_REDIS, "the affinity went in");
    ns.apply(&yaml).await;
    ns.wait_ready("redis", WAIT).await;
    let nodes: BTreeSet<String> = ns
        .pods()
        .await
        .iter()
        .filter_map(|p| model::node(p).map(str::to_string))
        .collect();
    assert_eq!(nodes.len(), 3, "one pod per node: {nodes:?}");

    // The claim of redis-3 is bound beforehand (as after an earlier scale-down), so the
    // only reason left not to schedule redis-3 is the anti-affinity. (A claim created
    // together with its pod can leave the 1.37 scheduler waiting for its 5-minute
    // unschedulable flush: see README, Local cluster.)
    ns.apply(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: redis-data-redis-3, labels: {app: redis}}\n\
         spec: {accessModes: [ReadWriteOnce], storageClassName: gp3-encrypted, resources: {requests: {storage: 10Gi}}}\n",
    )
    .await;
    ns.eventually(WAIT, "redis-data-redis-3 Bound", || async {
        let pvcs = ns.pvcs().await;
        pvcs.iter()
            .any(|p| p.name_any() == "redis-data-redis-3" && model::pvc_phase(p) == "Bound")
            .then_some(())
    })
    .await;
    let run = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "4",
            "--step-timeout",
            "40s",
            "--yes",
        ])
        .await;
    run.expect_code(3);
    let err = &run.stderr;
    assert!(
        err.contains("redis-3 is stuck in Pending: no node can take it"),
        "{err}"
    );
    assert!(err.contains("FailedScheduling"), "{err}");
    assert!(err.contains("anti-affinity"), "{err}");
    assert!(err.contains("replicas set back to 3"), "{err}");
    assert_eq!(ns.sts("redis").await.spec.replicas, Some(3));
}
