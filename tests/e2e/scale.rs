//! `scale` against the real StatefulSet controller and PV binder.

use std::time::Duration;

use kube::ResourceExt;
use sts_safe::model;

use crate::support::{Recorder, TestNs};

#[tokio::test]
async fn up_then_down_then_up_again_shows_what_happens_to_the_data() {
    let ns = TestNs::new("scale-updown").await;
    ns.ready_redis(3).await;
    let rec = Recorder::start(&ns).await;

    let up = ns
        .plugin(&["scale", "redis", "--replicas", "5", "--yes"])
        .await;
    up.expect_code(0);
    assert!(
        up.stdout
            .contains("PVC redis-data-redis-3 will be created (StorageClass gp3-encrypted)"),
        "{}",
        up.stdout
    );
    assert!(
        up.stdout
            .contains("done: statefulset \"redis\" runs 5 replicas"),
        "{}",
        up.stdout
    );
    let rev = model::current_revision(&ns.sts("redis").await)
        .unwrap()
        .to_string();
    rec.caught_up().await;
    let order = rec.ready_order(&rev);
    assert_eq!(
        &order[order.len() - 2..],
        ["redis-3", "redis-4"],
        "3 before 4"
    );
    for p in ns.pvcs().await {
        assert_eq!(model::pvc_phase(&p), "Bound", "{}", p.name_any());
    }

    let down = ns
        .plugin(&["scale", "redis", "--replicas", "3", "--yes"])
        .await;
    down.expect_code(0);
    let out = &down.stdout;
    let (i4, i3) = (
        out.find("remove redis-4").unwrap(),
        out.find("remove redis-3").unwrap(),
    );
    assert!(i4 < i3, "highest ordinal first:\n{out}");
    assert!(
        out.contains("PVC redis-data-redis-4 is kept (10Gi)"),
        "{out}"
    );
    assert!(
        out.contains("2 PVC(s) left behind (20Gi): redis-data-redis-3, redis-data-redis-4"),
        "{out}"
    );
    assert!(
        out.contains(&format!("kubectl sts-safe prune-pvcs redis -n {}", ns.name)),
        "{out}"
    );
    assert_eq!(ns.pods().await.len(), 3, "removed pods are fully gone");
    assert_eq!(ns.pvcs().await.len(), 5, "PVCs kept");

    let again = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "4",
            "--dry-run",
            "-o",
            "json",
        ])
        .await;
    again.expect_code(0);
    let plan = again.json();
    assert_eq!(plan["pods"][0]["pvcs"][0]["name"], "redis-data-redis-3");
    assert_eq!(plan["pods"][0]["pvcs"][0]["action"], "reattached");
    assert!(plan["warnings"][0].as_str().unwrap().contains("old data"));
    let run = ns
        .plugin(&["scale", "redis", "--replicas", "4", "--yes"])
        .await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("PVC redis-data-redis-3 already exists"),
        "{}",
        run.stdout
    );

    // The report of a scale-down counts the pods that are there, not the controller's
    // status of a moment before (which still counted the removed ones).
    let json = ns
        .plugin(&["scale", "redis", "--replicas", "2", "--yes", "-o", "json"])
        .await;
    json.expect_code(0);
    let report = json.json();
    assert_eq!(report["kind"], "ScaleReport", "{report}");
    assert_eq!(report["replicas"], 2, "{report}");
    assert_eq!(report["readyReplicas"], 2, "{report}");
    let orphans: Vec<&str> = report["orphanPvcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        orphans,
        [
            "redis-data-redis-2",
            "redis-data-redis-3",
            "redis-data-redis-4"
        ],
        "{report}"
    );
}

#[tokio::test]
async fn unprovisioned_class_stops_at_the_first_stuck_pod() {
    let ns = TestNs::new("scale-stuck").await;
    let class = format!("{}-flaky", ns.name);
    crate::support::ensure_storage_class(&ns.client, &class, "sts-safe.dev/sim", "Delete").await;
    let yaml = crate::support::SEED_REDIS
        .replace("replicas: 3", "replicas: 1")
        .replace(
            "storageClassName: gp3-encrypted",
            &format!("storageClassName: {class}"),
        );
    ns.apply(&yaml).await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    // The class loses its provisioner: new claims will never be provisioned.
    let api: kube::Api<k8s_openapi::api::storage::v1::StorageClass> =
        kube::Api::all(ns.client.clone());
    api.delete(&class, &Default::default()).await.unwrap();
    ns.eventually(Duration::from_secs(10), "class deleted", || async {
        api.get(&class).await.is_err().then_some(())
    })
    .await;
    crate::support::ensure_storage_class(&ns.client, &class, "sts-safe.dev/nobody", "Delete").await;

    let r = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "3",
            "--step-timeout",
            "4s",
            "--yes",
        ])
        .await;
    r.expect_code(3);
    let err = r.stderr.lines().last().unwrap();
    assert!(
        err.contains("PVC \"redis-data-redis-1\" is Pending"),
        "{err}"
    );
    assert!(err.contains(&class), "names the StorageClass: {err}");
    assert!(err.contains("replicas set back to 1"), "{err}");
    assert_eq!(
        ns.sts("redis").await.spec.replicas,
        Some(1),
        "left at the last healthy count"
    );
    let _ = api.delete(&class, &Default::default()).await;
}

