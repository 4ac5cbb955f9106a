//! The resize-pvcs plan: which claims grow to what, what the StorageClasses, quotas and
//! pods allow, and the re-create of the StatefulSet with the new claim templates
//! (`plan::recreate`). Every refusal names the object and the fix.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use super::recreate::{growth, Growth};
use super::API_VERSION;
use crate::error::{Error, Result};
use crate::model;

/// StorageClass annotation saying how its driver grows a filesystem: `online` (while
/// the pod runs) or `offline` (when the pod restarts). The API has no such field; the
/// plan says "unknown" without it.
pub const EXPANSION_ANNOTATION: &str = "sts-safe.dev/expansion";

/// `--size [TEMPLATE=]SIZE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeRequest {
    pub template: Option<String>,
    pub size: String,
}

/// Parses `--size`: a positive Kubernetes quantity, optionally after `TEMPLATE=`.
pub fn parse_size(s: &str) -> std::result::Result<SizeRequest, String> {
    let (template, size) = match s.split_once('=') {
        Some((t, q)) => (Some(t.trim().to_string()), q.trim()),
        None => (None, s.trim()),
    };
    if template.as_deref() == Some("") {
        return Err(format!("\"{s}\": the template name before '=' is empty"));
    }
    match model::quantity_bytes(size) {
        Some(b) if b > 0.0 && b.fract() == 0.0 => Ok(SizeRequest {
            template,
            size: size.to_string(),
        }),
        Some(_) => Err(format!(
            "\"{size}\" is not a positive whole number of bytes"
        )),
        None => Err(format!(
            "\"{size}\" is not a Kubernetes quantity (examples: 20Gi, 500Mi, 1Ti, 100G)"
        )),
    }
}

/// Bytes of a quantity known to parse.
pub fn bytes(q: &str) -> f64 {
    model::quantity_bytes(q).unwrap_or(0.0)
}

/// A template's `resources.requests.storage`.
pub fn template_size(sts: &StatefulSet, template: &str) -> Option<String> {
    sts.spec
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some(template))?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

/// The new size of each named template, from the `--size` flags.
pub fn resolve_sizes(
    sts: &StatefulSet,
    requests: &[SizeRequest],
) -> Result<BTreeMap<String, String>> {
    let name = sts.name_any();
    let templates = model::claim_templates(sts);
    if templates.is_empty() {
        return Err(Error::usage(format!(
            "statefulset \"{name}\" has no volumeClaimTemplates: it has no volumes to resize"
        )));
    }
    if requests.is_empty() {
        return Err(Error::usage(format!(
            "say how large: --size SIZE (or --size TEMPLATE=SIZE; templates of \"{name}\": {})",
            templates.join(", ")
        )));
    }
    let mut out = BTreeMap::new();
    for r in requests {
        let t = match &r.template {
            Some(t) if templates.contains(t) => t.clone(),
            Some(t) => {
                return Err(Error::usage(format!(
                    "statefulset \"{name}\" has no volumeClaimTemplate \"{t}\" (it has: {})",
                    templates.join(", ")
                )))
            }
            None if templates.len() == 1 => templates[0].clone(),
            None => {
                return Err(Error::usage(format!(
                    "statefulset \"{name}\" has {} volumeClaimTemplates ({}): name the one to grow, e.g. --size {}={}",
                    templates.len(),
                    templates.join(", "),
                    templates[0],
                    r.size
                )))
            }
        };
        if out.insert(t.clone(), r.size.clone()).is_some() {
            return Err(Error::usage(format!("--size names template \"{t}\" twice")));
        }
    }
    Ok(out)
}

