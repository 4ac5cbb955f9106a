//! The writes of each resize step: JSON merge patches of a claim's status (through the
//! status subresource) and of its volume, each guarded by the object's uid and, where
//! given, its resourceVersion; and what the volume already has.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::quantity;

use super::decide::{bytes, pv_capacity};
use super::decide::{
    CONTROLLER_RESIZE_ERROR, FS_PENDING_MESSAGE, FS_RESIZE_PENDING, INFEASIBLE, IN_PROGRESS,
    NODE_PENDING, PRE_RESIZE_CAPACITY, RESIZE_CONDITIONS, RESIZING,
};

fn condition_json(type_: &str, message: Option<&str>, now: Timestamp) -> Value {
    let mut c = json!({
        "type": type_,
        "status": "True",
        "lastTransitionTime": Time(now),
    });
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// A merge patch of `pvc`'s status, guarded by its uid and resourceVersion. The claim's
/// conditions other than the resize's own (e.g. 1.37's `Unused`) are kept; `condition`
/// is the resize's condition now, if any.
fn claim_patch(pvc: &PersistentVolumeClaim, condition: Option<Value>, mut status: Value) -> Value {
    let mut conditions: Vec<Value> = pvc
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| !RESIZE_CONDITIONS.contains(&c.type_.as_str()))
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conditions.extend(condition);
    status["conditions"] = if conditions.is_empty() {
        Value::Null
    } else {
        Value::Array(conditions)
    };
    json!({
        "metadata": {
            "uid": pvc.metadata.uid,
            "resourceVersion": pvc.metadata.resource_version,
        },
        "status": status,
    })
}

/// Step 1: the resize to `to` has started.
pub fn start_patch(pvc: &PersistentVolumeClaim, to: &Quantity, now: Timestamp) -> Value {
    claim_patch(
        pvc,
        Some(condition_json(RESIZING, None, now)),
        json!({
            "allocatedResources": { "storage": to },
            "allocatedResourceStatuses": { "storage": IN_PROGRESS },
        }),
    )
}

/// Step 3a: the filesystem has grown with the volume (to `to`) to `capacity`.
pub fn grown_patch(pvc: &PersistentVolumeClaim, to: &Quantity, capacity: &Quantity) -> Value {
    claim_patch(
        pvc,
        None,
        json!({
            "capacity": { "storage": capacity },
            "allocatedResources": { "storage": to },
            "allocatedResourceStatuses": null,
        }),
    )
}

/// Step 3b: the volume has grown to `to`; the filesystem waits for a pod start.
pub fn node_pending_patch(pvc: &PersistentVolumeClaim, to: &Quantity, now: Timestamp) -> Value {
    claim_patch(
        pvc,
        Some(condition_json(
            FS_RESIZE_PENDING,
            Some(FS_PENDING_MESSAGE),
            now,
        )),
        json!({
            "allocatedResources": { "storage": to },
            "allocatedResourceStatuses": { "storage": NODE_PENDING },
        }),
    )
}

/// Step 3c: the controller-side expansion to `to` failed with `message`.
pub fn failed_patch(
    pvc: &PersistentVolumeClaim,
    to: &Quantity,
    message: &str,
    now: Timestamp,
) -> Value {
    claim_patch(
        pvc,
        Some(condition_json(CONTROLLER_RESIZE_ERROR, Some(message), now)),
        json!({
            "allocatedResources": { "storage": to },
            "allocatedResourceStatuses": { "storage": INFEASIBLE },
        }),
    )
}

/// The kubelet finished the pending filesystem resize: the claim has `capacity`.
pub fn finished_patch(pvc: &PersistentVolumeClaim, capacity: &Quantity) -> Value {
    claim_patch(
        pvc,
        None,
        json!({
            "capacity": { "storage": capacity },
            "allocatedResourceStatuses": null,
        }),
    )
}

/// The claim asks for `to`, no more than it has: nothing left to do.
pub fn rollback_patch(pvc: &PersistentVolumeClaim, to: &Quantity) -> Value {
    claim_patch(
        pvc,
        None,
        json!({
            "allocatedResources": { "storage": to },
            "allocatedResourceStatuses": null,
        }),
    )
}

/// The controller-side expansion of a volume to `to`, guarded by its uid and
/// resourceVersion. `pre_resize`: the claim's capacity to record while the filesystem
/// waits for the node (offline); `None` removes that record.
pub fn volume_patch(
    pv_uid: &str,
    pv_rv: Option<&str>,
    to: &Quantity,
    pre_resize: Option<&Quantity>,
) -> Value {
    let mut meta = json!({
        "uid": pv_uid,
        "annotations": { PRE_RESIZE_CAPACITY: pre_resize },
    });
    if let Some(rv) = pv_rv {
        meta["resourceVersion"] = json!(rv);
    }
    json!({ "metadata": meta, "spec": { "capacity": { "storage": to } } })
}

/// Removes the pre-resize record of a volume whose filesystem has grown.
pub fn volume_done_patch(pv_uid: &str) -> Value {
    json!({ "metadata": { "uid": pv_uid, "annotations": { PRE_RESIZE_CAPACITY: null } } })
}

/// Whether the volume records a pre-resize capacity.
pub fn has_pre_resize(pv: &PersistentVolume) -> bool {
    pv.annotations().contains_key(PRE_RESIZE_CAPACITY)
}

/// Whether the volume is at least `to` already.
pub fn volume_has(pv: &PersistentVolume, to: &Quantity) -> bool {
    match (bytes(pv_capacity(pv)), quantity::bytes(&to.0)) {
        (Some(have), Some(want)) => have >= want,
        _ => false,
    }
}

