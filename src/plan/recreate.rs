//! The decisions behind resize-pvcs' writes: where a claim's expansion stands, the copy
//! of the StatefulSet kept while its object is re-created, the object created again
//! (the old spec with the new claim sizes, the partition held for the moment), and
//! whether the new object adopted the pods without touching one.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use super::resize::bytes;
use crate::model;

/// The ConfigMap key holding the record.
pub const RECORD_KEY: &str = "resize.json";
pub const RECORD_LABEL: &str = "sts-safe.dev/resize-of";

/// The ConfigMap that keeps a resize's copy of StatefulSet `sts`.
pub fn record_name(sts: &str) -> String {
    format!("sts-safe-resize-{sts}")
}

/// Where one claim's expansion stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Growth {
    /// Capacity reached.
    Done,
    /// The volume grew; its filesystem waits for the pod to restart (offline expansion).
    NeedsRestart,
    /// Requested, not there yet: what the claim says.
    InProgress(String),
    /// The resizer said it cannot.
    Failed(String),
}

fn condition<'a>(pvc: &'a PersistentVolumeClaim, kind: &str) -> Option<&'a str> {
    pvc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| c.message.as_deref().unwrap_or(""))
}

fn resize_status(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.status
        .as_ref()?
        .allocated_resource_statuses
        .as_ref()?
        .get("storage")
        .map(String::as_str)
}

/// Where `pvc` stands on its way to `to` bytes, from its capacity, its conditions
/// (Resizing, FileSystemResizePending, ControllerResizeError, NodeResizeError) and, on
/// 1.34+ servers, `allocatedResourceStatuses`.
pub fn growth(pvc: &PersistentVolumeClaim, to: f64) -> Growth {
    let capacity = pvc
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map_or(0.0, |q| bytes(&q.0));
    if capacity >= to {
        return Growth::Done;
    }
    for kind in ["ControllerResizeError", "NodeResizeError"] {
        if let Some(m) = condition(pvc, kind) {
            return Growth::Failed(format!("{kind}: {m}"));
        }
    }
    match resize_status(pvc) {
        Some(s @ ("ControllerResizeInfeasible" | "NodeResizeInfeasible")) => {
            return Growth::Failed(s.to_string())
        }
        Some("NodeResizePending") => return Growth::NeedsRestart,
        _ => {}
    }
    if condition(pvc, "FileSystemResizePending").is_some() {
        return Growth::NeedsRestart;
    }
    let state = resize_status(pvc)
        .map(String::from)
        .or_else(|| condition(pvc, "Resizing").map(|_| "Resizing".to_string()))
        .unwrap_or_else(|| "waiting for the resizer".into());
    Growth::InProgress(state)
}

/// The message of a resize failure Event (reason VolumeResizeFailed, from an external
/// resizer or the controller-manager's expand controller).
pub fn failure_event(ev: &Event) -> Option<String> {
    let failed = matches!(
        ev.reason.as_deref(),
        Some("VolumeResizeFailed" | "ExternalExpandFailed")
    );
    failed.then(|| {
        format!(
            "{}: {}",
            ev.reason.as_deref().unwrap_or_default(),
            ev.message.as_deref().unwrap_or_default().trim()
        )
    })
}

/// What a resize keeps while it runs: the StatefulSet as last read before its delete,
/// the sizes, the options and the pods that must survive the re-create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeRecord {
    pub statefulset: StatefulSet,
    pub sizes: BTreeMap<String, String>,
    pub include_orphans: bool,
    pub restart_pods: bool,
    /// Pod name → uid, read just before the delete: none may change.
    #[serde(default)]
    pub pods: BTreeMap<String, String>,
}

/// The ConfigMap holding `rec` (no owner: it must outlive the StatefulSet's object).
pub fn record_configmap(namespace: &str, sts: &str, rec: &ResizeRecord) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(record_name(sts)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "kubectl-sts-safe".to_string(),
                ),
                (RECORD_LABEL.to_string(), sts.to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            RECORD_KEY.to_string(),
            serde_json::to_string(rec).expect("a record serializes"),
        )])),
        ..Default::default()
    }
}

pub fn read_record(cm: &ConfigMap) -> Result<ResizeRecord, String> {
    let raw = cm
        .data
        .as_ref()
        .and_then(|d| d.get(RECORD_KEY))
        .ok_or_else(|| format!("configmap \"{}\" has no key {RECORD_KEY}", cm.name_any()))?;
    serde_json::from_str(raw).map_err(|e| {
        format!(
            "configmap \"{}\" does not hold a resize record: {e}",
            cm.name_any()
        )
    })
}

/// Whether every template named in `sizes` already asks for its size.
pub fn templates_have(sts: &StatefulSet, sizes: &BTreeMap<String, String>) -> bool {
    sizes
        .iter()
        .all(|(t, to)| super::resize::template_size(sts, t).is_some_and(|s| bytes(&s) == bytes(to)))
}

