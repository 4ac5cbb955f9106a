//! `resize-pvcs` against the real API server (PersistentVolumeClaimResize and
//! ResourceQuota admission), the real controller-manager (expand controller, StatefulSet
//! controller, garbage collector) and sim-kubelet as the external resizer and kubelet
//! (online, offline and failing classes).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams, PostParams};
use kube::ResourceExt;
use sts_safe::model;
use sts_safe::plan::resize::template_size;

use crate::support::{audit_is_write, plugin_audit_events, pod_deletes, Recorder, TestNs};

/// Capacity of each claim, by name.
async fn capacities(ns: &TestNs) -> BTreeMap<String, String> {
    ns.pvcs()
        .await
        .iter()
        .map(|p| (p.name_any(), model::pvc_capacity(p).unwrap_or_default()))
        .collect()
}

fn template_sizes(sts: &StatefulSet) -> BTreeMap<String, String> {
    model::claim_templates(sts)
        .into_iter()
        .filter_map(|t| Some((t.clone(), template_size(sts, &t)?)))
        .collect()
}

async fn pod_uids(ns: &TestNs) -> BTreeMap<String, String> {
    ns.pods()
        .await
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap()))
        .collect()
}

/// The plugin wrote nothing (dry-run requests are not writes: their URI says so, except
/// a delete's, whose DeleteOptions carry it in the body; `--dry-run=server` callers check
/// the object's uid instead).
fn nothing_written(ns: &TestNs) {
    nothing_written_but(ns, &[]);
}

fn nothing_written_but(ns: &TestNs, dry_deletes: &[&str]) {
    let writes: Vec<String> = plugin_audit_events(&ns.name)
        .iter()
        .filter(|e| audit_is_write(e) && !e["requestURI"].as_str().unwrap_or("").contains("dryRun"))
        .filter(|e| {
            !(e["verb"] == "delete" && dry_deletes.iter().any(|n| e["objectRef"]["name"] == *n))
        })
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(writes.is_empty(), "nothing may be written: {writes:?}");
}