/// What the run does with one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimAction {
    /// Its request is raised, then the run waits for the capacity.
    Grow,
    /// Its request already asks for the size (an earlier run): the run waits.
    Wait,
    /// Already at the size.
    Done,
    /// Grown; the filesystem waits for the pod to restart (offline expansion).
    Restart,
    /// Left alone (an orphan with --no-include-orphans, or an orphan not Bound).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimChange {
    pub name: String,
    pub template: String,
    pub ordinal: i32,
    /// Outside the live ordinals: kept from a scale-down.
    pub orphan: bool,
    /// The pod that mounts it (live ordinals).
    pub pod: Option<String>,
    pub storage_class: Option<String>,
    /// Capacity now.
    pub from: String,
    pub to: String,
    /// online | offline | unknown
    pub expansion: String,
    pub action: ClaimAction,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateChange {
    pub name: String,
    pub from: Option<String>,
    pub to: String,
    /// False when the StatefulSet's template already has the size.
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecreateStep {
    pub needed: bool,
    /// In plain words.
    pub description: String,
    /// The ConfigMap that keeps the StatefulSet's copy until the end.
    pub record: String,
    /// The revision the pods run, which the re-created object must compute again.
    pub update_revision: Option<String>,
}

/// `resize-pvcs --dry-run -o json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizePlan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub statefulset: String,
    pub namespace: String,
    pub templates: Vec<TemplateChange>,
    /// Top ordinal first, in the order they are grown.
    pub claims: Vec<ClaimChange>,
    pub include_orphans: bool,
    pub restart_pods: bool,
    pub recreate: RecreateStep,
    /// The run continues an interrupted one (the StatefulSet may be missing).
    pub resuming: bool,
    pub warnings: Vec<String>,
}

impl ResizePlan {
    /// Nothing to grow, re-create or restart.
    pub fn is_noop(&self) -> bool {
        !self.recreate.needed
            && self
                .claims
                .iter()
                .all(|c| matches!(c.action, ClaimAction::Done | ClaimAction::Skip))
    }

    /// Claims the run raises or waits for, in order.
    pub fn to_grow(&self) -> impl Iterator<Item = &ClaimChange> {
        self.claims
            .iter()
            .filter(|c| matches!(c.action, ClaimAction::Grow | ClaimAction::Wait))
    }
}

pub struct ResizeInputs<'a> {
    /// The StatefulSet as it is, or its stored copy when the object is gone.
    pub sts: &'a StatefulSet,
    pub pods: &'a [Pod],
    pub pvcs: &'a [PersistentVolumeClaim],
    /// None when StorageClasses may not be read (cluster-scoped).
    pub classes: Option<&'a [StorageClass]>,
    pub quotas: &'a [ResourceQuota],
    pub sizes: &'a BTreeMap<String, String>,
    pub include_orphans: bool,
    pub restart_pods: bool,
    pub namespace: &'a str,
    pub resuming: bool,
    /// The StatefulSet object exists and is not being deleted.
    pub sts_exists: bool,
    /// The name of the ConfigMap that keeps the copy.
    pub record: &'a str,
}

