//! How the watches and the pod workers tell the resizer what happened.

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tokio::sync::mpsc;

use crate::events::object_ref;

/// A pod on one of our nodes started, mounting its claims, at `at` (its `startTime`).
#[derive(Clone, Debug)]
pub(super) struct Mount {
    pub pod: ObjectReference,
    pub node: String,
    pub at: Timestamp,
}

pub(super) enum Trigger {
    Claim(ObjectRef<PersistentVolumeClaim>),
    /// A cache was (re)listed: look at every claim.
    All,
    Mounted(Vec<ObjectRef<PersistentVolumeClaim>>, Mount),
}

/// Tells the resizer about changes; cheap to clone.
#[derive(Clone)]
pub struct ResizeHandle(mpsc::UnboundedSender<Trigger>);

/// The resizer's end of the channel, for [`super::start`].
pub struct ResizeQueue(pub(super) mpsc::UnboundedReceiver<Trigger>);

pub fn channel() -> (ResizeHandle, ResizeQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    (ResizeHandle(tx), ResizeQueue(rx))
}

impl ResizeHandle {
    /// The claim `ns/name` (or the volume bound to it) changed or went away.
    pub fn claim_changed(&self, ns: &str, name: &str) {
        let _ = self.0.send(Trigger::Claim(ObjectRef::new(name).within(ns)));
    }

    /// A watch (re)listed its objects: until then its cache held the old list, so the
    /// changes it listed were not seen; look at every claim.
    pub fn relisted(&self) {
        let _ = self.0.send(Trigger::All);
    }

    /// The simulated kubelet started `pod` on `node` at `at` (its `startTime`): the moment
    /// it mounts the pod's claims.
    pub fn pod_started(&self, pod: &Pod, node: &str, at: Timestamp) {
        let ns = pod.namespace().unwrap_or_default();
        let claims: Vec<_> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| ObjectRef::new(&c.claim_name).within(&ns))
            .collect();
        if claims.is_empty() {
            return;
        }
        let mount = Mount {
            pod: object_ref("v1", "Pod", &pod.metadata),
            node: node.to_string(),
            at,
        };
        let _ = self.0.send(Trigger::Mounted(claims, mount));
    }
}
