//! The CSI external-attacher of the driver `sts-safe.dev/sim`: kube-controller-manager's
//! attach/detach controller creates a VolumeAttachment for each of our volumes a pod on
//! one of our nodes needs (and deletes it to detach); we add our finalizer, and after the
//! attach delay report it attached; once it is being deleted, after the same delay we
//! remove the finalizer. It is a controller, not part of a node: it works for powered-off
//! nodes too. The VolumeAttachment cache also tells the kubelet when a volume is attached.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSIDriver, CSIDriverSpec, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::util::{api_code, is_gone_or_conflict};

/// Our CSI driver's name. Not the provisioner's `sts-safe.dev/sim`: a CSI driver name
/// (and the CSIDriver object's name) must be a DNS subdomain, without `/`.
pub const DRIVER: &str = "sim.sts-safe.dev";
/// The finalizer a CSI external-attacher puts on its VolumeAttachments
/// (`external-attacher/` and the driver name with every other character than
/// alphanumerics replaced by `-`).
pub const FINALIZER: &str = "external-attacher/sim-sts-safe-dev";
const RETRY: Duration = Duration::from_secs(1);

/// The unique volume name kubelet and the attach/detach controller use for a CSI volume.
pub fn unique_name(handle: &str) -> String {
    format!("kubernetes.io/csi/{DRIVER}^{handle}")
}

/// Creates the CSIDriver object (attach required, no pod info on mount).
pub async fn ensure_driver(client: &Client) -> anyhow::Result<()> {
    let api: Api<CSIDriver> = Api::all(client.clone());
    let driver = CSIDriver {
        metadata: ObjectMeta {
            name: Some(DRIVER.into()),
            ..Default::default()
        },
        spec: CSIDriverSpec {
            attach_required: Some(true),
            pod_info_on_mount: Some(false),
            ..Default::default()
        },
    };
    match api.create(&PostParams::default(), &driver).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(409) => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating CSIDriver {DRIVER}"))),
    }
}

/// What the attacher does next with a VolumeAttachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    AddFinalizer,
    Attach,
    Detach,
    Nothing,
}

