//! Fixture tests of resize-pvcs' decisions: sizes, the preflight refusals, the plan,
//! where a claim's expansion stands, the re-created object and the adoption check.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, ResourceQuota};
use k8s_openapi::api::storage::v1::StorageClass;

use super::*;
use crate::error::exit;
use crate::fixtures;
use crate::plan::recreate::{
    adoption, failure_event, growth, read_record, record_configmap, recreated, templates_have,
    Adoption, Growth, ResizeRecord,
};

fn class(name: &str, expand: bool, mode: Option<&str>) -> StorageClass {
    let mut c: StorageClass = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name}, "provisioner": "sts-safe.dev/sim",
        "allowVolumeExpansion": expand,
    }))
    .unwrap();
    if let Some(m) = mode {
        c.metadata.annotations = Some(BTreeMap::from([(EXPANSION_ANNOTATION.into(), m.into())]));
    }
    c
}

fn quota(name: &str, key: &str, hard: &str, used: &str) -> ResourceQuota {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"hard": {key: hard}},
        "status": {"hard": {key: hard}, "used": {key: used}},
    }))
    .unwrap()
}

struct World {
    sts: StatefulSet,
    pods: Vec<Pod>,
    pvcs: Vec<PersistentVolumeClaim>,
    classes: Vec<StorageClass>,
    quotas: Vec<ResourceQuota>,
}

/// The seed's Redis scaled from 3 to 2: two live claims and one kept, 10Gi each.
fn world() -> World {
    let f = fixtures::load("redis-scaled-down.yaml");
    World {
        sts: f.sts(),
        pods: f.pods(),
        pvcs: f.pvcs(),
        classes: vec![class("sim-standard", true, Some("online"))],
        quotas: vec![],
    }
}

fn sizes(to: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("redis-data".to_string(), to.to_string())])
}

fn plan_of(w: &World, to: &str, orphans: bool) -> Result<ResizePlan> {
    let sizes = sizes(to);
    plan(&ResizeInputs {
        sts: &w.sts,
        pods: &w.pods,
        pvcs: &w.pvcs,
        classes: Some(&w.classes),
        quotas: &w.quotas,
        sizes: &sizes,
        include_orphans: orphans,
        restart_pods: false,
        namespace: "production",
        resuming: false,
        sts_exists: true,
        record: "sts-safe-resize-redis",
    })
}

fn stop_message(r: Result<ResizePlan>) -> (i32, String) {
    let e = r.expect_err("refused");
    (e.exit_code(), e.to_string())
}

