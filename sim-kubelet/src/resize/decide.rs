//! The decisions of the simulated external-resizer and of the kubelet's filesystem
//! expansion, as pure functions: whether a claim is ours, and what step it needs next.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaimCondition;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::ResourceExt;

use super::class::Expansion;
use crate::quantity;
use crate::storage::{PROVISIONED_BY, SIM_PROVISIONER};

/// Set on a volume whose filesystem still has to grow on the node: the claim's capacity
/// before the resize (the PV binder keeps the claim's capacity at it).
pub const PRE_RESIZE_CAPACITY: &str = "volume.alpha.kubernetes.io/pre-resize-capacity";

pub const RESIZING: &str = "Resizing";
pub const FS_RESIZE_PENDING: &str = "FileSystemResizePending";
pub const CONTROLLER_RESIZE_ERROR: &str = "ControllerResizeError";
pub const IN_PROGRESS: &str = "ControllerResizeInProgress";
pub const NODE_PENDING: &str = "NodeResizePending";
pub const INFEASIBLE: &str = "ControllerResizeInfeasible";
/// The claim conditions a resize sets (and removes).
pub const RESIZE_CONDITIONS: [&str; 3] = [RESIZING, FS_RESIZE_PENDING, CONTROLLER_RESIZE_ERROR];
pub const FS_PENDING_MESSAGE: &str =
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node.";

/// The message of a failed controller-side expansion of volume `pv`.
pub fn failure_message(pv: &str) -> String {
    format!(
        "resize volume \"{pv}\" by resizer \"{SIM_PROVISIONER}\" failed: rpc error: code = \
         OutOfRange desc = the simulated backend cannot grow volumes"
    )
}

fn storage_of(map: Option<&BTreeMap<String, Quantity>>) -> Option<&Quantity> {
    map?.get("storage")
}

/// The storage a claim requests.
pub fn requested(pvc: &PersistentVolumeClaim) -> Option<&Quantity> {
    storage_of(pvc.spec.as_ref()?.resources.as_ref()?.requests.as_ref())
}

/// The storage a claim has (`status.capacity`).
pub fn capacity(pvc: &PersistentVolumeClaim) -> Option<&Quantity> {
    storage_of(pvc.status.as_ref()?.capacity.as_ref())
}

fn allocated(pvc: &PersistentVolumeClaim) -> Option<&Quantity> {
    storage_of(pvc.status.as_ref()?.allocated_resources.as_ref())
}

fn allocated_status(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.status
        .as_ref()?
        .allocated_resource_statuses
        .as_ref()?
        .get("storage")
        .map(String::as_str)
}

/// The claim's condition of type `type_` with status True.
fn condition<'a>(
    pvc: &'a PersistentVolumeClaim,
    type_: &str,
) -> Option<&'a PersistentVolumeClaimCondition> {
    pvc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

pub(super) fn pv_capacity(pv: &PersistentVolume) -> Option<&Quantity> {
    storage_of(pv.spec.as_ref()?.capacity.as_ref())
}

pub(super) fn bytes(q: Option<&Quantity>) -> Option<u128> {
    quantity::bytes(&q?.0)
}

/// Whether `pvc` is Bound to `pv` and `pv` is one of ours: only such claims are resized.
pub fn ours(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref());
    let claim_uid = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| r.uid.as_deref());
    bound
        && pvc.metadata.deletion_timestamp.is_none()
        && volume.is_some_and(|v| v == pv.name_any())
        && claim_uid.is_some()
        && claim_uid == pvc.metadata.uid.as_deref()
        && pv.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(SIM_PROVISIONER)
}

/// A cheap first look at a claim (no volume needed): whether it is Bound and either asks
/// for more than it has or carries the state of a resize.
pub fn worth_a_look(pvc: &PersistentVolumeClaim) -> bool {
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if !bound || pvc.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let grows = match (bytes(requested(pvc)), bytes(capacity(pvc))) {
        (Some(r), Some(c)) => r > c,
        _ => false,
    };
    grows
        || allocated_status(pvc).is_some()
        || RESIZE_CONDITIONS
            .iter()
            .any(|t| condition(pvc, t).is_some())
}

/// What the resizer remembers of a claim (lost when the simulator restarts).
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// The size the controller-side expansion last failed for.
    pub failed_bytes: Option<u128>,
    /// When this process set FileSystemResizePending.
    pub pending_since: Option<Timestamp>,
    /// When a pod on our nodes last mounted the claim (its start).
    pub mounted_at: Option<Timestamp>,
}