#[tokio::test]
async fn online_resize_grows_every_claim_and_the_template_without_touching_a_pod() {
    let ns = TestNs::new("resize-online").await;
    ns.ready_redis_in_class(5, "sim-standard").await;
    // One claim kept from a scale-down: it must come back at the new size.
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=4"])
        .expect_code(0);
    ns.eventually(Duration::from_secs(60), "redis-4 gone", || async {
        (ns.pods().await.len() == 4).then_some(())
    })
    .await;
    let before = ns.wait_ready("redis", Duration::from_secs(60)).await;
    let revision = model::update_revision(&before).unwrap().to_string();
    let uids = pod_uids(&ns).await;
    // The scale-down's delete of redis-4 is in the log already.
    let deletes = pod_deletes(&ns.name);

    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(0);
    let out = &r.stdout;
    let (i4, i0) = (
        out.find("redis-data-redis-4").unwrap(),
        out.find("redis-data-redis-0").unwrap(),
    );
    assert!(i4 < i0, "top ordinal first:\n{out}");
    assert!(out.contains("propagationPolicy=Orphan"), "{out}");
    assert!(
        out.contains(&format!("update revision {revision} unchanged")),
        "{out}"
    );
    assert!(out.contains("0 pods replaced"), "{out}");

    let caps = capacities(&ns).await;
    assert_eq!(caps.len(), 5);
    assert!(caps.values().all(|c| c == "20Gi"), "{caps:?}");
    let after = ns.sts("redis").await;
    assert_ne!(after.uid(), before.uid(), "the object was re-created");
    assert_eq!(template_sizes(&after)["redis-data"], "20Gi");
    assert_eq!(model::update_revision(&after), Some(revision.as_str()));
    assert_eq!(
        model::partition(&after),
        model::partition(&before),
        "partition given back"
    );
    assert_eq!(pod_uids(&ns).await, uids, "no pod was replaced");
    assert_eq!(pod_deletes(&ns.name), deletes, "no pod deleted, by anyone");
    for p in ns.pods().await {
        let owner = p
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .cloned();
        assert_eq!(
            owner.map(|o| o.uid),
            after.uid(),
            "{} adopted",
            p.name_any()
        );
    }
    assert!(
        ns.api::<ConfigMap>()
            .get_opt("sts-safe-resize-redis")
            .await
            .unwrap()
            .is_none(),
        "the record is gone"
    );
    // The real expand controller handed the claims to the external resizer.
    let events = ns.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "reason=ExternalExpanding",
        "-o",
        "name",
    ]);
    assert!(
        !events.stdout.trim().is_empty(),
        "ExternalExpanding events: {events:?}"
    );

    // A scale-up: the kept claim comes back at 20Gi, the new one is created at 20Gi.
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=6"])
        .expect_code(0);
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    let caps = capacities(&ns).await;
    assert_eq!(caps["redis-data-redis-4"], "20Gi");
    assert_eq!(caps["redis-data-redis-5"], "20Gi", "{caps:?}");

    // Again: nothing to do.
    let again = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    again.expect_code(0);
    assert!(
        again.stderr.contains("nothing to resize"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn offline_claims_wait_for_a_restart_that_restart_pods_does_one_at_a_time() {
    let ns = TestNs::new("resize-offline").await;
    ns.ready_redis_in_class(3, "sim-offline").await;
    let uids = pod_uids(&ns).await;
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(0);
    assert!(r.stdout.contains("restart needed:"), "{}", r.stdout);
    assert!(
        r.stdout.contains("redis-2, redis-1, redis-0"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "kubectl sts-safe resize-pvcs redis -n {} --size redis-data=20Gi --restart-pods",
            ns.name
        )),
        "{}",
        r.stdout
    );
    assert_eq!(
        template_sizes(&ns.sts("redis").await)["redis-data"],
        "20Gi",
        "template done"
    );
    assert_eq!(
        pod_uids(&ns).await,
        uids,
        "no pod restarted without --restart-pods"
    );
    assert!(capacities(&ns).await.values().all(|c| c == "10Gi"));

    let rec = Recorder::start(&ns).await;
    let r = ns
        .plugin(&[
            "resize-pvcs",
            "redis",
            "--size",
            "redis-data=20Gi",
            "--restart-pods",
            "--yes",
        ])
        .await;
    r.expect_code(0);
    assert!(
        r.stdout.contains("restart pod (filesystem pending)"),
        "{}",
        r.stdout
    );
    assert!(capacities(&ns).await.values().all(|c| c == "20Gi"));
    let now = pod_uids(&ns).await;
    assert!(
        now.iter().all(|(n, u)| uids[n] != *u),
        "every pod restarted: {now:?}"
    );
    rec.caught_up().await;
    let names: Vec<String> = (0..3).map(|o| format!("redis-{o}")).collect();
    assert_eq!(rec.max_unavailable(&names), 1, "one pod at a time");
    // Evictions by the plugin (the kubelet then removes each pod); no delete of its own.
    let deletes = pod_deletes(&ns.name);
    let evictions = deletes.iter().filter(|e| e.starts_with("create ")).count();
    assert_eq!(evictions, 3, "{deletes:?}");
    assert!(
        !deletes
            .iter()
            .any(|e| e.starts_with("delete ") && e.contains("kubectl-sts-safe")),
        "evictions, not deletes: {deletes:?}"
    );
}

#[tokio::test]
async fn a_failing_expansion_stops_at_the_first_claim_with_the_resizers_message() {
    let ns = TestNs::new("resize-fail").await;
    ns.ready_redis_in_class(3, "sim-failing").await;
    let before = ns.sts("redis").await;
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(3);
    r.expect_error_line("PVC \"redis-data-redis-2\" did not grow");
    assert!(
        r.stderr
            .contains("the simulated backend cannot grow volumes"),
        "{}",
        r.stderr
    );
    let requests: BTreeMap<String, String> = ns
        .pvcs()
        .await
        .iter()
        .map(|p| (p.name_any(), model::pvc_request(p).unwrap()))
        .collect();
    assert_eq!(requests["redis-data-redis-2"], "20Gi");
    assert_eq!(
        requests["redis-data-redis-1"], "10Gi",
        "nothing after the first claim"
    );
    assert_eq!(requests["redis-data-redis-0"], "10Gi");
    let after = ns.sts("redis").await;
    assert_eq!(
        after.uid(),
        before.uid(),
        "template untouched: not re-created"
    );
    assert_eq!(template_sizes(&after)["redis-data"], "10Gi");
    assert!(ns
        .api::<ConfigMap>()
        .get_opt("sts-safe-resize-redis")
        .await
        .unwrap()
        .is_none());
    // A re-run names the earlier failure instead of trying again blindly.
    let again = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    again.expect_code(3);
    again.expect_one_error_line("failed to grow in an earlier attempt");
}

#[tokio::test]
async fn with_two_claim_templates_only_the_named_one_grows() {
    let ns = TestNs::new("resize-two").await;
    let yaml = crate::support::SEED_REDIS
        .replace("replicas: 3", "replicas: 2")
        .replace("storageClassName: gp3-encrypted", "storageClassName: sim-standard")
        .replace(
            "              mountPath: /data # Each pod mounts its own /data volume",
            "              mountPath: /data\n            - name: logs\n              mountPath: /logs",
        )
        .replace(
            "  volumeClaimTemplates: # This is what makes it a StatefulSet\n",
            "  volumeClaimTemplates:\n    - metadata: {name: logs}\n      spec: {accessModes: [ReadWriteOnce], storageClassName: sim-standard, resources: {requests: {storage: 1Gi}}}\n",
        );
    ns.apply(&yaml).await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    let bare = ns
        .plugin(&["resize-pvcs", "redis", "--size", "2Gi", "--yes"])
        .await;
    bare.expect_code(2);
    bare.expect_one_error_line("has 2 volumeClaimTemplates");
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "logs=2Gi", "--yes"])
        .await;
    r.expect_code(0);
    let caps = capacities(&ns).await;
    assert_eq!(caps["logs-redis-0"], "2Gi");
    assert_eq!(caps["logs-redis-1"], "2Gi");
    assert_eq!(caps["redis-data-redis-0"], "10Gi");
    assert_eq!(caps["redis-data-redis-1"], "10Gi");
    let sizes = template_sizes(&ns.sts("redis").await);
    assert_eq!(
        (sizes["logs"].as_str(), sizes["redis-data"].as_str()),
        ("2Gi", "10Gi")
    );
}