#[test]
fn sizes_are_quantities_that_name_a_template_when_there_are_several() {
    assert_eq!(
        parse_size("data=20Gi").unwrap(),
        SizeRequest {
            template: Some("data".into()),
            size: "20Gi".into()
        }
    );
    assert_eq!(parse_size("1.5Ti").unwrap().template, None);
    for bad in ["20gb", "", "-5Gi", "0", "data=", "=5Gi", "1.5"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
    let w = world();
    let one = resolve_sizes(&w.sts, &[parse_size("20Gi").unwrap()]).unwrap();
    assert_eq!(one, sizes("20Gi"));
    let unknown = resolve_sizes(&w.sts, &[parse_size("wal=20Gi").unwrap()]).unwrap_err();
    assert_eq!(unknown.exit_code(), exit::USAGE);
    assert!(
        unknown
            .to_string()
            .contains("has no volumeClaimTemplate \"wal\" (it has: redis-data)"),
        "{unknown}"
    );
    let twice = resolve_sizes(
        &w.sts,
        &[
            parse_size("20Gi").unwrap(),
            parse_size("redis-data=30Gi").unwrap(),
        ],
    )
    .unwrap_err();
    assert!(twice.to_string().contains("twice"), "{twice}");

    let mut two = w.sts.clone();
    let mut wal = two.spec.volume_claim_templates.as_ref().unwrap()[0].clone();
    wal.metadata.name = Some("wal".into());
    two.spec.volume_claim_templates.as_mut().unwrap().push(wal);
    let bare = resolve_sizes(&two, &[parse_size("20Gi").unwrap()]).unwrap_err();
    assert_eq!(bare.exit_code(), exit::USAGE);
    assert!(
        bare.to_string()
            .contains("name the one to grow, e.g. --size redis-data=20Gi"),
        "{bare}"
    );
    assert_eq!(
        resolve_sizes(&two, &[parse_size("wal=5Gi").unwrap()]).unwrap(),
        BTreeMap::from([("wal".to_string(), "5Gi".to_string())])
    );
}

#[test]
fn the_plan_grows_every_claim_top_ordinal_first_orphans_included() {
    let w = world();
    let p = plan_of(&w, "20Gi", true).unwrap();
    let order: Vec<(&str, bool, ClaimAction)> = p
        .claims
        .iter()
        .map(|c| (c.name.as_str(), c.orphan, c.action))
        .collect();
    assert_eq!(
        order,
        [
            ("redis-data-redis-2", true, ClaimAction::Grow),
            ("redis-data-redis-1", false, ClaimAction::Grow),
            ("redis-data-redis-0", false, ClaimAction::Grow),
        ]
    );
    assert!(p
        .claims
        .iter()
        .all(|c| c.expansion == "online" && c.from == "10Gi" && c.to == "20Gi"));
    assert_eq!(p.claims[1].pod.as_deref(), Some("redis-1"));
    assert_eq!(
        p.templates,
        [TemplateChange {
            name: "redis-data".into(),
            from: Some("10Gi".into()),
            to: "20Gi".into(),
            changed: true
        }]
    );
    assert!(p.recreate.needed);
    assert!(p.recreate.description.contains("propagationPolicy=Orphan"));
    assert!(p
        .recreate
        .description
        .contains("the update revision stays redis-aaa"));
    assert!(!p.is_noop());

    let kept = plan_of(&w, "20Gi", false).unwrap();
    assert_eq!(kept.claims[0].action, ClaimAction::Skip);
    assert_eq!(kept.to_grow().count(), 2);
}

#[test]
fn equal_is_nothing_to_do_and_smaller_is_a_usage_error() {
    let w = world();
    assert!(plan_of(&w, "10Gi", true).unwrap().is_noop());
    assert!(
        plan_of(&w, "10240Mi", true).unwrap().is_noop(),
        "same bytes, other unit"
    );
    let (code, msg) = stop_message(plan_of(&w, "5Gi", true));
    assert_eq!(code, exit::USAGE);
    assert!(
        msg.contains("PVCs cannot shrink") && msg.contains("redis-data"),
        "{msg}"
    );
}

#[test]
fn a_class_that_cannot_expand_or_does_not_exist_stops_before_any_write() {
    let mut w = world();
    w.classes = vec![class("sim-standard", false, None)];
    let (code, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert_eq!(code, exit::STOPPED);
    assert!(
        msg.contains("StorageClass \"sim-standard\" does not allow volume expansion"),
        "{msg}"
    );
    w.classes = vec![];
    let (_, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert!(
        msg.contains("StorageClass \"sim-standard\" does not exist"),
        "{msg}"
    );
    // Unreadable classes: the API server's admission decides, and the plan says so.
    let sizes = sizes("20Gi");
    let p = plan(&ResizeInputs {
        sts: &w.sts,
        pods: &w.pods,
        pvcs: &w.pvcs,
        classes: None,
        quotas: &[],
        sizes: &sizes,
        include_orphans: true,
        restart_pods: false,
        namespace: "production",
        resuming: false,
        sts_exists: true,
        record: "r",
    })
    .unwrap();
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("StorageClasses could not be read")));
    assert!(p.claims.iter().all(|c| c.expansion == "unknown"));
}

#[test]
fn a_quota_without_room_for_the_growth_stops_with_the_figures() {
    let mut w = world();
    w.quotas = vec![quota("storage", "requests.storage", "50Gi", "30Gi")];
    let (code, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert_eq!(code, exit::STOPPED);
    assert_eq!(
        msg,
        "resourcequota \"storage\" has room for 20Gi more of requests.storage (hard 50Gi, used 30Gi), and growing the claims needs 30Gi: raise the quota or ask for less"
    );
    // Without the orphan it fits.
    assert!(plan_of(&w, "20Gi", false).is_ok());
    // A per-class quota counts only its class.
    w.quotas = vec![quota(
        "gold",
        "gold.storageclass.storage.k8s.io/requests.storage",
        "1Gi",
        "1Gi",
    )];
    assert!(plan_of(&w, "20Gi", true).is_ok());
    w.quotas = vec![quota(
        "std",
        "sim-standard.storageclass.storage.k8s.io/requests.storage",
        "40Gi",
        "30Gi",
    )];
    assert_eq!(stop_message(plan_of(&w, "20Gi", true)).0, exit::STOPPED);
}

#[test]
fn live_claims_must_be_bound_and_orphans_that_are_not_are_left_with_a_warning() {
    let mut w = world();
    w.pvcs[2].status.as_mut().unwrap().phase = Some("Pending".into());
    let p = plan_of(&w, "20Gi", true).unwrap();
    assert_eq!(p.claims[0].action, ClaimAction::Skip);
    assert!(p
        .warnings
        .iter()
        .any(|x| x.contains("redis-data-redis-2") && x.contains("not Bound")));
    w.pvcs[0].status.as_mut().unwrap().phase = Some("Lost".into());
    let (code, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert_eq!(code, exit::STOPPED);
    assert!(
        msg.contains("PVC \"redis-data-redis-0\"") && msg.contains("Lost, not Bound"),
        "{msg}"
    );
    w.pvcs.remove(0);
    let (_, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn pods_not_ready_or_a_pending_rollout_refuse_the_resize() {
    let w = world();
    assert_eq!(health_stop(&w.sts, &w.pods), None);
    let msg = health_stop(&w.sts, &w.pods[..1]).unwrap();
    assert!(msg.contains("redis-1"), "{msg}");
    let mut rolling = w.sts.clone();
    rolling.status.as_mut().unwrap().update_revision = Some("redis-bbb".into());
    let msg = health_stop(&rolling, &w.pods).unwrap();
    assert!(
        msg.contains("rollout pending (redis-aaa → redis-bbb)"),
        "{msg}"
    );
}

fn claim_with(status: serde_json::Value) -> PersistentVolumeClaim {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c"},
        "spec": {"resources": {"requests": {"storage": "20Gi"}}},
        "status": status,
    }))
    .unwrap()
}

#[test]
fn a_claims_expansion_is_read_from_capacity_conditions_and_allocated_statuses() {
    let to = bytes("20Gi");
    let at = |s| growth(&claim_with(s), to);
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "20Gi"}})),
        Growth::Done
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "21474836480"}})),
        Growth::Done
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "10Gi"}})),
        Growth::InProgress("waiting for the resizer".into())
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "10Gi"},
            "conditions": [{"type": "Resizing", "status": "True"}]})),
        Growth::InProgress("Resizing".into())
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "10Gi"},
            "allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"}})),
        Growth::InProgress("ControllerResizeInProgress".into())
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "10Gi"},
            "conditions": [{"type": "FileSystemResizePending", "status": "True"}]})),
        Growth::NeedsRestart
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "10Gi"},
            "allocatedResourceStatuses": {"storage": "NodeResizePending"}})),
        Growth::NeedsRestart
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "10Gi"},
            "conditions": [{"type": "ControllerResizeError", "status": "True", "message": "no room"}]})),
        Growth::Failed("ControllerResizeError: no room".into())
    );
    assert_eq!(
        at(serde_json::json!({"capacity": {"storage": "10Gi"},
            "allocatedResourceStatuses": {"storage": "ControllerResizeInfeasible"}})),
        Growth::Failed("ControllerResizeInfeasible".into())
    );
    let ev: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c.1"}, "involvedObject": {"kind": "PersistentVolumeClaim", "name": "c"},
        "reason": "VolumeResizeFailed", "message": "resize volume \"pvc-1\" failed: OutOfRange\n",
    }))
    .unwrap();
    assert_eq!(
        failure_event(&ev).as_deref(),
        Some("VolumeResizeFailed: resize volume \"pvc-1\" failed: OutOfRange")
    );
    let ok: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c.2"}, "involvedObject": {"kind": "PersistentVolumeClaim"},
        "reason": "ExternalExpanding",
    }))
    .unwrap();
    assert_eq!(failure_event(&ok), None);
}

