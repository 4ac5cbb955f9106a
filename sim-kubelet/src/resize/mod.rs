//! A CSI external-resizer for the volumes we provision, and the kubelet's filesystem
//! expansion. kube-controller-manager's expand controller finds no expandable plugin for
//! a CSI volume of ours, records `ExternalExpanding` on the claim and leaves it to an
//! external controller: this one. Driven by the claim and volume watches of `storage.rs`
//! (every change of a claim, or of a volume bound to one, names the claim; a relist has
//! every claim looked at) and by the pod workers (a pod on our node starts, i.e. mounts
//! its claims). One task per claim uid at a time; a trigger while it runs makes it look
//! again when it ends.

mod class;
mod decide;
mod handle;
mod patch;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::classes::{claim_class, is_default_class};
use crate::events::{object_ref, EventSpec, Recorder, KUBELET};
use crate::util::api_code;
pub use class::EXPANSION_ANNOTATION;
use class::{class_resize, ClassResize, Expansion};
use decide::{
    failure_message, failure_to_adopt, newer, next_step, ours, worth_a_look, Memory, Step,
    PRE_RESIZE_CAPACITY,
};
pub use handle::{channel, ResizeHandle, ResizeQueue};
use handle::{Mount, Trigger};
use patch::{has_pre_resize, volume_capacity, volume_has};

/// `source.component` of the resizer's events.
const RESIZER: &str = "external-resizer sts-safe.dev/sim";
/// Steps one task takes at most before it stops (a resize needs three).
const MAX_STEPS: u32 = 12;
/// Failed writes in a row after which a task gives up until the claim changes again.
const MAX_FAILURES: u32 = 6;

/// The caches the resizer reads.
pub struct Caches {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
}

/// Starts the resizer: it handles triggers once all caches have listed their objects.
pub fn start(client: Client, recorder: Recorder, caches: Caches, queue: ResizeQueue) {
    let resizer = Arc::new(Resizer {
        client,
        recorder,
        caches,
        state: Mutex::new(State::default()),
    });
    tokio::spawn(resizer.run(queue.0));
}

/// What the resizer remembers; lost on restart (the claims' status tells the rest).
#[derive(Default)]
struct State {
    /// Claim uids with a task; true when a trigger came while it ran.
    tasks: HashMap<String, bool>,
    /// Per claim uid: (claim, the size whose expansion failed).
    failed: HashMap<String, (ObjectRef<PersistentVolumeClaim>, u128)>,
    /// Per claim uid: (claim, when we set FileSystemResizePending).
    pending_since: HashMap<String, (ObjectRef<PersistentVolumeClaim>, Timestamp)>,
    /// The latest start of a pod on our nodes that mounts the claim.
    mounts: HashMap<ObjectRef<PersistentVolumeClaim>, Mount>,
    /// Per claim uid: the resourceVersion a write of ours left needing the same step
    /// again (the server dropped it): not retried until the claim changes.
    stuck: HashMap<String, String>,
    warned: HashSet<String>,
}

struct Resizer {
    client: Client,
    recorder: Recorder,
    caches: Caches,
    state: Mutex<State>,
}

/// Why a step did not complete.
enum Failure {
    /// The object is gone or was replaced.
    Gone,
    /// The server refused the write as invalid: retrying would not help.
    Invalid(String),
    /// Retry after a backoff (conflict, server error).
    Retry(String),
}

/// A task's view: the objects its own writes returned (newer than the caches for a while).
#[derive(Default)]
struct Task {
    claim: Option<Arc<PersistentVolumeClaim>>,
    volume: Option<Arc<PersistentVolume>>,
    /// The step last written, and the claim's resourceVersion after it.
    written: Option<(Step, String)>,
    failures: u32,
}

fn full_name(pvc: &PersistentVolumeClaim) -> String {
    format!("{}/{}", pvc.namespace().unwrap_or_default(), pvc.name_any())
}