#[tokio::test]
async fn preflight_refusals_write_nothing() {
    let ns = TestNs::new("scale-refuse").await;
    ns.ready_redis(3).await;
    ns.apply(
        r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: redis}
spec: {minAvailable: 3, selector: {matchLabels: {app: redis}}}
"#,
    )
    .await;
    let rv = ns.sts("redis").await.resource_version();
    let pdb = ns
        .plugin(&["scale", "redis", "--replicas", "2", "--yes"])
        .await;
    pdb.expect_code(3)
        .expect_one_error_line("requires minAvailable 3");

    let zero = ns
        .plugin(&["scale", "redis", "--replicas", "0", "--yes"])
        .await;
    zero.expect_code(3)
        .expect_one_error_line("needs both --yes and --allow-zero");

    let same = ns
        .plugin(&["scale", "redis", "--replicas", "3", "--yes"])
        .await;
    same.expect_code(0);
    assert!(same.stderr.contains("already at 3 replicas"));

    let no_tty = ns.plugin(&["scale", "redis", "--replicas", "4"]).await;
    no_tty.expect_code(3).expect_one_error_line("--yes");

    let dry = ns
        .plugin(&["scale", "redis", "--replicas", "5", "--dry-run"])
        .await;
    dry.expect_code(0);
    assert!(
        dry.stdout.contains("create redis-3") && dry.stdout.contains("create redis-4"),
        "{}",
        dry.stdout
    );
    let server = ns
        .plugin(&["scale", "redis", "--replicas", "5", "--dry-run=server"])
        .await;
    server.expect_code(0);
    assert!(
        server.stderr.contains("the API server accepted"),
        "{}",
        server.stderr
    );
    let bad_server = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "2147483647",
            "--dry-run=server",
            "--force",
        ])
        .await;
    assert_eq!(
        ns.sts("redis").await.resource_version(),
        rv,
        "nothing written: {bad_server:?}"
    );

    // A pod that is not Ready: refused unless --force.
    ns.patch_sts("redis", serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"sim.sts-safe.dev/behavior": "never-ready"}}}}}))
        .await;
    ns.eventually(
        Duration::from_secs(30),
        "redis-2 recreated and not Ready",
        || async {
            let p = ns
                .api::<k8s_openapi::api::core::v1::Pod>()
                .get("redis-2")
                .await
                .ok()?;
            (model::revision(&p) == model::update_revision(&ns.sts("redis").await)
                && !model::is_ready(&p))
            .then_some(())
        },
    )
    .await;
    let unready = ns
        .plugin(&["scale", "redis", "--replicas", "4", "--yes"])
        .await;
    unready
        .expect_code(3)
        .expect_one_error_line("not Running/Ready: redis-2");
    let forced = ns
        .plugin(&[
            "scale",
            "redis",
            "--replicas",
            "4",
            "--yes",
            "--force",
            "--dry-run",
        ])
        .await;
    forced.expect_code(0);
}

#[tokio::test]
async fn concurrent_replica_change_is_detected() {
    let ns = TestNs::new("scale-race").await;
    ns.ready_redis(2).await;
    let child = ns
        .plugin_command(&["scale", "redis", "--replicas", "4", "--soak", "5s", "--yes"])
        .spawn()
        .unwrap();
    ns.eventually(Duration::from_secs(20), "the first step", || async {
        (ns.sts("redis").await.spec.replicas == Some(3)).then_some(())
    })
    .await;
    ns.patch_sts("redis", serde_json::json!({"spec": {"replicas": 6}}))
        .await; // an "autoscaler"
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("changed by someone else"), "{err}");
    assert_eq!(
        ns.sts("redis").await.spec.replicas,
        Some(6),
        "the other writer's value is left alone"
    );
}