#[test]
fn claims_already_requested_are_waited_for_and_earlier_failures_refuse() {
    let mut w = world();
    // An interrupted run raised redis-1's request; its resize is still running.
    let r1 = &mut w.pvcs[1];
    r1.spec
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests = Some(BTreeMap::from([(
        "storage".into(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("20Gi".into()),
    )]));
    let p = plan_of(&w, "20Gi", true).unwrap();
    assert_eq!(p.claims[1].action, ClaimAction::Wait);
    // The same claim with the resizer's refusal on it.
    w.pvcs[1].status = serde_json::from_value(serde_json::json!({"phase": "Bound", "capacity": {"storage": "10Gi"},
        "conditions": [{"type": "ControllerResizeError", "status": "True", "message": "backend full"}]})).unwrap();
    let (code, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert_eq!(code, exit::STOPPED);
    assert!(
        msg.contains("failed to grow in an earlier attempt: ControllerResizeError: backend full"),
        "{msg}"
    );
    // Offline: grown, waiting for the pod to restart.
    w.pvcs[1].status = serde_json::from_value(
        serde_json::json!({"phase": "Bound", "capacity": {"storage": "10Gi"},
        "conditions": [{"type": "FileSystemResizePending", "status": "True"}]}),
    )
    .unwrap();
    let p = plan_of(&w, "20Gi", true).unwrap();
    assert_eq!(
        (p.claims[1].action, p.claims[1].expansion.as_str()),
        (ClaimAction::Restart, "offline")
    );
    assert!(p.warnings.iter().any(|x| x.contains("--restart-pods")));
}

#[test]
fn the_recreated_object_is_the_old_spec_with_new_sizes_and_a_held_partition() {
    let mut old = world().sts;
    old.metadata.uid = Some("u1".into());
    old.metadata.resource_version = Some("42".into());
    old.metadata.labels = Some(BTreeMap::from([("team".into(), "cache".into())]));
    old.metadata.finalizers = Some(vec!["orphan".into(), "example.com/keep".into()]);
    old.metadata.managed_fields = Some(vec![Default::default()]);
    let new = recreated(&old, &sizes("20Gi"));
    assert_eq!(new.metadata.uid, None);
    assert_eq!(new.metadata.resource_version, None);
    assert_eq!(new.metadata.generation, None);
    assert_eq!(new.metadata.managed_fields, None);
    assert_eq!(
        new.metadata.finalizers,
        Some(vec!["example.com/keep".to_string()])
    );
    assert_eq!(new.metadata.labels, old.metadata.labels);
    assert!(new.status.is_none());
    assert!(templates_have(&new, &sizes("20Gi")) && !templates_have(&old, &sizes("20Gi")));
    assert_eq!(
        model::partition(&new),
        2,
        "held at replicas while adoption is checked"
    );
    assert_eq!(
        new.spec.template, old.spec.template,
        "the pod template is untouched"
    );
    assert_eq!(crate::plan::recreate::original_partition(&old), Some(0));
}

fn pod_owned(name: &str, uid: &str, owner: Option<&str>) -> Pod {
    let mut p: Pod =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "uid": uid}}))
            .unwrap();
    if let Some(o) = owner {
        p.metadata.owner_references = Some(vec![serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "redis", "uid": o, "controller": true
        })).unwrap()]);
    }
    p
}