fn has_finalizer(va: &VolumeAttachment) -> bool {
    va.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether the attachment is ours.
pub fn is_ours(va: &VolumeAttachment) -> bool {
    va.spec.attacher == DRIVER
}

pub fn next_action(va: &VolumeAttachment) -> Action {
    if !is_ours(va) {
        return Action::Nothing;
    }
    let attached = va.status.as_ref().is_some_and(|s| s.attached);
    match (va.metadata.deletion_timestamp.is_some(), has_finalizer(va)) {
        (false, false) => Action::AddFinalizer,
        (false, true) if !attached => Action::Attach,
        (true, true) => Action::Detach,
        _ => Action::Nothing,
    }
}

/// Whether `volumes` has an attachment of the volume `pv` to `node` that is attached.
pub fn is_attached(volumes: &[Arc<VolumeAttachment>], pv: &str, node: &str) -> bool {
    volumes.iter().any(|va| {
        va.spec.node_name == node
            && va.spec.source.persistent_volume_name.as_deref() == Some(pv)
            && va.metadata.deletion_timestamp.is_none()
            && va.status.as_ref().is_some_and(|s| s.attached)
    })
}

/// What the kubelet needs before it starts a pod on `node`: every claim of the pod bound
/// to a known volume, and each of our CSI volumes attached to the node. Returns the
/// unique names of our volumes (for `volumesInUse`), or what the pod waits for.
pub fn mount_gate(
    pod: &Pod,
    claim: impl Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
    volume: impl Fn(&str) -> Option<Arc<PersistentVolume>>,
    attached: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let mut names = Vec::new();
    for v in volumes {
        let Some(src) = v.persistent_volume_claim.as_ref() else {
            continue;
        };
        let Some(pvc) = claim(&src.claim_name) else {
            return Err(format!("claim {} not found", src.claim_name));
        };
        let pv_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if pv_name.is_empty() {
            return Err(format!("claim {} is not bound", src.claim_name));
        }
        let Some(pv) = volume(&pv_name) else {
            return Err(format!("volume {pv_name} not found"));
        };
        let Some(csi) = pv
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .filter(|c| c.driver == DRIVER)
        else {
            continue; // not ours to attach (e.g. an old hostPath volume)
        };
        if !attached(&pv_name) {
            return Err(format!("volume {pv_name} is not attached yet"));
        }
        names.push(unique_name(&csi.volume_handle));
    }
    Ok(names)
}

struct Worker {
    tx: watch::Sender<Arc<VolumeAttachment>>,
    task: JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the VolumeAttachment watch; returns its cache. `changed` is bumped on every
/// change (the kubelet waits on it); `ready` hears once the first list is done.
pub fn start(
    client: Client,
    delay: Duration,
    changed: watch::Sender<u64>,
    ready: tokio::sync::mpsc::Sender<&'static str>,
) -> Store<VolumeAttachment> {
    let (store, writer) = reflector::store::<VolumeAttachment>();
    let api: Api<VolumeAttachment> = Api::all(client.clone());
    tokio::spawn(async move {
        let mut ready = Some(ready);
        let stream = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        futures::pin_mut!(stream);
        let mut workers: HashMap<String, Worker> = HashMap::new();
        let dispatch = |va: VolumeAttachment, workers: &mut HashMap<String, Worker>| {
            if !is_ours(&va) {
                return;
            }
            let Some(uid) = va.metadata.uid.clone() else {
                return;
            };
            let va = Arc::new(va);
            if let Some(w) = workers.get(&uid) {
                w.tx.send_replace(va);
                return;
            }
            let (tx, rx) = watch::channel(va);
            let task = tokio::spawn(attach_worker(api.clone(), delay, rx));
            workers.insert(uid, Worker { tx, task });
        };
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(va) | watcher::Event::InitApply(va)) => {
                    dispatch(va, &mut workers);
                    changed.send_modify(|n| *n += 1);
                }
                Ok(watcher::Event::Delete(va)) => {
                    if let Some(uid) = va.metadata.uid.as_deref() {
                        workers.remove(uid);
                    }
                    changed.send_modify(|n| *n += 1);
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send("volumeattachments").await;
                    }
                    changed.send_modify(|n| *n += 1);
                }
                Ok(watcher::Event::Init) => {}
                Err(e) => warn!(error = %e, "volume attachment watch failed; retrying"),
            }
        }
    });
    store
}