#[tokio::test]
async fn every_preflight_refusal_writes_nothing() {
    let ns = TestNs::new("resize-refuse").await;
    ns.ready_redis_in_class(3, "sim-standard").await;
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--size", "5Gi"], 2, "PVCs cannot shrink"),
        (
            &["--size", "wal=20Gi"],
            2,
            "has no volumeClaimTemplate \"wal\" (it has: redis-data)",
        ),
        (&["--size", "20gb"], 2, "is not a Kubernetes quantity"),
        (&[], 2, "say how large"),
        (&["--resume"], 3, "nothing to resume"),
    ];
    for (extra, code, needle) in cases {
        let mut args = vec!["resize-pvcs", "redis", "--yes"];
        args.extend_from_slice(extra);
        let r = ns.plugin(&args).await;
        r.expect_code(*code);
        r.expect_one_error_line(needle);
    }
    let equal = ns
        .plugin(&["resize-pvcs", "redis", "--size", "10Gi", "--yes"])
        .await;
    equal.expect_code(0);
    assert!(
        equal.stderr.contains("nothing to resize"),
        "{}",
        equal.stderr
    );

    // A quota on requests.storage: 30Gi used, room for 5Gi, the resize needs 30Gi.
    let quota: k8s_openapi::api::core::v1::ResourceQuota =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "storage"}, "spec": {"hard": {"requests.storage": "35Gi"}}
        }))
        .unwrap();
    ns.api()
        .create(&PostParams::default(), &quota)
        .await
        .unwrap();
    ns.eventually(Duration::from_secs(30), "quota usage", || async {
        let q = ns
            .api::<k8s_openapi::api::core::v1::ResourceQuota>()
            .get("storage")
            .await
            .ok()?;
        q.status?
            .used?
            .get("requests.storage")
            .filter(|u| u.0 == "30Gi")
            .map(|_| ())
    })
    .await;
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(3);
    r.expect_one_error_line("resourcequota \"storage\" has room for 5Gi more of requests.storage (hard 35Gi, used 30Gi), and growing the claims needs 30Gi");
    ns.kubectl(&["delete", "resourcequota", "storage"])
        .expect_code(0);

    // A rollout pending.
    ns.patch_sts(
        "redis",
        serde_json::json!({"spec": {
        "updateStrategy": {"rollingUpdate": {"partition": 3}},
        "template": {"spec": {"containers": [{"name": "redis", "image": "redis:7.4-alpine"}]}}}}),
    )
    .await;
    ns.eventually(Duration::from_secs(30), "rollout pending", || async {
        model::rollout_pending(&ns.sts("redis").await).then_some(())
    })
    .await;
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(3);
    r.expect_one_error_line("has a rollout pending");

    // Without a terminal and without --yes.
    let r = ns.plugin(&["resize-pvcs", "redis", "--size", "20Gi"]).await;
    r.expect_code(3);
    r.expect_one_error_line("no terminal to confirm the resize");
    nothing_written(&ns);
}

#[tokio::test]
async fn a_class_without_expansion_an_owner_or_unready_pods_refuse() {
    let ns = TestNs::new("resize-refuse2").await;
    ns.ready_redis_in_class(2, "sim-fixed").await;
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(3);
    r.expect_one_error_line("StorageClass \"sim-fixed\" does not allow volume expansion");

    // An operator owns it (a ConfigMap stands in for its custom resource).
    let owner: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "db-operator"}})).unwrap();
    let owner = ns
        .api::<ConfigMap>()
        .create(&PostParams::default(), &owner)
        .await
        .unwrap();
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "db-operator",
            "uid": owner.uid().unwrap(), "controller": true}],
        "labels": {"argocd.argoproj.io/instance": "shop"}}});
    ns.api::<StatefulSet>()
        .patch("redis", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(3);
    r.expect_one_error_line("is controlled by ConfigMap/db-operator (v1)");
    nothing_written(&ns);

    let unready = TestNs::new("resize-unready").await;
    unready.seed_redis(2, "redis:7-never-ready").await;
    unready
        .eventually(Duration::from_secs(60), "pods running", || async {
            let pods = unready.pods().await;
            (pods.len() == 1 && model::phase(&pods[0]) == "Running").then_some(())
        })
        .await;
    let r = unready
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(3);
    r.expect_one_error_line("pods that are not Running/Ready");
    nothing_written(&unready);
}

