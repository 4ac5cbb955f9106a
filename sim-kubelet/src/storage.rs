//! A dynamic provisioner for StorageClasses whose provisioner is `sts-safe.dev/sim`:
//! creates a pre-bound CSI PersistentVolume (driver `sim.sts-safe.dev`, attached by our
//! external-attacher in `attach.rs`) for each pending claim the
//! kube-controller-manager's PV binder hands to it (annotation
//! `volume.kubernetes.io/storage-provisioner`, or its beta name on old servers; the binder
//! sets it only when no existing volume matches, so a volume pre-bound to the claim's name
//! wins, as with external-provisioner), then the binder binds both; and deletes Released
//! volumes whose reclaim policy is Delete.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::classes::{claim_class, is_default_class};
use crate::events::{object_ref, EventSpec, Recorder, PROVISIONER};
use crate::resize::ResizeHandle;
use crate::util::{api_code, is_gone_or_conflict};

pub const SIM_PROVISIONER: &str = "sts-safe.dev/sim";
pub const NOBODY_PROVISIONER: &str = "sts-safe.dev/nobody";
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Set on a claim by the PV binder when it wants a provisioner to create its volume.
const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const HOST_PATH_ROOT: &str = "/var/lib/sim-kubelet";

/// What to provision for a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioning {
    /// The PV's storageClassName (empty when the claim names no class and the default
    /// class provisions it).
    pub pv_class: String,
    pub reclaim_policy: String,
}

/// Whether the PV binder handed `pvc` to this provisioner.
fn handed_to_us(pvc: &PersistentVolumeClaim) -> bool {
    [STORAGE_PROVISIONER, BETA_STORAGE_PROVISIONER]
        .iter()
        .any(|k| pvc.annotations().get(*k).map(String::as_str) == Some(SIM_PROVISIONER))
}

/// Whether we provision `pvc`, and how. `classes` are all known StorageClasses.
pub fn provisioning_for(
    pvc: &PersistentVolumeClaim,
    classes: &[Arc<StorageClass>],
) -> Option<Provisioning> {
    let spec = pvc.spec.as_ref()?;
    let pending = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
        == "Pending";
    let unbound = spec.volume_name.as_deref().unwrap_or_default().is_empty();
    if !pending || !unbound || pvc.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let requested = claim_class(pvc);
    let class = match requested.as_deref() {
        Some("") => return None,
        Some(name) => classes.iter().find(|c| c.name_any() == name)?,
        None => classes.iter().find(|c| is_default_class(c))?,
    };
    if class.provisioner != SIM_PROVISIONER {
        return None;
    }
    if !handed_to_us(pvc) {
        return None;
    }
    Some(Provisioning {
        pv_class: requested.unwrap_or_default(),
        reclaim_policy: class
            .reclaim_policy
            .clone()
            .unwrap_or_else(|| "Delete".into()),
    })
}

/// The name of the volume provisioned for a claim.
pub fn pv_name(pvc: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", pvc.metadata.uid.as_deref().unwrap_or_default())
}