/// The plan, or the first refusal: shrinking (exit 2), a claim of a live ordinal not
/// Bound, a class without expansion, a quota without room (exit 3).
pub fn plan(inp: &ResizeInputs) -> Result<ResizePlan> {
    let sts = inp.sts;
    let name = sts.name_any();
    let mut warnings = vec![];
    let mut templates = vec![];
    for (t, to) in inp.sizes {
        let from = template_size(sts, t);
        if let Some(f) = &from {
            if bytes(to) < bytes(f) {
                return Err(Error::usage(format!(
                    "PVCs cannot shrink: volumeClaimTemplate \"{t}\" of statefulset \"{name}\" asks for {f}, and {to} is smaller"
                )));
            }
        }
        let changed = from.as_deref().is_none_or(|f| bytes(f) != bytes(to));
        templates.push(TemplateChange {
            name: t.clone(),
            from,
            to: to.clone(),
            changed,
        });
    }
    if let Some(why) = foreign_finalizers(sts) {
        return Err(Error::stopped(why));
    }
    let live = model::live_range(sts);
    let mut claims = vec![];
    for (t, to) in inp.sizes {
        for o in live.clone() {
            let claim = model::pvc_name(t, &name, o);
            let pvc = inp.pvcs.iter().find(|p| p.name_any() == claim);
            let problem = match pvc {
                None => Some(format!(
                    "PVC \"{claim}\" of statefulset \"{name}\" (ordinal {o}) does not exist: wait until the pod has its volume, then re-run"
                )),
                Some(p) if p.metadata.deletion_timestamp.is_some() => Some(format!(
                    "PVC \"{claim}\" of statefulset \"{name}\" is being deleted: resize it after the StatefulSet has recreated it"
                )),
                Some(p) if model::pvc_phase(p) != "Bound" => Some(format!(
                    "PVC \"{claim}\" of statefulset \"{name}\" is {}, not Bound: only a Bound claim can grow; fix it first (kubectl sts-safe doctor {name})",
                    model::pvc_phase(p)
                )),
                Some(_) => None,
            };
            match (problem, pvc) {
                (None, Some(pvc)) => claims.push(change(inp, pvc, t, to, o, false)?),
                // The object is gone: creating it again comes first, whatever its claims say.
                (Some(why), _) if !inp.sts_exists => warnings.push(format!("{why} (left alone)")),
                (Some(why), _) => return Err(Error::stopped(why)),
                (None, None) => unreachable!("a missing claim is a problem"),
            }
        }
        let mut orphans: Vec<(i32, &PersistentVolumeClaim)> = inp
            .pvcs
            .iter()
            .filter_map(|p| Some((model::claim_ordinal(&p.name_any(), t, &name)?, p)))
            .filter(|(o, _)| !live.contains(o))
            .collect();
        orphans.sort_by_key(|(o, _)| *o);
        for (o, pvc) in orphans {
            let mut c = change(inp, pvc, t, to, o, true)?;
            if !inp.include_orphans && c.action != ClaimAction::Done {
                c.action = ClaimAction::Skip;
                c.note = Some("kept at its size (--no-include-orphans): a scale-up brings it back at this size".into());
            } else if pvc.metadata.deletion_timestamp.is_some() {
                c.action = ClaimAction::Skip;
                c.note = Some("being deleted".into());
            } else if model::pvc_phase(pvc) != "Bound" && c.action != ClaimAction::Done {
                c.action = ClaimAction::Skip;
                c.note = Some(format!(
                    "{}, not Bound: only a Bound claim can grow",
                    model::pvc_phase(pvc)
                ));
                warnings.push(format!(
                    "PVC \"{}\" (kept from a scale-down) is not Bound and stays at {}: a scale-up to ordinal {o} brings it back at that size",
                    c.name, c.from
                ));
            }
            claims.push(c);
        }
    }
    // Top ordinal first, as the StatefulSet controller updates pods.
    claims.sort_by(|a, b| b.ordinal.cmp(&a.ordinal).then(a.template.cmp(&b.template)));
    check_classes(inp, &claims, &mut warnings)?;
    check_quotas(inp, &claims)?;
    for c in &claims {
        if c.action == ClaimAction::Restart && !inp.restart_pods {
            warnings.push(format!(
                "PVC \"{}\" waits for its pod {} to restart before its filesystem grows: re-run with --restart-pods, or delete the pod yourself",
                c.name,
                c.pod.as_deref().unwrap_or("(none)")
            ));
        }
    }
    // A resumed run also re-creates (or finishes checking) from its record.
    let needed = templates.iter().any(|t| t.changed) || !inp.sts_exists || inp.resuming;
    let revision = model::update_revision(sts).map(String::from);
    let description = if needed {
        format!(
            "the StatefulSet object is deleted with propagationPolicy=Orphan and created again with the new claim templates (its copy is kept in configmap \"{}\" until the end); pods keep running and the new object adopts them; the update revision stays {}",
            inp.record,
            revision.as_deref().unwrap_or("(unknown)")
        )
    } else {
        "the claim templates already have the new sizes: the StatefulSet object is left as it is"
            .into()
    };
    if needed {
        warnings.push(format!(
            "update the manifests statefulset \"{name}\" comes from: volumeClaimTemplates are immutable, so applying the old size later is rejected by the API server"
        ));
    }
    Ok(ResizePlan {
        api_version: API_VERSION,
        kind: "ResizePlan",
        statefulset: name,
        namespace: inp.namespace.to_string(),
        templates,
        claims,
        include_orphans: inp.include_orphans,
        restart_pods: inp.restart_pods,
        recreate: RecreateStep {
            needed,
            description,
            record: inp.record.to_string(),
            update_revision: revision,
        },
        resuming: inp.resuming,
        warnings,
    })
}