/// The next thing to do for a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Nothing,
    /// Begin a resize to `to`: condition Resizing, allocatedResources.
    Start {
        to: Quantity,
    },
    /// The controller-side expansion to `to`, then what the class's expansion says.
    Expand {
        to: Quantity,
    },
    /// The filesystem waits for a pod to be (re)started.
    WaitForPod,
    /// A pod started since the filesystem resize became pending: finish it, the claim's
    /// capacity becomes the volume's.
    FinishOnNode {
        capacity: Quantity,
    },
    /// The claim asks for no more than it has again: clear what is left of a resize.
    Rollback {
        to: Quantity,
    },
}

/// Whether the controller-side expansion to `req` bytes already failed.
fn failed_for(pvc: &PersistentVolumeClaim, req: u128, mem: &Memory) -> bool {
    if let Some(f) = mem.failed_bytes {
        return f == req;
    }
    if allocated_status(pvc) == Some(INFEASIBLE) {
        return bytes(allocated(pvc)) == Some(req);
    }
    // A server without allocatedResources (1.20) keeps only the condition: after a restart
    // take it as the failure of the current request.
    condition(pvc, CONTROLLER_RESIZE_ERROR).is_some()
        && allocated(pvc).is_none_or(|a| quantity::bytes(&a.0) == Some(req))
}

/// The size whose failure to remember for a claim that failed before we (re)started, on
/// a server that keeps no `allocatedResources` (1.20): its current request. Remembered,
/// a later, different request is tried again.
pub fn failure_to_adopt(pvc: &PersistentVolumeClaim, mem: &Memory) -> Option<u128> {
    let req = bytes(requested(pvc))?;
    let unknown = mem.failed_bytes.is_none() && allocated(pvc).is_none();
    let grows = bytes(capacity(pvc)).is_some_and(|cap| req > cap);
    (unknown && grows && condition(pvc, CONTROLLER_RESIZE_ERROR).is_some()).then_some(req)
}

/// The next step for `pvc`, bound to `pv`, whose class expands as `expansion`.
pub fn next_step(
    pvc: &PersistentVolumeClaim,
    pv: Option<&PersistentVolume>,
    expansion: Expansion,
    mem: &Memory,
) -> Step {
    let Some(pv) = pv.filter(|pv| ours(pvc, pv)) else {
        return Step::Nothing;
    };
    let (Some(req_q), Some(cap), Some(pv_q)) = (requested(pvc), capacity(pvc), pv_capacity(pv))
    else {
        return Step::Nothing;
    };
    let (Some(req), Some(cap), Some(pv_cap)) = (
        quantity::bytes(&req_q.0),
        quantity::bytes(&cap.0),
        quantity::bytes(&pv_q.0),
    ) else {
        return Step::Nothing;
    };
    let pending = condition(pvc, FS_RESIZE_PENDING);
    if pending.is_some() || allocated_status(pvc) == Some(NODE_PENDING) {
        if req > pv_cap && !failed_for(pvc, req, mem) {
            return Step::Start { to: req_q.clone() };
        }
        let since = mem.pending_since.or_else(|| {
            pending
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
        });
        return match (mem.mounted_at, since) {
            (Some(mounted), Some(since)) if mounted > since => Step::FinishOnNode {
                capacity: pv_q.clone(),
            },
            _ => Step::WaitForPod,
        };
    }
    if req <= cap {
        let leftover = condition(pvc, RESIZING).is_some()
            || condition(pvc, CONTROLLER_RESIZE_ERROR).is_some()
            || matches!(allocated_status(pvc), Some(IN_PROGRESS | INFEASIBLE));
        return if leftover {
            Step::Rollback { to: req_q.clone() }
        } else {
            Step::Nothing
        };
    }
    if expansion == Expansion::Fail && failed_for(pvc, req, mem) {
        return Step::Nothing;
    }
    if condition(pvc, RESIZING).is_some() || allocated_status(pvc) == Some(IN_PROGRESS) {
        Step::Expand { to: req_q.clone() }
    } else {
        Step::Start { to: req_q.clone() }
    }
}