#[test]
fn adoption_needs_the_same_revision_every_pod_owned_and_none_replaced() {
    let mut new = world().sts;
    new.metadata.uid = Some("new".into());
    new.metadata.generation = Some(1);
    new.status.as_mut().unwrap().observed_generation = Some(1);
    let before = BTreeMap::from([
        ("redis-0".to_string(), "p0".to_string()),
        ("redis-1".to_string(), "p1".to_string()),
    ]);
    let owned = [
        pod_owned("redis-0", "p0", Some("new")),
        pod_owned("redis-1", "p1", Some("new")),
    ];
    assert_eq!(
        adoption(&new, &owned, None, &before, Some("redis-aaa")),
        Adoption::Done
    );
    let half = [
        pod_owned("redis-0", "p0", Some("new")),
        pod_owned("redis-1", "p1", None),
    ];
    assert_eq!(
        adoption(&new, &half, None, &before, Some("redis-aaa")),
        Adoption::Waiting("adopting pods: redis-1".into())
    );
    let replaced = [
        pod_owned("redis-0", "p0", Some("new")),
        pod_owned("redis-1", "p9", Some("new")),
    ];
    assert!(
        matches!(adoption(&new, &replaced, None, &before, Some("redis-aaa")), Adoption::Failed(m) if m.contains("redis-1 was replaced"))
    );
    assert!(matches!(
        adoption(&new, &owned, None, &before, Some("redis-zzz")),
        Adoption::Failed(m) if m.contains("computes update revision redis-aaa, not redis-zzz")
    ));
    let mut unsynced = new.clone();
    unsynced.status = None;
    assert!(matches!(
        adoption(&unsynced, &owned, None, &before, None),
        Adoption::Waiting(_)
    ));
}