fn change(
    inp: &ResizeInputs,
    pvc: &PersistentVolumeClaim,
    template: &str,
    to: &str,
    ordinal: i32,
    orphan: bool,
) -> Result<ClaimChange> {
    let name = pvc.name_any();
    let from = model::pvc_capacity(pvc).unwrap_or_else(|| "?".into());
    let class = class_of(inp, pvc);
    let (mut action, mut note) = match growth(pvc, bytes(to)) {
        Growth::Done => (ClaimAction::Done, None),
        Growth::NeedsRestart => (ClaimAction::Restart, None),
        Growth::Failed(why) if requested(pvc) >= bytes(to) => {
            return Err(Error::stopped(format!(
                "PVC \"{name}\" failed to grow in an earlier attempt: {why}; fix the cause (the resizer's logs, kubectl describe pvc {name}), then re-run"
            )))
        }
        Growth::InProgress(_) if requested(pvc) >= bytes(to) => {
            (ClaimAction::Wait, Some("already requested: waiting for it to grow".into()))
        }
        _ => (ClaimAction::Grow, None),
    };
    if action == ClaimAction::Done && bytes(&from) > bytes(to) {
        note = Some(format!("already larger ({from})"));
    }
    let pod = (!orphan).then(|| model::pod_name(&inp.sts.name_any(), ordinal));
    if action == ClaimAction::Restart {
        let running = pod
            .as_deref()
            .is_some_and(|p| inp.pods.iter().any(|x| x.name_any() == p));
        if !running {
            // Nothing mounts it: the filesystem grows when a pod mounts it again.
            action = ClaimAction::Done;
            note = Some("the filesystem grows when a pod mounts it".into());
        }
    }
    Ok(ClaimChange {
        name,
        template: template.to_string(),
        ordinal,
        orphan,
        pod,
        expansion: expansion_of(inp, pvc, class.as_deref()).into(),
        storage_class: class,
        from,
        to: to.to_string(),
        action,
        note,
    })
}

/// The claim's `spec.resources.requests.storage` in bytes.
pub fn requested(pvc: &PersistentVolumeClaim) -> f64 {
    model::pvc_request(pvc).map_or(0.0, |q| bytes(&q))
}

/// What quota counts for a claim: the larger of requested and allocated (1.34+).
fn charged(pvc: &PersistentVolumeClaim) -> f64 {
    let allocated = pvc
        .status
        .as_ref()
        .and_then(|s| s.allocated_resources.as_ref())
        .and_then(|a| a.get("storage"))
        .map_or(0.0, |q| bytes(&q.0));
    requested(pvc).max(allocated)
}

/// The claim's class as the API server's resize admission reads it (no default: a claim
/// without one cannot grow).
fn class_of(_inp: &ResizeInputs, pvc: &PersistentVolumeClaim) -> Option<String> {
    model::pvc_storage_class(pvc).filter(|c| !c.is_empty())
}

/// Finalizers other than the garbage collector's would keep the deleted object (and let
/// their controller run its delete-time clean-up): refused.
fn foreign_finalizers(sts: &StatefulSet) -> Option<String> {
    let foreign: Vec<&str> = sts
        .metadata
        .finalizers
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|f| !matches!(*f, "orphan" | "foregroundDeletion"))
        .collect();
    (!foreign.is_empty()).then(|| {
        format!(
            "statefulset \"{}\" has finalizers {}: its delete would wait for (and run) their controller's clean-up, so it cannot be re-created safely; resize it with the tool that owns those finalizers",
            sts.name_any(),
            foreign.join(", ")
        )
    })
}