#[tokio::test]
async fn dry_runs_show_the_plan_and_change_nothing() {
    let ns = TestNs::new("resize-dry").await;
    ns.ready_redis_in_class(2, "sim-standard").await;
    ns.patch_sts(
        "redis",
        serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}}}),
    )
    .await;
    let uid = ns.sts("redis").await.uid();
    let r = ns
        .plugin(&[
            "resize-pvcs",
            "redis",
            "--size",
            "20Gi",
            "--dry-run",
            "-o",
            "json",
        ])
        .await;
    r.expect_code(0);
    let plan = r.json();
    assert_eq!(plan["kind"], "ResizePlan");
    assert_eq!(plan["claims"][0]["name"], "redis-data-redis-1");
    assert_eq!(plan["claims"][0]["action"], "grow");
    assert_eq!(plan["claims"][0]["expansion"], "online");
    assert_eq!(plan["templates"][0]["to"], "20Gi");
    assert_eq!(plan["recreate"]["needed"], true);
    assert!(
        plan["warnings"]
            .to_string()
            .contains("managed by Helm: the next sync may revert the claim templates"),
        "{plan}"
    );
    let text = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--dry-run"])
        .await;
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("volumeClaimTemplate redis-data: 10Gi → 20Gi"),
        "{}",
        text.stdout
    );
    let server = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--dry-run=server"])
        .await;
    server.expect_code(0);
    assert!(
        server.stderr.contains("the API server accepted"),
        "{}",
        server.stderr
    );
    nothing_written_but(&ns, &["redis"]);
    assert_eq!(
        ns.sts("redis").await.uid(),
        uid,
        "the server dry run deleted nothing"
    );
    assert!(capacities(&ns).await.values().all(|c| c == "10Gi"));
    let pvcs: Vec<PersistentVolumeClaim> = ns.pvcs().await;
    assert!(pvcs
        .iter()
        .all(|p| model::pvc_request(p).as_deref() == Some("10Gi")));
}

/// OnDelete (vault-helm, some databases): the controller never moves currentRevision on
/// (kubernetes 73492), so "no rollout pending" is judged by the pods, and the re-created
/// object must compute the update revision the pods run.
#[tokio::test]
async fn an_ondelete_statefulset_whose_pods_were_updated_by_hand_is_resized() {
    let ns = TestNs::new("resize-ondelete").await;
    let yaml = crate::support::SEED_REDIS
        .replace(
            "replicas: 3",
            "replicas: 2\n  updateStrategy: {type: OnDelete}",
        )
        .replace(
            "storageClassName: gp3-encrypted",
            "storageClassName: sim-standard",
        );
    ns.apply(&yaml).await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    ns.patch_sts(
        "redis",
        serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "redis", "image": "redis:7.4-alpine"}]}}}}),
    )
    .await;
    // The pods still run the old revision: that is a rollout pending.
    let update = ns
        .eventually(
            Duration::from_secs(30),
            "the new update revision",
            || async {
                let s = ns.sts("redis").await;
                model::rollout_pending(&s).then(|| model::update_revision(&s).unwrap().to_string())
            },
        )
        .await;
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(3);
    r.expect_one_error_line("has a rollout pending");
    // Updated by hand, as OnDelete asks.
    ns.kubectl(&["delete", "pod", "redis-0", "redis-1"])
        .expect_code(0);
    ns.eventually(
        Duration::from_secs(60),
        "pods on the update revision",
        || async {
            let pods = ns.pods().await;
            (pods.len() == 2
                && pods
                    .iter()
                    .all(|p| model::revision(p) == Some(update.as_str()) && model::is_ready(p)))
            .then_some(())
        },
    )
    .await;
    let uids = pod_uids(&ns).await;
    let r = ns
        .plugin(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"])
        .await;
    r.expect_code(0);
    assert!(
        r.stdout
            .contains(&format!("update revision {update} unchanged")),
        "{}",
        r.stdout
    );
    assert_eq!(pod_uids(&ns).await, uids, "no pod replaced");
    let sts = ns.sts("redis").await;
    assert_eq!(model::strategy_type(&sts), "OnDelete");
    assert_eq!(template_sizes(&sts)["redis-data"], "20Gi");
}