/// Plays the external-attacher for one VolumeAttachment (by uid).
async fn attach_worker(
    api: Api<VolumeAttachment>,
    delay: Duration,
    mut rx: watch::Receiver<Arc<VolumeAttachment>>,
) {
    loop {
        let va = rx.borrow_and_update().clone();
        let name = va.name_any();
        let uid = va.metadata.uid.clone().unwrap_or_default();
        let action = next_action(&va);
        let res = match action {
            Action::Nothing => Ok(()),
            Action::AddFinalizer => {
                let mut fins = va.finalizers().to_vec();
                fins.push(FINALIZER.into());
                let patch = json!({ "metadata": {
                    "uid": uid,
                    "resourceVersion": va.resource_version(),
                    "finalizers": fins,
                }});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            }
            Action::Attach | Action::Detach => {
                tokio::time::sleep(delay).await;
                // Look at the newest version after the delay.
                let latest = rx.borrow_and_update().clone();
                if next_action(&latest) != action {
                    continue;
                }
                if action == Action::Attach {
                    let patch = json!({
                        "metadata": { "uid": uid },
                        "status": { "attached": true },
                    });
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| {
                            info!(attachment = %name, volume = ?latest.spec.source.persistent_volume_name,
                                node = %latest.spec.node_name, "attached volume");
                        })
                } else {
                    let fins: Vec<&String> = latest
                        .finalizers()
                        .iter()
                        .filter(|f| *f != FINALIZER)
                        .collect();
                    let patch = json!({ "metadata": {
                        "uid": uid,
                        "resourceVersion": latest.resource_version(),
                        "finalizers": fins,
                    }});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| {
                            info!(attachment = %name, volume = ?latest.spec.source.persistent_volume_name,
                                node = %latest.spec.node_name, "detached volume");
                        })
                }
            }
        };
        match res {
            Ok(()) => {}
            Err(e) if is_gone_or_conflict(&e) || api_code(&e) == Some(422) => {
                debug!(attachment = %name, error = %e, "attachment changed; waiting for the watch");
            }
            Err(e) => {
                warn!(attachment = %name, error = %e, "attacher write failed; retrying");
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(RETRY) => {}
                }
                continue;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::storage::v1::{
        VolumeAttachmentSource, VolumeAttachmentSpec, VolumeAttachmentStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn va(attached: bool, finalizer: bool, deleting: bool) -> VolumeAttachment {
        VolumeAttachment {
            metadata: ObjectMeta {
                name: Some("csi-1".into()),
                finalizers: finalizer.then(|| vec![FINALIZER.to_string()]),
                deletion_timestamp: deleting.then(|| Time(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            },
            spec: VolumeAttachmentSpec {
                attacher: DRIVER.into(),
                node_name: "n1".into(),
                source: VolumeAttachmentSource {
                    persistent_volume_name: Some("pvc-1".into()),
                    ..Default::default()
                },
            },
            status: Some(VolumeAttachmentStatus {
                attached,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn attacher_steps() {
        assert_eq!(next_action(&va(false, false, false)), Action::AddFinalizer);
        assert_eq!(next_action(&va(false, true, false)), Action::Attach);
        assert_eq!(next_action(&va(true, true, false)), Action::Nothing);
        assert_eq!(next_action(&va(true, true, true)), Action::Detach);
        assert_eq!(next_action(&va(true, false, true)), Action::Nothing);
        let mut other = va(false, false, false);
        other.spec.attacher = "ebs.csi.aws.com".into();
        assert_eq!(next_action(&other), Action::Nothing);
    }

    #[test]
    fn pods_wait_for_attachment() {
        use k8s_openapi::api::core::v1::{
            CSIPersistentVolumeSource, HostPathVolumeSource, PersistentVolumeClaimSpec,
            PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, PodSpec, Volume,
        };
        let pod = Pod {
            spec: Some(PodSpec {
                volumes: Some(vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "data-0".into(),
                        read_only: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let claim = |bound: bool| {
            Arc::new(PersistentVolumeClaim {
                spec: Some(PersistentVolumeClaimSpec {
                    volume_name: bound.then(|| "pvc-1".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let csi_pv = Arc::new(PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                csi: Some(CSIPersistentVolumeSource {
                    driver: DRIVER.into(),
                    volume_handle: "pvc-1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let host_pv = Arc::new(PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                host_path: Some(HostPathVolumeSource {
                    path: "/x".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(mount_gate(&pod, |_| None, |_| None, |_| true).is_err());
        assert!(mount_gate(&pod, |_| Some(claim(false)), |_| None, |_| true).is_err());
        assert!(mount_gate(&pod, |_| Some(claim(true)), |_| None, |_| true).is_err());
        assert_eq!(
            mount_gate(
                &pod,
                |_| Some(claim(true)),
                |_| Some(csi_pv.clone()),
                |_| false
            ),
            Err("volume pvc-1 is not attached yet".to_string())
        );
        assert_eq!(
            mount_gate(
                &pod,
                |_| Some(claim(true)),
                |_| Some(csi_pv.clone()),
                |_| true
            ),
            Ok(vec!["kubernetes.io/csi/sim.sts-safe.dev^pvc-1".to_string()])
        );
        assert_eq!(
            mount_gate(
                &pod,
                |_| Some(claim(true)),
                |_| Some(host_pv.clone()),
                |_| false
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn attached_lookup() {
        let list = vec![Arc::new(va(true, true, false))];
        assert!(is_attached(&list, "pvc-1", "n1"));
        assert!(!is_attached(&list, "pvc-1", "n2"));
        assert!(!is_attached(&list, "pvc-2", "n1"));
        let detaching = vec![Arc::new(va(true, true, true))];
        assert!(!is_attached(&detaching, "pvc-1", "n1"));
        assert_eq!(
            unique_name("pvc-1"),
            "kubernetes.io/csi/sim.sts-safe.dev^pvc-1"
        );
    }
}