/// Whether `a` is a later version of an object than `b` (resourceVersions are etcd
/// revisions here; unparsable ones count as not later).
pub fn newer(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    let rv = |m: &ObjectMeta| m.resource_version.as_deref()?.parse::<u64>().ok();
    matches!((rv(a), rv(b)), (Some(a), Some(b)) if a > b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ObjectReference, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
        PersistentVolumeSpec, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A claim bound to `pv()`, requesting `req` with capacity `cap`.
    fn claim(req: &str, cap: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data-web-0".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                resource_version: Some("10".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: Some("pvc-u1".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), q(req))])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                capacity: Some(BTreeMap::from([("storage".into(), q(cap))])),
                ..Default::default()
            }),
        }
    }

    fn with_condition(
        mut pvc: PersistentVolumeClaim,
        type_: &str,
        at: &str,
    ) -> PersistentVolumeClaim {
        let status = pvc.status.get_or_insert_with(Default::default);
        status.conditions = Some(vec![PersistentVolumeClaimCondition {
            type_: type_.into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(at))),
            ..Default::default()
        }]);
        pvc
    }

    fn with_allocated(
        mut pvc: PersistentVolumeClaim,
        size: &str,
        status: &str,
    ) -> PersistentVolumeClaim {
        let s = pvc.status.get_or_insert_with(Default::default);
        s.allocated_resources = Some(BTreeMap::from([("storage".into(), q(size))]));
        s.allocated_resource_statuses = Some(BTreeMap::from([("storage".into(), status.into())]));
        pvc
    }

    fn pv(cap: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some("pvc-u1".into()),
                uid: Some("v1".into()),
                annotations: Some(BTreeMap::from([(
                    PROVISIONED_BY.to_string(),
                    SIM_PROVISIONER.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([("storage".into(), q(cap))])),
                claim_ref: Some(ObjectReference {
                    uid: Some("u1".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn step(
        pvc: &PersistentVolumeClaim,
        pv: &PersistentVolume,
        e: Expansion,
        mem: &Memory,
    ) -> Step {
        next_step(pvc, Some(pv), e, mem)
    }

    #[test]
    fn only_bound_claims_of_our_volumes() {
        let mem = Memory::default();
        let grow = claim("2Gi", "1Gi");
        assert!(worth_a_look(&grow));
        assert!(!worth_a_look(&claim("1Gi", "1Gi")));
        assert!(!worth_a_look(&claim("1024Mi", "1Gi")));
        assert!(worth_a_look(&claim("1.5Gi", "1500Mi")));
        assert_eq!(
            step(&grow, &pv("1Gi"), Expansion::Online, &mem),
            Step::Start { to: q("2Gi") }
        );
        assert_eq!(
            next_step(&grow, None, Expansion::Online, &mem),
            Step::Nothing
        );

        let mut foreign = pv("1Gi");
        foreign.annotations_mut().clear();
        assert_eq!(
            step(&grow, &foreign, Expansion::Online, &mem),
            Step::Nothing
        );
        let mut other_claim = pv("1Gi");
        other_claim
            .spec
            .as_mut()
            .unwrap()
            .claim_ref
            .as_mut()
            .unwrap()
            .uid = Some("u0".into());
        assert_eq!(
            step(&grow, &other_claim, Expansion::Online, &mem),
            Step::Nothing
        );
        let mut pending = grow.clone();
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        assert!(!worth_a_look(&pending));
        assert_eq!(
            step(&pending, &pv("1Gi"), Expansion::Online, &mem),
            Step::Nothing
        );
        let mut deleting = grow.clone();
        deleting.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        assert_eq!(
            step(&deleting, &pv("1Gi"), Expansion::Online, &mem),
            Step::Nothing
        );
    }

    #[test]
    fn online_and_offline_resizes() {
        let mem = Memory::default();
        let started = with_allocated(
            with_condition(claim("2Gi", "1Gi"), RESIZING, "2026-01-01T00:00:00Z"),
            "2Gi",
            IN_PROGRESS,
        );
        assert!(worth_a_look(&started));
        for e in [Expansion::Online, Expansion::Offline, Expansion::Fail] {
            assert_eq!(
                step(&started, &pv("1Gi"), e, &mem),
                Step::Expand { to: q("2Gi") }
            );
        }
        // 1.20 keeps only the condition.
        let old_server = with_condition(claim("2Gi", "1Gi"), RESIZING, "2026-01-01T00:00:00Z");
        assert_eq!(
            step(&old_server, &pv("1Gi"), Expansion::Online, &mem),
            Step::Expand { to: q("2Gi") }
        );
        // Done: capacity reached, nothing left.
        let done = with_allocated(claim("2Gi", "2Gi"), "2Gi", "x");
        let mut done = done;
        done.status.as_mut().unwrap().allocated_resource_statuses = None;
        assert_eq!(
            step(&done, &pv("2Gi"), Expansion::Online, &mem),
            Step::Nothing
        );
        assert!(!worth_a_look(&done));
    }

    #[test]
    fn pending_filesystem_waits_for_a_new_pod() {
        let pending = with_allocated(
            with_condition(
                claim("2Gi", "1Gi"),
                FS_RESIZE_PENDING,
                "2026-01-01T00:00:10Z",
            ),
            "2Gi",
            NODE_PENDING,
        );
        let pv2 = pv("2Gi");
        let mut mem = Memory::default();
        assert_eq!(
            step(&pending, &pv2, Expansion::Offline, &mem),
            Step::WaitForPod
        );
        // The pod that ran all along (started before the condition) does not finish it.
        mem.mounted_at = Some(ts("2026-01-01T00:00:03Z"));
        assert_eq!(
            step(&pending, &pv2, Expansion::Offline, &mem),
            Step::WaitForPod
        );
        // Same second as the condition: not provably later.
        mem.mounted_at = Some(ts("2026-01-01T00:00:10Z"));
        assert_eq!(
            step(&pending, &pv2, Expansion::Offline, &mem),
            Step::WaitForPod
        );
        mem.mounted_at = Some(ts("2026-01-01T00:00:11Z"));
        assert_eq!(
            step(&pending, &pv2, Expansion::Offline, &mem),
            Step::FinishOnNode { capacity: q("2Gi") }
        );
        // In memory, the precise time we set it wins over the condition's second.
        mem.pending_since = Some(ts("2026-01-01T00:00:10.500Z"));
        mem.mounted_at = Some(ts("2026-01-01T00:00:10.400Z"));
        assert_eq!(
            step(&pending, &pv2, Expansion::Offline, &mem),
            Step::WaitForPod
        );
        mem.mounted_at = Some(ts("2026-01-01T00:00:10.600Z"));
        assert_eq!(
            step(&pending, &pv2, Expansion::Offline, &mem),
            Step::FinishOnNode { capacity: q("2Gi") }
        );
        // A further growth while the node side waits starts again.
        let more = with_condition(
            claim("3Gi", "1Gi"),
            FS_RESIZE_PENDING,
            "2026-01-01T00:00:10Z",
        );
        assert_eq!(
            step(&more, &pv2, Expansion::Offline, &Memory::default()),
            Step::Start { to: q("3Gi") }
        );
    }

    #[test]
    fn failures_happen_once_per_size() {
        let failed = with_allocated(
            with_condition(
                claim("2Gi", "1Gi"),
                CONTROLLER_RESIZE_ERROR,
                "2026-01-01T00:00:00Z",
            ),
            "2Gi",
            INFEASIBLE,
        );
        let mem = Memory::default();
        assert_eq!(
            step(&failed, &pv("1Gi"), Expansion::Fail, &mem),
            Step::Nothing
        );
        // A new size is tried (and fails) again.
        let mut bigger = failed.clone();
        bigger
            .spec
            .as_mut()
            .unwrap()
            .resources
            .as_mut()
            .unwrap()
            .requests = Some(BTreeMap::from([("storage".into(), q("3Gi"))]));
        assert_eq!(
            step(&bigger, &pv("1Gi"), Expansion::Fail, &mem),
            Step::Start { to: q("3Gi") }
        );
        // In memory (1.20 drops allocatedResources): by size.
        let old_server = with_condition(
            claim("2Gi", "1Gi"),
            CONTROLLER_RESIZE_ERROR,
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(
            step(&old_server, &pv("1Gi"), Expansion::Fail, &mem),
            Step::Nothing
        );
        let mem2 = Memory {
            failed_bytes: Some(1 << 31),
            ..Default::default()
        };
        assert_eq!(
            step(&old_server, &pv("1Gi"), Expansion::Fail, &mem2),
            Step::Nothing
        );
        let mem3 = Memory {
            failed_bytes: Some(3 << 30),
            ..Default::default()
        };
        assert_eq!(
            step(&old_server, &pv("1Gi"), Expansion::Fail, &mem3),
            Step::Start { to: q("2Gi") }
        );
        // After a restart on 1.20 the condition counts for the current request, which is
        // remembered so that another request is tried again.
        assert_eq!(failure_to_adopt(&old_server, &mem), Some(2 << 30));
        assert_eq!(failure_to_adopt(&old_server, &mem2), None);
        assert_eq!(failure_to_adopt(&failed, &mem), None);
        assert_eq!(failure_to_adopt(&claim("2Gi", "1Gi"), &mem), None);
        // A Resizing condition left when 1.20 refused the error condition: memory says failed.
        let stuck = with_condition(claim("2Gi", "1Gi"), RESIZING, "2026-01-01T00:00:00Z");
        assert_eq!(
            step(&stuck, &pv("1Gi"), Expansion::Fail, &mem2),
            Step::Nothing
        );
        // Back to what it has: the error is cleared.
        let back = with_allocated(
            with_condition(
                claim("1Gi", "1Gi"),
                CONTROLLER_RESIZE_ERROR,
                "2026-01-01T00:00:00Z",
            ),
            "2Gi",
            INFEASIBLE,
        );
        assert!(worth_a_look(&back));
        assert_eq!(
            step(&back, &pv("1Gi"), Expansion::Fail, &mem),
            Step::Rollback { to: q("1Gi") }
        );
    }

    #[test]
    fn versions() {
        let meta = |rv: Option<&str>| ObjectMeta {
            resource_version: rv.map(String::from),
            ..Default::default()
        };
        assert!(newer(&meta(Some("12")), &meta(Some("9"))));
        assert!(!newer(&meta(Some("9")), &meta(Some("12"))));
        assert!(!newer(&meta(Some("x")), &meta(Some("1"))));
        assert!(!newer(&meta(None), &meta(Some("1"))));
    }
}