/// The volume's capacity, or `fallback` when it has none.
pub fn volume_capacity(pv: &PersistentVolume, fallback: &Quantity) -> Quantity {
    pv_capacity(pv).cloned().unwrap_or_else(|| fallback.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::decide::failure_message;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimCondition, PersistentVolumeClaimStatus};
    use kube::api::ObjectMeta;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A claim with 1.37's `Unused` condition and `types` of ours.
    fn claim(types: &[&str]) -> PersistentVolumeClaim {
        let cond = |t: &str, status: &str| PersistentVolumeClaimCondition {
            type_: t.into(),
            status: status.into(),
            ..Default::default()
        };
        let mut conditions = vec![cond("Unused", "False")];
        conditions.extend(types.iter().map(|t| cond(t, "True")));
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                uid: Some("u1".into()),
                resource_version: Some("10".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PersistentVolumeClaimStatus {
                conditions: Some(conditions),
                ..Default::default()
            }),
        }
    }

    fn types(p: &Value) -> Vec<&str> {
        p["status"]["conditions"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["type"].as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn claim_patches() {
        let now = ts("2026-01-02T03:04:05.678Z");
        let p = start_patch(&claim(&[]), &q("2Gi"), now);
        assert_eq!(
            p,
            json!({
                "metadata": { "uid": "u1", "resourceVersion": "10" },
                "status": {
                    "conditions": [
                        { "type": "Unused", "status": "False" },
                        {
                            "type": "Resizing",
                            "status": "True",
                            "lastTransitionTime": "2026-01-02T03:04:05Z",
                        },
                    ],
                    "allocatedResources": { "storage": "2Gi" },
                    "allocatedResourceStatuses": { "storage": "ControllerResizeInProgress" },
                }
            })
        );
        let p = grown_patch(&claim(&[RESIZING]), &q("2Gi"), &q("2Gi"));
        assert_eq!(p["status"]["capacity"], json!({ "storage": "2Gi" }));
        assert_eq!(types(&p), ["Unused"]);
        assert!(p["status"]
            .get("allocatedResourceStatuses")
            .is_some_and(Value::is_null));
        let p = node_pending_patch(&claim(&[RESIZING]), &q("2Gi"), now);
        assert_eq!(types(&p), ["Unused", "FileSystemResizePending"]);
        assert_eq!(p["status"]["conditions"][1]["message"], FS_PENDING_MESSAGE);
        assert_eq!(
            p["status"]["allocatedResourceStatuses"]["storage"],
            "NodeResizePending"
        );
        assert!(p["status"].get("capacity").is_none());
        let msg = failure_message("pvc-u1");
        assert_eq!(
            msg,
            "resize volume \"pvc-u1\" by resizer \"sts-safe.dev/sim\" failed: rpc error: code = \
             OutOfRange desc = the simulated backend cannot grow volumes"
        );
        let p = failed_patch(&claim(&[RESIZING]), &q("2Gi"), &msg, now);
        assert_eq!(types(&p), ["Unused", "ControllerResizeError"]);
        assert_eq!(p["status"]["conditions"][1]["message"], msg.as_str());
        assert_eq!(
            p["status"]["allocatedResourceStatuses"]["storage"],
            "ControllerResizeInfeasible"
        );
        let p = finished_patch(&claim(&[FS_RESIZE_PENDING]), &q("2Gi"));
        assert_eq!(p["status"]["capacity"]["storage"], "2Gi");
        assert_eq!(types(&p), ["Unused"]);
        assert!(p["status"].get("allocatedResources").is_none());
        let p = rollback_patch(&claim(&[CONTROLLER_RESIZE_ERROR]), &q("1Gi"));
        assert_eq!(p["status"]["allocatedResources"]["storage"], "1Gi");
        assert_eq!(types(&p), ["Unused"]);

        // No other condition: the field is removed.
        let mut bare = claim(&[RESIZING]);
        bare.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .remove(0);
        let p = grown_patch(&bare, &q("2Gi"), &q("2Gi"));
        assert!(p["status"].get("conditions").is_some_and(Value::is_null));
    }

    #[test]
    fn volume_patches() {
        let p = volume_patch("v1", Some("7"), &q("2Gi"), Some(&q("1Gi")));
        assert_eq!(
            p,
            json!({
                "metadata": {
                    "uid": "v1",
                    "resourceVersion": "7",
                    "annotations": { PRE_RESIZE_CAPACITY: "1Gi" },
                },
                "spec": { "capacity": { "storage": "2Gi" } }
            })
        );
        let p = volume_patch("v1", None, &q("2Gi"), None);
        assert!(p["metadata"]["annotations"][PRE_RESIZE_CAPACITY].is_null());
        assert!(p["metadata"].get("resourceVersion").is_none());
        assert!(volume_done_patch("v1")["metadata"]["annotations"][PRE_RESIZE_CAPACITY].is_null());
    }

    #[test]
    fn volume_sizes() {
        let pv = |cap: &str| PersistentVolume {
            spec: Some(k8s_openapi::api::core::v1::PersistentVolumeSpec {
                capacity: Some([("storage".to_string(), q(cap))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(volume_has(&pv("2Gi"), &q("2048Mi")));
        assert!(!volume_has(&pv("2G"), &q("2Gi")));
        assert_eq!(volume_capacity(&pv("3Gi"), &q("2Gi")), q("3Gi"));
        assert!(!has_pre_resize(&pv("1Gi")));
    }
}
