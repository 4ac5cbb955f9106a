//! `doctor` on StatefulSets broken in one way each finds exactly that.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{TestNs, SEED_REDIS};

/// The seed's Redis made clean: non-root, read-only root filesystem, a PDB.
fn hardened(replicas: i32) -> String {
    SEED_REDIS.replace("replicas: 3", &format!("replicas: {replicas}")).replace(
        "          ports:\n",
        "          securityContext: {runAsNonRoot: true, runAsUser: 999, readOnlyRootFilesystem: true}\n          ports:\n",
    ) + r#"
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: redis}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: redis}}}
"#
}

async fn doctor_ids(ns: &TestNs) -> (i32, BTreeSet<String>, serde_json::Value) {
    let r = ns.plugin(&["doctor", "redis", "-o", "json"]).await;
    let v = r.json();
    let ids = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect();
    (r.code, ids, v)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn clean_statefulset_has_no_findings() {
    let ns = TestNs::new("doc-clean").await;
    ns.apply(&hardened(2)).await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    let (code, ids, _) = doctor_ids(&ns).await;
    assert_eq!(ids, set(&[]));
    assert_eq!(code, 0);
    let text = ns.plugin(&["doctor"]).await;
    text.expect_code(0);
    assert!(
        text.stdout.contains("no problems found in redis"),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn service_name_mismatch() {
    let ns = TestNs::new("doc-svcname").await;
    ns.apply(&hardened(1).replace("serviceName: redis-headless", "serviceName: redis"))
        .await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    let (code, ids, v) = doctor_ids(&ns).await;
    assert_eq!(ids, set(&["service-missing"]));
    assert_eq!(code, 3);
    assert!(v["findings"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("serviceName \"redis\" names no Service"));
}

#[tokio::test]
async fn service_that_is_not_headless() {
    let ns = TestNs::new("doc-headless").await;
    ns.apply(&hardened(1).replace(
        "  clusterIP: None # \"Headless\" — no virtual IP, just DNS per pod\n",
        "",
    ))
    .await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    let (code, ids, _) = doctor_ids(&ns).await;
    assert_eq!(ids, set(&["service-not-headless"]));
    assert_eq!(code, 3);
}

#[tokio::test]
async fn root_container() {
    let ns = TestNs::new("doc-root").await;
    ns.apply(&hardened(1).replace("runAsNonRoot: true, runAsUser: 999", "runAsUser: 0"))
        .await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    let (code, ids, _) = doctor_ids(&ns).await;
    assert_eq!(ids, set(&["security-root-user", "security-non-root"]));
    assert_eq!(code, 3);
}

#[tokio::test]
async fn unprovisioned_storage_class_leaves_the_pod_pending_with_the_pvc_cause() {
    let ns = TestNs::new("doc-pending").await;
    ns.apply(&hardened(1).replace(
        "storageClassName: gp3-encrypted",
        "storageClassName: sim-unprovisioned",
    ))
    .await;
    ns.eventually(
        Duration::from_secs(30),
        "redis-0 and its PVC to exist",
        || async {
            let pods = ns.pods().await;
            let pvcs = ns.pvcs().await;
            (!pods.is_empty() && !pvcs.is_empty()).then_some(())
        },
    )
    .await;
    let (code, ids, v) = ns
        .eventually(Duration::from_secs(20), "a pod-pending finding", || async {
            let r = doctor_ids(&ns).await;
            r.1.contains("pod-pending").then_some(r)
        })
        .await;
    assert_eq!(ids, set(&["pod-pending"]));
    assert_eq!(code, 3);
    let problem = v["findings"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("redis-0 is stuck Pending"), "{problem}");
    assert!(
        problem.contains("PVC \"redis-data-redis-0\" is Pending"),
        "{problem}"
    );
    assert!(problem.contains("sim-unprovisioned"), "{problem}");
}

#[tokio::test]
async fn leftover_partition() {
    let ns = TestNs::new("doc-partition").await;
    ns.apply(&hardened(3)).await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    ns.patch_sts(
        "redis",
        serde_json::json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [{"name": "redis", "image": "redis:7.4-alpine"}]}}
        }}),
    )
    .await;
    let (code, ids, v) = ns
        .eventually(
            Duration::from_secs(30),
            "redis-2 updated and the leftover partition found",
            || async {
                let r = doctor_ids(&ns).await;
                // Until the controller has seen the change the partition is only "set" (info).
                (r.2["findings"][0]["severity"] == "warn").then_some(r)
            },
        )
        .await;
    assert_eq!(ids, set(&["partition-leftover"]));
    assert_eq!(code, 0, "a leftover partition is a warning");
    assert_eq!(v["findings"][0]["severity"], "warn");
}

#[tokio::test]
async fn all_namespaces_reports_each_finding_with_its_namespace() {
    // One namespace whose serviceName names no Service (error), one with a root
    // container (error), one clean.
    let (svc, root, clean) = (
        TestNs::new("doc-all-svc").await,
        TestNs::new("doc-all-root").await,
        TestNs::new("doc-all-clean").await,
    );
    svc.apply(&hardened(1).replace("serviceName: redis-headless", "serviceName: redis"))
        .await;
    root.apply(&hardened(1).replace("runAsNonRoot: true, runAsUser: 999", "runAsUser: 0"))
        .await;
    clean.apply(&hardened(1)).await;
    for ns in [&svc, &root, &clean] {
        ns.wait_ready("redis", Duration::from_secs(60)).await;
    }

    let r = svc.plugin(&["doctor", "-A", "-o", "json"]).await;
    r.expect_code(3);
    let v = r.json();
    assert_eq!(v["kind"], "DoctorReport");
    assert!(v["namespace"].is_null(), "{v}");
    let checked: Vec<&str> = v["statefulsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for ns in [&svc, &root, &clean] {
        assert!(
            checked.contains(&format!("{}/redis", ns.name).as_str()),
            "{checked:?}"
        );
    }
    let of = |ns: &TestNs| -> BTreeSet<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["namespace"] == ns.name.as_str())
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(of(&svc), set(&["service-missing"]));
    assert_eq!(of(&root), set(&["security-root-user", "security-non-root"]));
    assert_eq!(of(&clean), set(&[]));
    // The same findings as `doctor` in the namespace alone.
    let (_, alone, _) = doctor_ids(&root).await;
    assert_eq!(of(&root), alone);

    let text = root.plugin(&["doctor", "-A"]).await;
    text.expect_code(3);
    let out = &text.stdout;
    assert!(
        out.contains(&format!(
            "namespace {} (redis):\nERROR statefulset/redis [service-missing]\n",
            svc.name
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "namespace {} (redis):\nERROR statefulset/redis/container/redis [security-root-user]\n",
            root.name
        )),
        "{out}"
    );
    assert!(!out.contains(&clean.name), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.contains(" error(s), ") && last.contains(" namespace(s)"),
        "{out}"
    );

    // In one namespace, the findings carry it too.
    let one = root.plugin(&["doctor", "-o", "json"]).await;
    one.expect_code(3);
    let one = one.json();
    assert_eq!(one["namespace"], root.name.as_str());
    assert!(one["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["namespace"] == root.name.as_str()));
}