/// The PersistentVolume provisioned for `pvc`, pre-bound to it.
pub fn build_pv(pvc: &PersistentVolumeClaim, prov: &Provisioning) -> PersistentVolume {
    let name = pv_name(pvc);
    let spec = pvc.spec.clone().unwrap_or_default();
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned())
        .unwrap_or_else(|| Quantity("1Gi".into()));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(
                [(PROVISIONED_BY.to_string(), SIM_PROVISIONER.to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), storage)])),
            access_modes: spec.access_modes.clone(),
            storage_class_name: (!prov.pv_class.is_empty()).then(|| prov.pv_class.clone()),
            persistent_volume_reclaim_policy: Some(prov.reclaim_policy.clone()),
            volume_mode: spec.volume_mode.clone(),
            csi: Some(CSIPersistentVolumeSource {
                driver: crate::attach::DRIVER.into(),
                volume_handle: name.clone(),
                volume_attributes: Some(BTreeMap::from([(
                    "path".to_string(),
                    format!("{HOST_PATH_ROOT}/{name}"),
                )])),
                ..Default::default()
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: pvc.metadata.namespace.clone(),
                name: pvc.metadata.name.clone(),
                uid: pvc.metadata.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Whether a volume is one of ours, Released, and to be deleted.
pub fn should_delete(pv: &PersistentVolume) -> bool {
    let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let delete = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    let ours = pv.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(SIM_PROVISIONER);
    released && delete && ours && pv.metadata.deletion_timestamp.is_none()
}

/// Runs the provisioner's watches.
pub struct Provisioner {
    client: Client,
    recorder: Recorder,
    classes: Store<StorageClass>,
    claims: Store<PersistentVolumeClaim>,
    in_flight: Mutex<HashSet<String>>,
}

/// Handles the rest of the process uses: the caches and a counter bumped on every claim
/// change.
pub struct Storage {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
    /// Bumped on every claim and volume change (and by the attacher on every
    /// VolumeAttachment change).
    pub claim_changes: watch::Receiver<u64>,
    pub changes_tx: watch::Sender<u64>,
}

/// Starts the StorageClass, PersistentVolumeClaim and PersistentVolume watches; `ready`
/// receives one message per watch once its initial list is done; `resize` hears of every
/// claim that changed, directly or through its volume, and of every (re)list.
pub fn start(
    client: Client,
    recorder: Recorder,
    ready: tokio::sync::mpsc::Sender<&'static str>,
    resize: ResizeHandle,
) -> Storage {
    let (classes, class_writer) = reflector::store::<StorageClass>();
    let (claims, claim_writer) = reflector::store::<PersistentVolumeClaim>();
    let (volumes, volume_writer) = reflector::store::<PersistentVolume>();
    let (changes_tx, claim_changes) = watch::channel(0u64);
    let storage_changes = changes_tx.clone();
    let volume_changes = changes_tx.clone();
    let prov = Arc::new(Provisioner {
        client: client.clone(),
        recorder,
        classes: classes.clone(),
        claims: claims.clone(),
        in_flight: Mutex::new(HashSet::new()),
    });

    // StorageClasses: a new or changed class may make pending claims provisionable.
    {
        let prov = prov.clone();
        let ready = ready.clone();
        let api: Api<StorageClass> = Api::all(client.clone());
        tokio::spawn(async move {
            let mut ready = Some(ready);
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(class_writer);
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(_)) => prov.rescan(),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send("storageclasses").await;
                        }
                        prov.rescan();
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "storage class watch failed; retrying"),
                }
            }
        });
    }

    // Claims: provision pending ones, and tell the scheduler and the resizer about every
    // change.
    {
        let prov = prov.clone();
        let ready = ready.clone();
        let resize = resize.clone();
        let api: Api<PersistentVolumeClaim> = Api::all(client.clone());
        tokio::spawn(async move {
            let mut ready = Some(ready);
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(claim_writer);
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(pvc)) => {
                        prov.maybe_provision(&pvc);
                        changes_tx.send_modify(|n| *n += 1);
                        resize.claim_changed(&pvc.namespace().unwrap_or_default(), &pvc.name_any());
                    }
                    Ok(watcher::Event::InitApply(pvc)) => {
                        prov.maybe_provision(&pvc);
                        changes_tx.send_modify(|n| *n += 1);
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send("persistentvolumeclaims").await;
                        }
                        changes_tx.send_modify(|n| *n += 1);
                        resize.relisted();
                    }
                    Ok(watcher::Event::Delete(pvc)) => {
                        changes_tx.send_modify(|n| *n += 1);
                        resize.claim_changed(&pvc.namespace().unwrap_or_default(), &pvc.name_any());
                    }
                    Ok(watcher::Event::Init) => {}
                    Err(e) => warn!(error = %e, "claim watch failed; retrying"),
                }
            }
        });
    }

    // Volumes: delete Released ones whose reclaim policy is Delete; tell the resizer about
    // the claim a volume is bound to.
    {
        let api: Api<PersistentVolume> = Api::all(client);
        tokio::spawn(async move {
            let mut ready = Some(ready);
            let stream = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .reflect(volume_writer);
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(pv)) => {
                        volume_changes.send_modify(|n| *n += 1);
                        if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                            if let (Some(ns), Some(name)) = (&r.namespace, &r.name) {
                                resize.claim_changed(ns, name);
                            }
                        }
                        if should_delete(&pv) {
                            prov.delete_volume(pv);
                        }
                    }
                    Ok(watcher::Event::InitApply(pv)) => {
                        volume_changes.send_modify(|n| *n += 1);
                        if should_delete(&pv) {
                            prov.delete_volume(pv);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send("persistentvolumes").await;
                        }
                        volume_changes.send_modify(|n| *n += 1);
                        resize.relisted();
                    }
                    Ok(_) => volume_changes.send_modify(|n| *n += 1),
                    Err(e) => warn!(error = %e, "volume watch failed; retrying"),
                }
            }
        });
    }

    Storage {
        claims,
        volumes,
        classes,
        claim_changes,
        changes_tx: storage_changes,
    }
}

