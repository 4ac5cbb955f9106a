//! `prune-pvcs`'s hold (`sts-safe.dev/prune-hold`) against the real controllers: a claim
//! an interrupted run left marked and held is finished by the next run; a claim whose
//! deletion raced a scale-up stays held with its volume, is reported, and the README's
//! steps ("A prune that raced a scale-up") bring the pod back on that volume. And the
//! StatefulSet is judged by uid: one re-created under the same name is another object.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use sts_safe::plan::prune::HOLD;

use crate::support::{redis_scaled, Pty, TestNs};

const WAIT: Duration = Duration::from_secs(60);

/// What a run killed between its mark and its release leaves: the claim held by prune's
/// finalizer and marked for deletion.
async fn hold_and_mark(ns: &TestNs, name: &str) -> PersistentVolumeClaim {
    let api: Api<PersistentVolumeClaim> = ns.api();
    let pvc = api.get(name).await.unwrap();
    let mut finalizers = pvc.finalizers().to_vec();
    finalizers.push(HOLD.into());
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    let marked = api.get(name).await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    marked
}

fn row<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
}

#[tokio::test]
async fn a_claim_held_by_an_interrupted_run_is_finished_by_the_next() {
    let ns = redis_scaled("prune-held", 4, 2).await;
    hold_and_mark(&ns, "redis-data-redis-3").await;

    let plan = ns.plugin(&["prune-pvcs", "redis", "--dry-run"]).await;
    plan.expect_code(0);
    let out = &plan.stdout;
    assert!(
        row(out, "redis-data-redis-3").ends_with("Bound (held by an earlier run)"),
        "{out}"
    );
    assert!(row(out, "redis-data-redis-2").ends_with("Bound"), "{out}");
    let json = ns
        .plugin(&["prune-pvcs", "redis", "--dry-run", "-o", "json"])
        .await
        .json();
    let held: Vec<(&str, bool)> = json["pvcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["held"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        held,
        [("redis-data-redis-2", false), ("redis-data-redis-3", true)]
    );

    let run = ns.plugin(&["prune-pvcs", "redis", "--yes"]).await;
    run.expect_code(0);
    let deleted: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("deleted "))
        .collect();
    assert_eq!(
        deleted,
        ["deleted redis-data-redis-3", "deleted redis-data-redis-2"],
        "{}",
        run.stdout
    );
    ns.eventually(WAIT, "only redis-data-redis-0 and -1 left", || async {
        (ns.pvc_names().await == ["redis-data-redis-0", "redis-data-redis-1"]).then_some(())
    })
    .await;
}

/// Runs one step of the README's recovery, as written there.
fn step(ns: &TestNs, args: &[&str]) {
    let run = ns.kubectl(args);
    assert_eq!(run.code, 0, "kubectl {args:?}: {}", run.stderr);
}

#[tokio::test]
async fn a_claim_whose_delete_raced_a_scale_up_keeps_its_volume_and_comes_back() {
    let ns = redis_scaled("prune-raced", 4, 3).await;
    let api: Api<PersistentVolumeClaim> = ns.api();
    let name = "redis-data-redis-3";
    let before = api.get(name).await.unwrap();
    let pv = before.spec.as_ref().unwrap().volume_name.clone().unwrap();
    // The race as prune's final re-check finds it: marked under the hold, then live.
    hold_and_mark(&ns, name).await;
    step(&ns, &["scale", "statefulset", "redis", "--replicas=4"]);

    let plan = ns.plugin(&["prune-pvcs", "redis", "--yes"]).await;
    plan.expect_code(0);
    let out = &plan.stdout;
    assert!(out.contains("No PVC orphaned by scale-down"), "{out}");
    assert!(
        out.contains(&format!(
            "{name} (StatefulSet redis, ordinal 3): marked for deletion by an earlier \
             prune-pvcs, then ordinal 3 became live again: the finalizer {HOLD} keeps the \
             claim and its volume"
        )),
        "{out}"
    );
    let json = ns
        .plugin(&["prune-pvcs", "redis", "--dry-run", "-o", "json"])
        .await
        .json();
    assert_eq!(json["skipped"][0]["code"], "held", "{json}");
    let kept = api.get(name).await.unwrap();
    assert_eq!(kept.uid(), before.uid(), "the claim is kept");
    let pvs: Api<PersistentVolume> = Api::all(ns.client.clone());
    assert_eq!(
        pvs.get(&pv).await.unwrap().status.unwrap().phase.as_deref(),
        Some("Bound")
    );

    // The README's steps, in order.
    let retain = r#"{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}"#;
    step(&ns, &["patch", "pv", &pv, "-p", retain]);
    step(&ns, &["scale", "statefulset", "redis", "--replicas", "3"]);
    ns.eventually(WAIT, "redis-3 gone", || async {
        (ns.pods().await.len() == 3).then_some(())
    })
    .await;
    let drop_finalizers = r#"[{"op":"remove","path":"/metadata/finalizers"}]"#;
    step(
        &ns,
        &[
            "patch",
            "pvc",
            name,
            "--type",
            "json",
            "-p",
            drop_finalizers,
        ],
    );
    ns.eventually(WAIT, "the held claim gone", || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    let unbind = r#"{"spec":{"claimRef":{"uid":null,"resourceVersion":null}}}"#;
    step(&ns, &["patch", "pv", &pv, "-p", unbind]);
    step(&ns, &["scale", "statefulset", "redis", "--replicas", "4"]);
    ns.wait_ready("redis", WAIT).await;
    let back = api.get(name).await.unwrap();
    assert_ne!(back.uid(), before.uid(), "a new claim");
    assert_eq!(
        back.spec.as_ref().unwrap().volume_name.as_deref(),
        Some(pv.as_str()),
        "bound to the old volume: the pod started on its data"
    );
    let delete = r#"{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}"#;
    step(&ns, &["patch", "pv", &pv, "-p", delete]);
}

#[tokio::test]
async fn a_statefulset_recreated_between_the_plan_and_the_answer_is_another_object() {
    let ns = redis_scaled("prune-recreated", 3, 2).await;
    let before = ns.pvc_names().await;
    let mut pty = Pty::spawn(&ns, &["prune-pvcs", "redis"]);
    pty.expect("Delete 1 PVC(s)", WAIT).await;
    // Same name, same replicas, another object: the plan was made for the old one.
    let mut again = ns.sts("redis").await;
    ns.kubectl(&[
        "delete",
        "statefulset",
        "redis",
        "--cascade=orphan",
        "--wait=true",
    ])
    .expect_code(0);
    again.metadata = ObjectMeta {
        name: again.metadata.name.clone(),
        labels: again.metadata.labels.clone(),
        ..ObjectMeta::default()
    };
    again.status = None;
    let sets: Api<StatefulSet> = ns.api();
    sets.create(&PostParams::default(), &again).await.unwrap();
    pty.send("y").await;
    let (code, screen) = pty.wait().await;
    assert_eq!(code, 3, "{screen}");
    assert!(
        screen.contains(
            "skipped redis-data-redis-2: StatefulSet \"redis\" was deleted and re-created since \
             the plan (another uid): re-run to plan again"
        ),
        "{screen}"
    );
    assert_eq!(ns.pvc_names().await, before, "nothing deleted");
}