/// The object to create again: the stored spec with the new claim sizes, the
/// metadata a client may set (name, labels, annotations, owners, finalizers but the
/// garbage collector's), and a RollingUpdate partition held at `replicas` so that,
/// should the new object compute another revision, no pod is replaced before the
/// check (the partition is given back afterwards).
pub fn recreated(stored: &StatefulSet, sizes: &BTreeMap<String, String>) -> StatefulSet {
    let m = &stored.metadata;
    let finalizers: Vec<String> = m
        .finalizers
        .iter()
        .flatten()
        .filter(|f| !matches!(f.as_str(), "orphan" | "foregroundDeletion"))
        .cloned()
        .collect();
    let mut spec = stored.spec.clone();
    for t in spec.volume_claim_templates.iter_mut().flatten() {
        let Some(to) = t.metadata.name.as_ref().and_then(|n| sizes.get(n)) else {
            continue;
        };
        let res = t
            .spec
            .get_or_insert_with(Default::default)
            .resources
            .get_or_insert_with(Default::default);
        res.requests
            .get_or_insert_with(Default::default)
            .insert("storage".into(), Quantity(to.clone()));
        // The server-set status of a template means nothing on create.
        t.status = None;
    }
    if model::strategy_type(stored) == "RollingUpdate" {
        let replicas = model::replicas(stored);
        let ru = spec
            .update_strategy
            .get_or_insert_with(Default::default)
            .rolling_update
            .get_or_insert_with(Default::default);
        ru.partition = Some(ru.partition.unwrap_or(0).max(replicas));
    }
    StatefulSet {
        metadata: ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
            owner_references: m.owner_references.clone(),
            finalizers: (!finalizers.is_empty()).then_some(finalizers),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// Pods of `before` (name → uid) that run under another uid now.
pub fn replaced(pods: &[Pod], before: &BTreeMap<String, String>) -> usize {
    pods.iter()
        .filter(|p| {
            before
                .get(&p.name_any())
                .is_some_and(|u| p.uid().as_deref() != Some(u.as_str()))
        })
        .count()
}

/// The partition the stored object had (to give back after the check).
pub fn original_partition(stored: &StatefulSet) -> Option<i32> {
    (model::strategy_type(stored) == "RollingUpdate").then(|| model::partition(stored))
}

/// How far the new object's adoption has come.
#[derive(Debug, PartialEq, Eq)]
pub enum Adoption {
    Done,
    Waiting(String),
    /// Something the re-create must not do happened (or would happen).
    Failed(String),
}

fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Judges the re-created StatefulSet `new`: it computed the revision the pods run
/// (`expected`), and it owns every pod and ControllerRevision it selects. A pod of
/// `before` (name → uid) that was replaced in between (a node drain while no controller
/// owned it) is fine as long as it runs `expected`; one on another revision means the
/// new object rolled it, and stops the run.
pub fn adoption(
    new: &StatefulSet,
    pods: &[Pod],
    revisions: Option<&[ControllerRevision]>,
    before: &BTreeMap<String, String>,
    expected: Option<&str>,
) -> Adoption {
    let name = new.name_any();
    let uid = new.uid().unwrap_or_default();
    for p in pods {
        let pname = p.name_any();
        if let Some(old) = before.get(&pname) {
            let replaced = p.uid().as_deref() != Some(old.as_str());
            if replaced && expected.is_some() && model::revision(p) != expected {
                return Adoption::Failed(format!(
                    "pod {pname} was replaced during the re-create (uid {old} → {}) and runs revision {}",
                    p.uid().unwrap_or_default(),
                    model::revision(p).unwrap_or("?")
                ));
            }
        }
    }
    if let Some(gone) = before
        .keys()
        .find(|n| !pods.iter().any(|p| &p.name_any() == *n))
    {
        return Adoption::Waiting(format!(
            "pod {gone} is gone: waiting for the controller to create it"
        ));
    }
    if !model::observed(new) || model::update_revision(new).is_none() {
        return Adoption::Waiting("the controller has not synced the new object yet".into());
    }
    if let (Some(want), Some(got)) = (expected, model::update_revision(new)) {
        if want != got {
            return Adoption::Failed(format!(
                "the re-created statefulset \"{name}\" computes update revision {got}, not {want}: its pod template differs from the one the pods run"
            ));
        }
    }
    let stray: Vec<String> = pods
        .iter()
        .filter(|p| controller_uid(&p.metadata) != Some(uid.as_str()))
        .map(|p| p.name_any())
        .collect();
    if !stray.is_empty() {
        return Adoption::Waiting(format!("adopting pods: {}", stray.join(", ")));
    }
    if let Some(revs) = revisions {
        let stray: Vec<String> = revs
            .iter()
            .filter(|r| controller_uid(&r.metadata) != Some(uid.as_str()))
            .map(|r| r.name_any())
            .collect();
        if !stray.is_empty() {
            return Adoption::Waiting(format!(
                "adopting controllerrevisions: {}",
                stray.join(", ")
            ));
        }
    }
    Adoption::Done
}