impl Provisioner {
    /// Re-checks every cached claim (after a StorageClass change).
    fn rescan(self: &Arc<Self>) {
        for pvc in self.claims.state() {
            self.maybe_provision(&pvc);
        }
    }

    /// Starts provisioning a volume for `pvc` when it needs one from us.
    fn maybe_provision(self: &Arc<Self>, pvc: &PersistentVolumeClaim) {
        // The annotation is checked here, not only in the task: a task started for the
        // claim's first version (not yet handed to us) would otherwise swallow the event
        // of the annotated one (one task per uid at a time).
        let cheap_check = handed_to_us(pvc)
            && pvc
                .spec
                .as_ref()
                .is_some_and(|s| s.volume_name.as_deref().unwrap_or_default().is_empty())
            && pvc.metadata.deletion_timestamp.is_none()
            && pvc
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("Pending")
                == "Pending";
        if !cheap_check {
            return;
        }
        let Some(uid) = pvc.metadata.uid.clone() else {
            return;
        };
        let this = self.clone();
        let pvc = pvc.clone();
        self.spawn_once(uid, async move { this.provision(&pvc).await });
    }

    /// Runs `work` in the background unless work for the same object uid is in flight.
    fn spawn_once(
        self: &Arc<Self>,
        uid: String,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        if !self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(uid.clone())
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            work.await;
            this.in_flight.lock().expect("in-flight lock").remove(&uid);
        });
    }

    async fn provision(&self, pvc: &PersistentVolumeClaim) {
        if self.classes.wait_until_ready().await.is_err() {
            return;
        }
        let Some(prov) = provisioning_for(pvc, &self.classes.state()) else {
            return;
        };
        let pv = build_pv(pvc, &prov);
        let pv_name = pv.name_any();
        let claim = format!("{}/{}", pvc.namespace().unwrap_or_default(), pvc.name_any());
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => {
                info!(%claim, volume = %pv_name, class = %prov.pv_class, "provisioned volume");
                let involved = object_ref("v1", "PersistentVolumeClaim", &pvc.metadata);
                let spec = EventSpec::normal(
                    PROVISIONER,
                    "ProvisioningSucceeded",
                    format!("Successfully provisioned volume {pv_name}"),
                );
                self.recorder.create(&involved, &spec).await;
            }
            Err(e) if api_code(&e) == Some(409) => {
                debug!(%claim, volume = %pv_name, "volume already exists");
            }
            Err(e) => warn!(%claim, volume = %pv_name, error = %e, "provisioning volume failed"),
        }
    }

    /// Deletes a Released volume (uid precondition) in the background.
    fn delete_volume(self: &Arc<Self>, pv: PersistentVolume) {
        let Some(uid) = pv.metadata.uid.clone() else {
            return;
        };
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let precondition = uid.clone();
        self.spawn_once(uid, async move {
            let name = pv.name_any();
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(precondition),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => info!(volume = %name, "deleted released volume"),
                Err(e) if is_gone_or_conflict(&e) => debug!(volume = %name, "volume already gone"),
                Err(e) => warn!(volume = %name, error = %e, "deleting released volume failed"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::{builtin_classes, BETA_CLASS_ANNOTATION};
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeStatus,
        VolumeResourceRequirements,
    };

    fn classes() -> Vec<Arc<StorageClass>> {
        let mut list: Vec<Arc<StorageClass>> =
            builtin_classes().into_iter().map(Arc::new).collect();
        list.push(Arc::new(StorageClass {
            metadata: ObjectMeta {
                name: Some("gp3-encrypted".into()),
                ..Default::default()
            },
            provisioner: SIM_PROVISIONER.into(),
            reclaim_policy: Some("Retain".into()),
            ..Default::default()
        }));
        list
    }

    fn pvc(class: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data-web-0".into()),
                namespace: Some("ns".into()),
                uid: Some("abc".into()),
                annotations: Some(BTreeMap::from([(
                    STORAGE_PROVISIONER.to_string(),
                    SIM_PROVISIONER.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: class.map(String::from),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity("5Gi".into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn which_claims_we_provision() {
        let cs = classes();
        assert_eq!(
            provisioning_for(&pvc(Some("sim-standard")), &cs),
            Some(Provisioning {
                pv_class: "sim-standard".into(),
                reclaim_policy: "Delete".into()
            })
        );
        assert_eq!(
            provisioning_for(&pvc(Some("gp3-encrypted")), &cs)
                .unwrap()
                .reclaim_policy,
            "Retain"
        );
        assert_eq!(
            provisioning_for(&pvc(None), &cs),
            Some(Provisioning {
                pv_class: String::new(),
                reclaim_policy: "Delete".into()
            })
        );
        assert_eq!(provisioning_for(&pvc(Some("sim-unprovisioned")), &cs), None);
        assert_eq!(provisioning_for(&pvc(Some("missing")), &cs), None);
        assert_eq!(provisioning_for(&pvc(Some("")), &cs), None);

        let mut annotated = pvc(None);
        annotated
            .annotations_mut()
            .insert(BETA_CLASS_ANNOTATION.to_string(), "sim-retain".to_string());
        assert_eq!(
            provisioning_for(&annotated, &cs).unwrap().pv_class,
            "sim-retain"
        );

        let mut bound = pvc(Some("sim-standard"));
        bound.spec.as_mut().unwrap().volume_name = Some("pv-1".into());
        assert_eq!(provisioning_for(&bound, &cs), None);

        // Not handed to a provisioner (yet): the binder may have a volume for it.
        let mut unasked = pvc(Some("sim-standard"));
        unasked.annotations_mut().clear();
        assert_eq!(provisioning_for(&unasked, &cs), None);
        // Old servers set only the beta name.
        unasked.annotations_mut().insert(
            BETA_STORAGE_PROVISIONER.to_string(),
            SIM_PROVISIONER.to_string(),
        );
        assert!(provisioning_for(&unasked, &cs).is_some());
    }

    #[test]
    fn volume_for_claim() {
        let claim = pvc(Some("sim-standard"));
        let prov = provisioning_for(&claim, &classes()).unwrap();
        let pv = build_pv(&claim, &prov);
        assert_eq!(pv.name_any(), "pvc-abc");
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(
            spec.capacity.as_ref().unwrap()["storage"],
            Quantity("5Gi".into())
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("sim-standard"));
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        let csi = spec.csi.as_ref().unwrap();
        assert_eq!(csi.driver, crate::attach::DRIVER);
        assert_eq!(csi.volume_handle, "pvc-abc");
        assert_eq!(
            csi.volume_attributes.as_ref().unwrap()["path"],
            "/var/lib/sim-kubelet/pvc-abc"
        );
        assert!(spec.host_path.is_none());
        let claim_ref = spec.claim_ref.as_ref().unwrap();
        assert_eq!(claim_ref.uid.as_deref(), Some("abc"));
        assert_eq!(claim_ref.kind.as_deref(), Some("PersistentVolumeClaim"));
        assert_eq!(pv.annotations()[PROVISIONED_BY], SIM_PROVISIONER);
    }

    #[test]
    fn released_volumes_are_deleted() {
        let claim = pvc(Some("sim-standard"));
        let mut pv = build_pv(&claim, &provisioning_for(&claim, &classes()).unwrap());
        assert!(!should_delete(&pv));
        pv.status = Some(PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        assert!(should_delete(&pv));
        pv.spec.as_mut().unwrap().persistent_volume_reclaim_policy = Some("Retain".into());
        assert!(!should_delete(&pv));
    }
}