fn classify(e: kube::Error) -> Failure {
    match api_code(&e) {
        Some(404) => Failure::Gone,
        Some(422) => Failure::Invalid(e.to_string()),
        _ => Failure::Retry(e.to_string()),
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200)
        .saturating_mul(1 << failures.min(5))
        .min(Duration::from_secs(5))
}

impl Resizer {
    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Trigger>) {
        // Triggers queue up until the caches are complete: before, a lookup could miss a
        // claim that the watch has listed but the store not yet published.
        let c = &self.caches;
        if c.claims.wait_until_ready().await.is_err()
            || c.volumes.wait_until_ready().await.is_err()
            || c.classes.wait_until_ready().await.is_err()
        {
            return;
        }
        while let Some(trigger) = rx.recv().await {
            match trigger {
                Trigger::Claim(key) => self.look_at(&key),
                Trigger::All => self.look_at_all(),
                Trigger::Mounted(claims, mount) => {
                    for key in claims {
                        {
                            let mut st = self.state.lock().expect("resizer state");
                            let newest = st.mounts.get(&key).is_none_or(|m| m.at <= mount.at);
                            if newest {
                                st.mounts.insert(key.clone(), mount.clone());
                            }
                        }
                        self.look_at(&key);
                    }
                }
            }
        }
    }

    /// Starts a task for the claim `key` if it may need one.
    fn look_at(self: &Arc<Self>, key: &ObjectRef<PersistentVolumeClaim>) {
        let Some(pvc) = self.caches.claims.get(key) else {
            self.forget(key);
            return;
        };
        let (Some(uid), Some(volume)) = (
            pvc.metadata.uid.clone(),
            pvc.spec.as_ref().and_then(|s| s.volume_name.clone()),
        ) else {
            return;
        };
        if !worth_a_look(&pvc) {
            return;
        }
        let is_ours = self
            .caches
            .volumes
            .get(&ObjectRef::new(&volume))
            .is_some_and(|pv| ours(&pvc, &pv));
        if !is_ours {
            return;
        }
        {
            // A claim whose step the server dropped is looked at again once it changes.
            let mut st = self.state.lock().expect("resizer state");
            if let Some(rv) = st.stuck.get(&uid) {
                if pvc.metadata.resource_version.as_ref() == Some(rv) {
                    return;
                }
                st.stuck.remove(&uid);
            }
        }
        self.spawn_once(uid, key.clone());
    }

    /// Looks at every cached claim, and forgets claims that are gone.
    fn look_at_all(self: &Arc<Self>) {
        let claims = self.caches.claims.state();
        let keys: HashSet<_> = claims.iter().map(|c| ObjectRef::from_obj(&**c)).collect();
        {
            let mut st = self.state.lock().expect("resizer state");
            st.mounts.retain(|k, _| keys.contains(k));
            st.failed.retain(|_, (k, _)| keys.contains(k));
            st.pending_since.retain(|_, (k, _)| keys.contains(k));
        }
        for key in &keys {
            self.look_at(key);
        }
    }

    /// Drops what we remember of a claim that no longer exists.
    fn forget(&self, key: &ObjectRef<PersistentVolumeClaim>) {
        let mut st = self.state.lock().expect("resizer state");
        st.mounts.remove(key);
        st.failed.retain(|_, (k, _)| k != key);
        st.pending_since.retain(|_, (k, _)| k != key);
    }

    fn spawn_once(self: &Arc<Self>, uid: String, key: ObjectRef<PersistentVolumeClaim>) {
        {
            let mut st = self.state.lock().expect("resizer state");
            if let Some(again) = st.tasks.get_mut(&uid) {
                *again = true;
                return;
            }
            st.tasks.insert(uid.clone(), false);
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut task = Task::default();
            loop {
                this.drive(&uid, &key, &mut task).await;
                let mut st = this.state.lock().expect("resizer state");
                match st.tasks.get_mut(&uid) {
                    Some(again) if *again => *again = false,
                    _ => {
                        st.tasks.remove(&uid);
                        return;
                    }
                }
            }
        });
    }

    /// The latest version of the claim we know: the cache's, or our last write's if that
    /// is newer. `None` when it is gone or was replaced.
    fn claim(
        &self,
        uid: &str,
        key: &ObjectRef<PersistentVolumeClaim>,
        task: &Task,
    ) -> Option<Arc<PersistentVolumeClaim>> {
        let cached = self
            .caches
            .claims
            .get(key)
            .filter(|c| c.metadata.uid.as_deref() == Some(uid))?;
        Some(match &task.claim {
            Some(w) if newer(&w.metadata, &cached.metadata) => w.clone(),
            _ => cached,
        })
    }

    fn volume(&self, name: &str, task: &Task) -> Option<Arc<PersistentVolume>> {
        let cached = self.caches.volumes.get(&ObjectRef::new(name));
        let written = task.volume.as_ref().filter(|w| w.name_any() == name);
        match (written, cached) {
            (Some(w), Some(c)) if newer(&w.metadata, &c.metadata) => Some(w.clone()),
            (Some(w), None) => Some(w.clone()),
            (_, c) => c,
        }
    }

    fn class_of(&self, pvc: &PersistentVolumeClaim) -> ClassResize {
        let class = match claim_class(pvc) {
            Some(name) => self.caches.classes.get(&ObjectRef::new(&name)),
            None => self
                .caches
                .classes
                .state()
                .into_iter()
                .find(|c| is_default_class(c)),
        };
        let resize = class_resize(class.as_deref());
        let mut st = self.state.lock().expect("resizer state");
        for w in &resize.warnings {
            if st.warned.insert(w.clone()) {
                warn!("ignoring annotation: {w}");
            }
        }
        resize
    }

    fn memory(&self, uid: &str, key: &ObjectRef<PersistentVolumeClaim>) -> Memory {
        let st = self.state.lock().expect("resizer state");
        Memory {
            failed_bytes: st.failed.get(uid).map(|(_, b)| *b),
            pending_since: st.pending_since.get(uid).map(|(_, t)| *t),
            mounted_at: st.mounts.get(key).map(|m| m.at),
        }
    }

    /// Takes the claim's steps until there is nothing left to do for now.
    async fn drive(&self, uid: &str, key: &ObjectRef<PersistentVolumeClaim>, task: &mut Task) {
        for _ in 0..MAX_STEPS {
            let Some(pvc) = self.claim(uid, key, task) else {
                return;
            };
            let Some(volume) = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
                return;
            };
            let pv = self.volume(&volume, task);
            let resize = self.class_of(&pvc);
            let memory = self.memory(uid, key);
            if let Some(bytes) = failure_to_adopt(&pvc, &memory) {
                let mut st = self.state.lock().expect("resizer state");
                st.failed.insert(uid.to_string(), (key.clone(), bytes));
            }
            let step = next_step(&pvc, pv.as_deref(), resize.expansion, &memory);
            let (Some(pv), false) = (pv, matches!(step, Step::Nothing | Step::WaitForPod)) else {
                return;
            };
            let rv = pvc.metadata.resource_version.clone().unwrap_or_default();
            if task.written.as_ref() == Some(&(step.clone(), rv.clone())) {
                let claim = full_name(&pvc);
                warn!(%claim, ?step, "the server did not take the step; waiting for a change");
                let mut st = self.state.lock().expect("resizer state");
                st.stuck.insert(uid.to_string(), rv);
                return;
            }
            let claim = full_name(&pvc);
            match self.take(&step, &pvc, &pv, &resize, task).await {
                Ok(()) => task.failures = 0,
                Err(Failure::Gone) => return,
                Err(Failure::Invalid(error)) => {
                    warn!(%claim, ?step, %error, "the server refused the resize step");
                    return;
                }
                Err(Failure::Retry(error)) => {
                    task.failures += 1;
                    if task.failures >= MAX_FAILURES {
                        warn!(%claim, ?step, %error, "resize step failed; giving up for now");
                        return;
                    }
                    debug!(%claim, ?step, %error, "resize step failed; retrying");
                    tokio::time::sleep(backoff(task.failures)).await;
                }
            }
        }
        debug!(claim = %key, "resize task took its maximum of steps");
    }

    async fn take(
        &self,
        step: &Step,
        pvc: &PersistentVolumeClaim,
        pv: &PersistentVolume,
        resize: &ClassResize,
        task: &mut Task,
    ) -> Result<(), Failure> {
        let uid = pvc.metadata.uid.as_deref().unwrap_or_default();
        let pv_name = pv.name_any();
        let claim = full_name(pvc);
        match step {
            Step::Nothing | Step::WaitForPod => {}
            Step::Start { to } => {
                let patch = patch::start_patch(pvc, to, Timestamp::now());
                self.write_claim(pvc, &patch, step, task).await?;
                info!(%claim, volume = %pv_name, to = %to.0, "resizing volume");
                let msg = format!("External resizer is resizing volume {pv_name}");
                self.claim_event(pvc, EventSpec::normal(RESIZER, "Resizing", msg))
                    .await;
                tokio::time::sleep(resize.delay).await;
            }
            Step::Expand { to } => match resize.expansion {
                Expansion::Fail => self.fail(pvc, &pv_name, to, step, task).await?,
                Expansion::Online => {
                    let pv = self.grow_volume(pv, to, None, task).await?;
                    let capacity = volume_capacity(&pv, to);
                    let patch = patch::grown_patch(pvc, to, &capacity);
                    self.write_claim(pvc, &patch, step, task).await?;
                    let capacity = &capacity.0;
                    info!(%claim, volume = %pv_name, %capacity, "resized volume online");
                    let spec = EventSpec::normal(
                        RESIZER,
                        "VolumeResizeSuccessful",
                        "Resize volume succeeded",
                    );
                    self.claim_event(pvc, spec).await;
                }
                Expansion::Offline => {
                    let before = pv
                        .annotations()
                        .get(PRE_RESIZE_CAPACITY)
                        .map(|q| Quantity(q.clone()))
                        .or_else(|| decide::capacity(pvc).cloned());
                    self.grow_volume(pv, to, before.as_ref(), task).await?;
                    let patch = patch::node_pending_patch(pvc, to, Timestamp::now());
                    self.write_claim(pvc, &patch, step, task).await?;
                    self.state
                        .lock()
                        .expect("resizer state")
                        .pending_since
                        .insert(
                            uid.to_string(),
                            (ObjectRef::from_obj(pvc), Timestamp::now()),
                        );
                    info!(%claim, volume = %pv_name, "volume grown; file system waits for a pod");
                    let spec = EventSpec::normal(
                        RESIZER,
                        "FileSystemResizeRequired",
                        "Require file system resize of volume on node",
                    );
                    self.claim_event(pvc, spec).await;
                }
            },
            Step::FinishOnNode { capacity } => {
                let patch = patch::finished_patch(pvc, capacity);
                self.write_claim(pvc, &patch, step, task).await?;
                let mount = {
                    let mut st = self.state.lock().expect("resizer state");
                    st.pending_since.remove(uid);
                    st.mounts.get(&ObjectRef::from_obj(pvc)).cloned()
                };
                if has_pre_resize(pv) {
                    let api: Api<PersistentVolume> = Api::all(self.client.clone());
                    let done =
                        patch::volume_done_patch(pv.metadata.uid.as_deref().unwrap_or_default());
                    if let Err(e) = api
                        .patch(&pv_name, &PatchParams::default(), &Patch::Merge(&done))
                        .await
                    {
                        warn!(volume = %pv_name, error = %e, "removing pre-resize capacity failed");
                    }
                }
                let node = mount.as_ref().map(|m| m.node.clone()).unwrap_or_default();
                let capacity = &capacity.0;
                info!(%claim, volume = %pv_name, %capacity, %node, "file system resized on node");
                if let Some(m) = mount {
                    let msg = format!(
                        "MountVolume.NodeExpandVolume succeeded for volume \"{pv_name}\" {node}"
                    );
                    let spec =
                        EventSpec::normal(KUBELET, "FileSystemResizeSuccessful", msg).host(&node);
                    self.recorder.create(&m.pod, &spec).await;
                }
            }
            Step::Rollback { to } => {
                let patch = patch::rollback_patch(pvc, to);
                self.write_claim(pvc, &patch, step, task).await?;
                self.state.lock().expect("resizer state").failed.remove(uid);
                info!(%claim, to = %to.0, "claim asks for no more than it has; resize cleared");
            }
        }
        Ok(())
    }

    /// The controller-side expansion fails: event and status, once per size.
    async fn fail(
        &self,
        pvc: &PersistentVolumeClaim,
        pv_name: &str,
        to: &Quantity,
        step: &Step,
        task: &mut Task,
    ) -> Result<(), Failure> {
        let uid = pvc.metadata.uid.as_deref().unwrap_or_default();
        let msg = failure_message(pv_name);
        let patch = patch::failed_patch(pvc, to, &msg, Timestamp::now());
        let claim = full_name(pvc);
        match self.write_claim(pvc, &patch, step, task).await {
            Ok(()) => {}
            Err(Failure::Invalid(e)) => {
                // A server that refuses the condition keeps only the event.
                warn!(%claim, error = %e, "the server refused the ControllerResizeError status");
            }
            Err(other) => return Err(other),
        }
        if let Some(bytes) = crate::quantity::bytes(&to.0) {
            self.state
                .lock()
                .expect("resizer state")
                .failed
                .insert(uid.to_string(), (ObjectRef::from_obj(pvc), bytes));
        }
        info!(%claim, volume = %pv_name, to = %to.0, "volume expansion failed (simulated)");
        self.claim_event(pvc, EventSpec::warning(RESIZER, "VolumeResizeFailed", msg))
            .await;
        Ok(())
    }

    /// Grows the volume to `to` (unless it is that big already) and records `before`, the
    /// claim's capacity, while the filesystem waits for the node (`None`: no such record).
    async fn grow_volume(
        &self,
        pv: &PersistentVolume,
        to: &Quantity,
        before: Option<&Quantity>,
        task: &mut Task,
    ) -> Result<Arc<PersistentVolume>, Failure> {
        if volume_has(pv, to) && has_pre_resize(pv) == before.is_some() {
            return Ok(Arc::new(pv.clone()));
        }
        let target = if volume_has(pv, to) {
            volume_capacity(pv, to)
        } else {
            to.clone()
        };
        let patch = patch::volume_patch(
            pv.metadata.uid.as_deref().unwrap_or_default(),
            pv.metadata.resource_version.as_deref(),
            &target,
            before,
        );
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let updated = api
            .patch(
                &pv.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(classify)?;
        debug!(volume = %pv.name_any(), capacity = %target.0, "grew volume");
        let updated = Arc::new(updated);
        task.volume = Some(updated.clone());
        Ok(updated)
    }

    /// Merge-patches the claim's status; remembers the result as the task's latest view.
    async fn write_claim(
        &self,
        pvc: &PersistentVolumeClaim,
        patch: &Value,
        step: &Step,
        task: &mut Task,
    ) -> Result<(), Failure> {
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &pvc.namespace().unwrap_or_default());
        let written = api
            .patch_status(
                &pvc.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(classify)?;
        let rv = written
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        task.written = Some((step.clone(), rv));
        task.claim = Some(Arc::new(written));
        Ok(())
    }

    async fn claim_event(&self, pvc: &PersistentVolumeClaim, spec: EventSpec) {
        let involved = object_ref("v1", "PersistentVolumeClaim", &pvc.metadata);
        self.recorder.create(&involved, &spec).await;
    }
}