fn expansion_of(
    inp: &ResizeInputs,
    pvc: &PersistentVolumeClaim,
    class: Option<&str>,
) -> &'static str {
    if growth(pvc, f64::MAX) == Growth::NeedsRestart {
        return "offline";
    }
    let annotated = class.and_then(|c| {
        inp.classes?
            .iter()
            .find(|x| x.name_any() == c)?
            .annotations()
            .get(EXPANSION_ANNOTATION)
            .cloned()
    });
    match annotated.as_deref() {
        Some("online") => "online",
        Some("offline") => "offline",
        _ => "unknown",
    }
}

/// Every class of a claim to grow must allow expansion (else the API server refuses the
/// patch half-way through the StatefulSet).
fn check_classes(
    inp: &ResizeInputs,
    claims: &[ClaimChange],
    warnings: &mut Vec<String>,
) -> Result<()> {
    if let Some(c) = claims
        .iter()
        .find(|c| c.action == ClaimAction::Grow && c.storage_class.is_none())
    {
        return Err(Error::stopped(format!(
            "PVC \"{}\" names no StorageClass: the API server lets only claims of a class with allowVolumeExpansion: true grow",
            c.name
        )));
    }
    let growing: BTreeSet<&str> = claims
        .iter()
        .filter(|c| c.action == ClaimAction::Grow)
        .filter_map(|c| c.storage_class.as_deref())
        .collect();
    let Some(classes) = inp.classes else {
        if !growing.is_empty() {
            warnings.push("StorageClasses could not be read: whether they allow expansion is left to the API server, which refuses a claim whose class does not".into());
        }
        return Ok(());
    };
    for c in growing {
        match classes.iter().find(|x| x.name_any() == c) {
            None => {
                return Err(Error::stopped(format!(
                    "StorageClass \"{c}\" does not exist: a claim can grow only through a class with allowVolumeExpansion: true"
                )))
            }
            Some(sc) if sc.allow_volume_expansion != Some(true) => {
                return Err(Error::stopped(format!(
                    "StorageClass \"{c}\" does not allow volume expansion (allowVolumeExpansion is not true): ask the cluster admin to set it, if its driver can grow volumes"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Room in every ResourceQuota on requests.storage (all claims or one class) for the
/// growth of the claims it counts.
fn check_quotas(inp: &ResizeInputs, claims: &[ClaimChange]) -> Result<()> {
    let growth_of = |filter: &dyn Fn(&ClaimChange) -> bool| -> f64 {
        claims
            .iter()
            .filter(|c| c.action == ClaimAction::Grow && filter(c))
            .filter_map(|c| {
                let pvc = inp.pvcs.iter().find(|p| p.name_any() == c.name)?;
                Some((bytes(&c.to) - charged(pvc)).max(0.0))
            })
            .sum()
    };
    for q in inp.quotas {
        let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
        let used = q.status.as_ref().and_then(|s| s.used.as_ref());
        for (key, limit) in hard.into_iter().flatten() {
            let class = match key.as_str() {
                "requests.storage" => None,
                k => match k.strip_suffix(".storageclass.storage.k8s.io/requests.storage") {
                    Some(c) => Some(c.to_string()),
                    None => continue,
                },
            };
            let need = growth_of(&|c: &ClaimChange| {
                class.is_none() || c.storage_class.as_deref() == class.as_deref()
            });
            if need == 0.0 {
                continue;
            }
            let used_now = used.and_then(|u| u.get(key)).map_or(0.0, |q| bytes(&q.0));
            let room = bytes(&limit.0) - used_now;
            if need > room {
                return Err(Error::stopped(format!(
                    "resourcequota \"{}\" has room for {} more of {key} (hard {}, used {}), and growing the claims needs {}: raise the quota or ask for less",
                    q.name_any(),
                    model::format_bytes(room.max(0.0)),
                    limit.0,
                    model::format_bytes(used_now),
                    model::format_bytes(need)
                )));
            }
        }
    }
    Ok(())
}

/// Why the resize must not start as things are: pods not Ready, a rollout pending.
/// Not asked when the StatefulSet object is gone (a resumed run must re-create it).
pub fn health_stop(sts: &StatefulSet, pods: &[Pod]) -> Option<String> {
    let name = sts.name_any();
    // Under OnDelete a rollout is pending while a pod runs another revision than the
    // update revision (see model::pods_behind_update).
    if model::strategy_type(sts) == "OnDelete" {
        let update = model::update_revision(sts);
        let behind: Vec<String> = model::pods_behind_update(sts, pods)
            .iter()
            .map(|p| p.name_any())
            .collect();
        if !behind.is_empty() {
            return Some(format!(
                "statefulset \"{name}\" has a rollout pending: {} still run another revision than {} (OnDelete: delete them one at a time to update them) before resizing its volumes",
                behind.join(", "),
                update.unwrap_or("?")
            ));
        }
    } else if model::rollout_pending(sts) {
        return Some(format!(
            "statefulset \"{name}\" has a rollout pending ({} → {}): finish it (kubectl sts-safe canary {name} --resume) or roll it back before resizing its volumes",
            model::current_revision(sts).unwrap_or("?"),
            model::update_revision(sts).unwrap_or("?")
        ));
    }
    let unready = model::unavailable_in_range(sts, pods);
    if !unready.is_empty() {
        return Some(format!(
            "statefulset \"{name}\" has pods that are not Running/Ready: {}; fix them first (kubectl sts-safe doctor {name})",
            unready.join(", ")
        ));
    }
    None
}

/// One claim at the end of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimResult {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Capacity at the end.
    pub capacity: Option<String>,
    pub expansion: String,
    /// grown | already | waits-for-restart | skipped
    pub outcome: String,
    pub pod_restarted: bool,
}

/// What the re-create proved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecreateResult {
    pub old_uid: String,
    pub new_uid: String,
    /// The revision the pods run, computed again by the new object.
    pub update_revision: Option<String>,
    pub pods_adopted: usize,
    pub revisions_adopted: usize,
    /// Pods whose uid changed during the re-create (always 0, or the run stopped).
    pub pods_replaced: usize,
}

/// `resize-pvcs -o json` at the end of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub statefulset: String,
    pub namespace: String,
    pub claims: Vec<ClaimResult>,
    pub templates: Vec<TemplateChange>,
    pub recreate: Option<RecreateResult>,
    /// Pods whose volumes wait for a restart (offline expansion, without --restart-pods).
    pub restart_needed: Vec<String>,
    /// The command that restarts them safely.
    pub next: Option<String>,
    pub seconds: f64,
    pub lock: Option<String>,
    pub exit_code: i32,
}

impl ResizeReport {
    /// The report of a finished run of `plan`: `restart_needed` are the pods whose
    /// volumes still wait for a restart (the report names the command for them).
    pub fn new(
        plan: &ResizePlan,
        claims: Vec<ClaimResult>,
        recreate: Option<RecreateResult>,
        restart_needed: Vec<String>,
        seconds: f64,
        lock: Option<String>,
    ) -> ResizeReport {
        let next = (!restart_needed.is_empty()).then(|| {
            format!(
                "kubectl sts-safe resize-pvcs {} -n {} {} --restart-pods",
                plan.statefulset,
                plan.namespace,
                plan.templates
                    .iter()
                    .map(|t| format!("--size {}={}", t.name, t.to))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        });
        ResizeReport {
            api_version: API_VERSION,
            kind: "ResizeReport",
            statefulset: plan.statefulset.clone(),
            namespace: plan.namespace.clone(),
            claims,
            templates: plan.templates.clone(),
            recreate,
            restart_needed,
            next,
            seconds,
            lock,
            exit_code: 0,
        }
    }
}

#[cfg(test)]
#[path = "resize_tests.rs"]
mod tests;
