//! Pure facts about Nodes, their Leases, taints and VolumeAttachments: what `recover`,
//! `doctor` and `status` read as evidence that a node is gone silent.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use k8s_openapi::jiff::Timestamp;

/// The taint of non-graceful node shutdown (KEP-2268).
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";
pub const OUT_OF_SERVICE_VALUE: &str = "nodeshutdown";

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The Ready condition: status (True/False/Unknown), reason, since, last heartbeat.
pub fn ready(node: &Node) -> Option<&NodeCondition> {
    condition(node, "Ready")
}

pub fn is_ready(node: &Node) -> bool {
    ready(node).is_some_and(|c| c.status == "True")
}

/// The last time the node's kubelet said anything: its Ready heartbeat or its Lease
/// renewal, whichever is later.
pub fn last_heard(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let heartbeat = ready(node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    let renewed = lease.and_then(lease_renewed);
    heartbeat.into_iter().chain(renewed).max()
}

pub fn lease_renewed(lease: &Lease) -> Option<Timestamp> {
    lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

pub fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// `key=value:Effect`, as kubectl prints taints.
pub fn taint_text(t: &Taint) -> String {
    match t.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}={v}:{}", t.key, t.effect),
        _ => format!("{}:{}", t.key, t.effect),
    }
}

pub fn out_of_service(node: &Node) -> bool {
    taints(node).iter().any(|t| t.key == OUT_OF_SERVICE_TAINT)
}

pub fn out_of_service_taint() -> Taint {
    Taint {
        key: OUT_OF_SERVICE_TAINT.into(),
        value: Some(OUT_OF_SERVICE_VALUE.into()),
        effect: "NoExecute".into(),
        time_added: None,
    }
}

/// Whether `toleration` tolerates `taint` (the scheduler's and taint manager's rule).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let exists = toleration.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        // An empty key with Exists tolerates everything.
        return exists;
    }
    if key != taint.key {
        return false;
    }
    exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

pub fn pod_tolerates(pod: &Pod, taint: &Taint) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| tolerates(t, taint)))
}

/// The VolumeAttachment's PersistentVolume and node.
pub fn attachment_volume(va: &VolumeAttachment) -> Option<&str> {
    va.spec.source.persistent_volume_name.as_deref()
}

pub fn attachment_node(va: &VolumeAttachment) -> &str {
    &va.spec.node_name
}

pub fn is_attached(va: &VolumeAttachment) -> bool {
    va.status.as_ref().is_some_and(|s| s.attached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.into()),
            operator: Some(op.into()),
            value: (!value.is_empty()).then(|| value.into()),
            effect: (!effect.is_empty()).then(|| effect.into()),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_match_like_the_taint_manager() {
        let oos = out_of_service_taint();
        assert!(tolerates(&toleration("", "Exists", "", ""), &oos));
        assert!(tolerates(
            &toleration(OUT_OF_SERVICE_TAINT, "Exists", "", "NoExecute"),
            &oos
        ));
        assert!(tolerates(
            &toleration(OUT_OF_SERVICE_TAINT, "Equal", "nodeshutdown", ""),
            &oos
        ));
        assert!(!tolerates(
            &toleration(OUT_OF_SERVICE_TAINT, "Equal", "other", ""),
            &oos
        ));
        assert!(!tolerates(
            &toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
            &oos
        ));
        assert!(!tolerates(
            &toleration(OUT_OF_SERVICE_TAINT, "Exists", "", "NoSchedule"),
            &oos
        ));
        assert_eq!(
            taint_text(&oos),
            "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"
        );
    }
}