#[test]
fn the_record_round_trips_through_its_configmap() {
    let rec = ResizeRecord {
        statefulset: world().sts,
        sizes: sizes("20Gi"),
        include_orphans: false,
        restart_pods: true,
        pods: BTreeMap::from([("redis-0".into(), "p0".into())]),
    };
    let cm = record_configmap("production", "redis", &rec);
    assert_eq!(cm.metadata.name.as_deref(), Some("sts-safe-resize-redis"));
    assert_eq!(
        cm.metadata.owner_references, None,
        "it must outlive the StatefulSet"
    );
    let back = read_record(&cm).unwrap();
    assert_eq!(
        (
            back.sizes,
            back.include_orphans,
            back.restart_pods,
            back.pods
        ),
        (rec.sizes, false, true, rec.pods)
    );
    let mut broken = cm.clone();
    broken.data = Some(BTreeMap::from([("resize.json".into(), "{".into())]));
    assert!(read_record(&broken)
        .unwrap_err()
        .contains("does not hold a resize record"));
}

#[test]
fn foreign_finalizers_and_claims_without_a_class_refuse() {
    let mut w = world();
    w.sts.metadata.finalizers = Some(vec!["orphan".into(), "backup.example.com/protect".into()]);
    let (code, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert_eq!(code, exit::STOPPED);
    assert!(
        msg.contains("has finalizers backup.example.com/protect"),
        "{msg}"
    );
    let mut w = world();
    w.pvcs[0].spec.as_mut().unwrap().storage_class_name = None;
    let (code, msg) = stop_message(plan_of(&w, "20Gi", true));
    assert_eq!(code, exit::STOPPED);
    assert!(
        msg.contains("PVC \"redis-data-redis-0\" names no StorageClass"),
        "{msg}"
    );
}

#[test]
fn with_the_object_gone_claim_problems_do_not_block_creating_it_again() {
    let mut w = world();
    w.pvcs[0].status.as_mut().unwrap().phase = Some("Lost".into());
    let sizes = sizes("20Gi");
    let p = plan(&ResizeInputs {
        sts: &w.sts,
        pods: &w.pods,
        pvcs: &w.pvcs,
        classes: Some(&w.classes),
        quotas: &[],
        sizes: &sizes,
        include_orphans: true,
        restart_pods: false,
        namespace: "production",
        resuming: true,
        sts_exists: false,
        record: "r",
    })
    .unwrap();
    assert!(p.recreate.needed);
    assert!(p
        .warnings
        .iter()
        .any(|x| x.contains("redis-data-redis-0") && x.contains("left alone")));
    assert!(p.claims.iter().all(|c| c.name != "redis-data-redis-0"));
}

#[test]
fn ondelete_judges_a_pending_rollout_by_the_pods() {
    let w = world();
    let mut od = w.sts.clone();
    od.spec.update_strategy =
        serde_json::from_value(serde_json::json!({"type": "OnDelete"})).unwrap();
    // currentRevision stays behind under OnDelete: not a rollout while the pods are updated.
    od.status.as_mut().unwrap().current_revision = Some("redis-old".into());
    assert_eq!(health_stop(&od, &w.pods), None);
    od.status.as_mut().unwrap().update_revision = Some("redis-new".into());
    let msg = health_stop(&od, &w.pods).unwrap();
    assert!(
        msg.contains("redis-0, redis-1 still run another revision than redis-new"),
        "{msg}"
    );
}
