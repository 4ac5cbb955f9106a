//! The decisions of `kubectl sts-safe prune-pvcs [STS]`: find the PVCs that StatefulSet scale-down truly
//! orphaned and delete them one at a time, each re-checked right before its delete.
//!
//! Flow: list → [`plan`] (here, pure) → show → confirm → `exec::prune::execute` → report.
//!
//! - Listing: one paginated list (500 per page) per kind — StatefulSets, pods, PVCs (with
//!   `-l`) in the namespace, or cluster-wide with `-A` — plus PersistentVolumes once
//!   (cluster-scoped). Never a request per PVC while planning. When the identity may not
//!   list PVs, the reclaim policy shows as "unknown" instead of failing.
//! - The orphan rule is [`super::orphan::classify`]. The plan proposes the `Orphan`
//!   verdicts; mounted, being-deleted, ambiguous, scaled-to-zero and (with
//!   `--older-than`) too-young claims are listed under `skipped` with the reason. Live
//!   ordinals are never listed at all.
//! - `--include-deleted` adds the "StatefulSet gone" group
//!   ([`super::orphan::gone_statefulset_claims`]), confirmed by a second, separate
//!   question. `--yes` answers that question too: the group only exists because
//!   `--include-deleted` asked for it.
//! - `--dry-run` (`=client`) stops after the plan. `--dry-run=server` runs the same
//!   re-checks and sends every delete with dryRun=All, so admission validates them;
//!   nothing is deleted and nothing is asked.
//! - Deleting: highest ordinal first (a scale-up claims the lowest ordinals first). Right
//!   before each delete the PVC's StatefulSet is read again (GET) and the pods of its
//!   namespace listed again; the PVC is judged again with the same rule. No API call can
//!   test the StatefulSet and delete the claim in one step, so a claim is deleted in four
//!   steps: (1) the finalizer [`HOLD`] is added under the plan's resourceVersion (a PVC
//!   changed or recreated since the plan is never touched: 409 → skipped), then the
//!   re-check above (a failed re-check takes the hold back); (2) the delete, with
//!   Preconditions { uid, resourceVersion }, only marks the claim, which the hold keeps
//!   with its volume; (3) the claim is judged again on fresh
//!   reads. From the mark on, the StatefulSet controller creates no pod for a claim being
//!   deleted, so this judgement is final: (4) when the ordinal is still not live and no
//!   pod mounts the claim, the hold is removed and the claim goes; otherwise a scale-up
//!   landed around the delete, and since resourceVersions of different kinds are not
//!   comparable the run cannot tell whether it came before the mark: the claim stays held
//!   with its data ([`Status::Held`], exit 3; README "A prune that raced a scale-up" tells
//!   how to keep the data).
//! - A claim an earlier run marked and still holds (killed between (2) and (4)) is judged
//!   as if unmarked: an orphan is planned again with `held: true` (its delete is finished
//!   by (3) and (4)); one whose ordinal is live again is listed under `skipped` (code
//!   `held`).
//! - Ctrl-C stops between deletions (a second Ctrl-C aborts at once).
//! - Exit codes: 0 when every planned PVC was deleted or nothing needed pruning; 3 when
//!   any planned PVC was not deleted (skipped by a re-check or precondition, or its group
//!   not confirmed) or when confirmation was refused; 130 on Ctrl-C; 1 when a request
//!   failed (the remaining PVCs are not attempted). Plan-time `skipped` entries never
//!   change the exit code.
//! - `STS` restricts the plan to that StatefulSet (its existence is checked). With
//!   `--include-deleted`, a name that no longer exists selects the "StatefulSet gone"
//!   PVCs named `<template>-<STS>-<ordinal>`. `STS` together with `-A` is a usage error.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::orphan::{self, OrphanRules, Verdict};
use super::API_VERSION;
use crate::error::exit;
use crate::model;

/// The finalizer that holds a claim between its deletion mark and the final re-check.
pub const HOLD: &str = "sts-safe.dev/prune-hold";

// ---- Plan data (the documented `-o json|yaml` structure) -------------------------------

/// What `prune-pvcs` would delete, and what it keeps and why.
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrunePlan {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The namespace looked at; null with `-A`.
    pub namespace: Option<String>,
    /// The StatefulSet the plan is restricted to, if one was named.
    pub statefulset: Option<String>,
    /// PVCs orphaned by scale-down, in table order.
    pub pvcs: Vec<PlanEntry>,
    pub total: Total,
    /// "StatefulSet gone" group (only with `--include-deleted`): deleted only when this
    /// group is confirmed.
    pub gone: Vec<PlanEntry>,
    pub gone_total: Total,
    /// Claims that follow a StatefulSet's naming rule but are not proposed.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanEntry {
    pub namespace: String,
    pub name: String,
    /// Null in the "StatefulSet gone" group.
    pub statefulset: Option<String>,
    /// The StatefulSet's uid at plan time: the re-checks stop for a StatefulSet deleted
    /// and re-created under the same name. Null in the "StatefulSet gone" group.
    pub statefulset_uid: Option<String>,
    /// The volumeClaimTemplate; null in the "StatefulSet gone" group.
    pub template: Option<String>,
    /// "StatefulSet gone" group: `<template>-<statefulset>` as read from the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_prefix: Option<String>,
    pub ordinal: i32,
    pub capacity: Option<String>,
    pub storage_class: Option<String>,
    /// The bound PersistentVolume.
    pub volume: Option<String>,
    /// The PV's reclaim policy (Delete, Retain, Recycle), "unknown" when the PV could not
    /// be read, null when no PV is bound.
    pub reclaim_policy: Option<String>,
    /// What deleting the claim does to the data, in words.
    pub consequence: String,
    pub age_seconds: Option<i64>,
    pub phase: String,
    /// Preconditions of the delete: a PVC changed or recreated since the plan is kept.
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    /// True when an earlier run marked the claim for deletion and still holds it: only
    /// the final re-check and the removal of the hold remain.
    pub held: bool,
}

#[derive(Debug, Serialize, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Total {
    pub count: usize,
    /// Sum of the known capacities, e.g. `30Gi`.
    pub capacity: String,
    pub bytes: u64,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub namespace: String,
    pub name: String,
    /// Null for a PVC of the "StatefulSet gone" group.
    pub statefulset: Option<String>,
    pub ordinal: i32,
    /// mounted | deleting | scaled-to-zero | ambiguous | too-young | held
    pub code: &'static str,
    pub reason: String,
}

// ---- Report data ---------------------------------------------------------------------

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// none | server
    pub dry_run: &'static str,
    pub plan: PrunePlan,
    pub results: Vec<Outcome>,
    pub summary: Summary,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub namespace: String,
    pub name: String,
    /// orphan | gone
    pub group: Group,
    pub result: Status,
    pub reason: Option<String>,
    pub capacity: Option<String>,
}

#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    Orphan,
    Gone,
}

#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Deleted,
    /// Marked for deletion, then a scale-up or a pod claimed it: kept by the hold, with
    /// its volume.
    Held,
    /// `--dry-run=server`: the API server accepted the delete; nothing was deleted.
    Validated,
    Skipped,
    Failed,
    NotAttempted,
}

#[derive(Debug, Serialize, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub deleted: usize,
    pub held: usize,
    pub validated: usize,
    pub skipped: usize,
    pub failed: usize,
    pub not_attempted: usize,
    pub deleted_capacity: String,
}

// ---- Planning (pure) -------------------------------------------------------------------

/// Everything the plan is computed from: one list per kind.
#[derive(Debug, Default, Clone)]
pub struct PruneInputs {
    pub statefulsets: Vec<StatefulSet>,
    pub pods: Vec<Pod>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    /// None when PersistentVolumes may not be listed.
    pub pvs: Option<Vec<PersistentVolume>>,
}

/// What the flags ask for.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// None with `-A`.
    pub namespace: Option<String>,
    pub statefulset: Option<String>,
    /// False when the named StatefulSet does not exist (only allowed with --include-deleted).
    pub statefulset_exists: bool,
    pub include_deleted: bool,
    pub include_scaled_to_zero: bool,
    pub older_than: Option<Duration>,
}

impl Scope {
    pub fn options(&self) -> OrphanRules {
        OrphanRules {
            include_scaled_to_zero: self.include_scaled_to_zero,
        }
    }

    /// Whether the claim concerns the named StatefulSet (every claim when none is named).
    fn covers(&self, claim: &orphan::Claim<'_>) -> bool {
        let Some(name) = &self.statefulset else {
            return true;
        };
        if !self.statefulset_exists {
            return false;
        }
        claim.statefulset == *name
            || matches!(&claim.verdict, Verdict::Ambiguous(all) if all.contains(name))
    }

    /// Whether a "StatefulSet gone" claim with this prefix belongs to the plan.
    fn covers_gone(&self, prefix: &str) -> bool {
        match &self.statefulset {
            None => true,
            Some(_) if self.statefulset_exists => false,
            Some(name) => prefix.ends_with(&format!("-{name}")),
        }
    }
}

/// PV name → reclaim policy; None when PVs could not be listed.
type Volumes = Option<HashMap<String, Option<String>>>;

fn volume_index(pvs: Option<&[PersistentVolume]>) -> Volumes {
    pvs.map(|pvs| {
        pvs.iter()
            .map(|pv| {
                let policy = pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.persistent_volume_reclaim_policy.clone());
                (pv.name_any(), policy)
            })
            .collect()
    })
}

/// The reclaim policy and what deleting the claim does to the data.
pub fn reclaim(volume: Option<&str>, volumes: &Volumes) -> (Option<String>, String) {
    let Some(volume) = volume else {
        return (None, "no PV bound: only the claim is removed".into());
    };
    let Some(index) = volumes else {
        return (
            Some("unknown".into()),
            "unknown: PersistentVolumes may not be listed".into(),
        );
    };
    match index.get(volume) {
        None => (
            Some("unknown".into()),
            format!("unknown: PV \"{volume}\" not found"),
        ),
        Some(None) => (
            Some("unknown".into()),
            format!("unknown: PV \"{volume}\" has no reclaim policy"),
        ),
        Some(Some(policy)) => (Some(policy.clone()), consequence(policy)),
    }
}

fn consequence(policy: &str) -> String {
    match policy {
        "Delete" => "Delete: the data is destroyed".into(),
        "Retain" => "Retain: the PV stays Released and must be cleaned up by hand".into(),
        "Recycle" => "Recycle: the volume is wiped and offered to new claims".into(),
        other => format!("{other}: see the PV's reclaimPolicy"),
    }
}

struct Naming {
    statefulset: Option<String>,
    statefulset_uid: Option<String>,
    template: Option<String>,
    claim_prefix: Option<String>,
    ordinal: i32,
}

fn entry(
    pvc: &PersistentVolumeClaim,
    naming: Naming,
    volumes: &Volumes,
    now: Timestamp,
) -> PlanEntry {
    let volume = model::pvc_volume(pvc).map(str::to_string);
    let (reclaim_policy, consequence) = reclaim(volume.as_deref(), volumes);
    PlanEntry {
        namespace: pvc.namespace().unwrap_or_default(),
        name: pvc.name_any(),
        statefulset: naming.statefulset,
        statefulset_uid: naming.statefulset_uid,
        template: naming.template,
        claim_prefix: naming.claim_prefix,
        ordinal: naming.ordinal,
        capacity: model::pvc_capacity(pvc),
        storage_class: model::pvc_storage_class(pvc),
        volume,
        reclaim_policy,
        consequence,
        age_seconds: model::age_secs(pvc.metadata.creation_timestamp.as_ref(), now),
        phase: model::pvc_phase(pvc).to_string(),
        uid: pvc.metadata.uid.clone(),
        resource_version: pvc.metadata.resource_version.clone(),
        held: is_held(pvc),
    }
}

/// Whether an earlier run marked the claim for deletion and still holds it.
pub fn is_held(pvc: &PersistentVolumeClaim) -> bool {
    pvc.metadata.deletion_timestamp.is_some() && has_hold(pvc)
}

pub fn has_hold(pvc: &PersistentVolumeClaim) -> bool {
    pvc.finalizers().iter().any(|f| f == HOLD)
}

/// The claim as it was before this tool marked it: a held claim is judged by the same
/// rule as an unmarked one (the mark is ours, the decision is not final yet).
pub fn unmarked(pvc: &PersistentVolumeClaim) -> PersistentVolumeClaim {
    let mut p = pvc.clone();
    if is_held(pvc) {
        p.metadata.deletion_timestamp = None;
        p.metadata.deletion_grace_period_seconds = None;
    }
    p
}

/// The finalizers with the hold added (once) or removed.
pub fn finalizers_with_hold(pvc: &PersistentVolumeClaim, hold: bool) -> Vec<String> {
    let mut f: Vec<String> = pvc
        .finalizers()
        .iter()
        .filter(|f| *f != HOLD)
        .cloned()
        .collect();
    if hold {
        f.push(HOLD.to_string());
    }
    f
}

/// (namespace, name) of the listed claims an earlier run holds: built once, so that
/// judging thousands of claims stays linear.
fn held_claims(inp: &PruneInputs) -> std::collections::HashSet<(String, String)> {
    inp.pvcs
        .iter()
        .filter(|p| is_held(p))
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect()
}

/// The listed claims with the held ones [`unmarked`]; no copy when none is held.
fn unmarked_claims<'a>(
    inp: &'a PruneInputs,
    held: &std::collections::HashSet<(String, String)>,
) -> std::borrow::Cow<'a, [PersistentVolumeClaim]> {
    if held.is_empty() {
        std::borrow::Cow::Borrowed(&inp.pvcs)
    } else {
        std::borrow::Cow::Owned(inp.pvcs.iter().map(unmarked).collect())
    }
}

/// Whether the listed original of `pvc` (an [`unmarked`] copy) is held.
fn held_in(
    held: &std::collections::HashSet<(String, String)>,
    pvc: &PersistentVolumeClaim,
) -> bool {
    !held.is_empty() && held.contains(&(pvc.namespace().unwrap_or_default(), pvc.name_any()))
}

/// Why a held claim whose ordinal is live again (or that a pod mounts) is kept.
fn held_reason(why: &str) -> String {
    format!(
        "marked for deletion by an earlier prune-pvcs, then {why}: the finalizer {HOLD} \
         keeps the claim and its volume (README: \"A prune that raced a scale-up\")"
    )
}

/// `Some(reason)` when `--older-than` excludes the PVC (an unknown age is excluded too).
fn too_young(
    pvc: &PersistentVolumeClaim,
    older_than: Option<Duration>,
    now: Timestamp,
) -> Option<String> {
    let min = older_than?;
    let age = model::age_secs(pvc.metadata.creation_timestamp.as_ref(), now);
    match age {
        Some(a) if a >= 0 && a as u64 >= min.as_secs() => None,
        Some(a) => Some(format!(
            "younger than --older-than {} (age {})",
            humantime::format_duration(min),
            model::format_age(a)
        )),
        None => Some("creation time unknown (--older-than)".into()),
    }
}

fn skip_code(v: &Verdict) -> Option<&'static str> {
    match v {
        Verdict::Orphan | Verdict::Live => None,
        Verdict::MountedBy(_) => Some("mounted"),
        Verdict::Deleting => Some("deleting"),
        Verdict::ScaledToZero => Some("scaled-to-zero"),
        Verdict::Ambiguous(_) => Some("ambiguous"),
    }
}

pub fn total(entries: &[PlanEntry]) -> Total {
    let bytes = model::total_bytes(entries.iter().filter_map(|e| e.capacity.as_deref()));
    Total {
        count: entries.len(),
        capacity: model::format_bytes(bytes),
        bytes: bytes.max(0.0).round() as u64,
    }
}

/// The plan, from listed objects; pure.
pub fn plan(inp: &PruneInputs, scope: &Scope, now: Timestamp) -> PrunePlan {
    let volumes = volume_index(inp.pvs.as_deref());
    let mut pvcs = vec![];
    let mut skipped = vec![];
    let held_set = held_claims(inp);
    let claims = unmarked_claims(inp, &held_set);
    for c in orphan::classify(&inp.statefulsets, &claims, &inp.pods, scope.options()) {
        let held = held_in(&held_set, c.pvc);
        if !scope.covers(&c) || (c.verdict == Verdict::Live && !held) {
            continue;
        }
        let young = too_young(c.pvc, scope.older_than, now);
        let skip = match (&c.verdict, skip_code(&c.verdict), young) {
            (Verdict::Live, _, _) => Some((
                "held",
                held_reason(&format!("ordinal {} became live again", c.ordinal)),
            )),
            (Verdict::MountedBy(pod), _, _) if held => {
                Some(("held", held_reason(&format!("pod \"{pod}\" mounted it"))))
            }
            (_, Some(code), _) => Some((code, c.verdict.reason())),
            // A held claim is already marked: --older-than does not undo the mark.
            (_, None, Some(_)) if held => None,
            (_, None, Some(why)) => Some(("too-young", why)),
            (_, None, None) => None,
        };
        match skip {
            Some((code, reason)) => skipped.push(Skipped {
                namespace: c.pvc.namespace().unwrap_or_default(),
                name: c.pvc.name_any(),
                statefulset: Some(c.statefulset.clone()),
                ordinal: c.ordinal,
                code,
                reason,
            }),
            None => {
                let naming = Naming {
                    statefulset: Some(c.statefulset.clone()),
                    statefulset_uid: c.statefulset_uid.clone(),
                    template: Some(c.template.clone()),
                    claim_prefix: None,
                    ordinal: c.ordinal,
                };
                let mut e = entry(c.pvc, naming, &volumes, now);
                e.held = held;
                pvcs.push(e);
            }
        }
    }
    let gone = if scope.include_deleted {
        gone_group(inp, scope, &volumes, now, &mut skipped)
    } else {
        vec![]
    };
    pvcs.sort_by(|a, b| {
        (&a.namespace, &a.statefulset, &a.template, a.ordinal).cmp(&(
            &b.namespace,
            &b.statefulset,
            &b.template,
            b.ordinal,
        ))
    });
    skipped.sort_by(|a, b| {
        (&a.namespace, &a.statefulset, a.ordinal, &a.name).cmp(&(
            &b.namespace,
            &b.statefulset,
            b.ordinal,
            &b.name,
        ))
    });
    PrunePlan {
        api_version: API_VERSION,
        kind: "PrunePlan",
        namespace: scope.namespace.clone(),
        statefulset: scope.statefulset.clone(),
        total: total(&pvcs),
        gone_total: total(&gone),
        pvcs,
        gone,
        skipped,
    }
}

fn gone_group(
    inp: &PruneInputs,
    scope: &Scope,
    volumes: &Volumes,
    now: Timestamp,
    skipped: &mut Vec<Skipped>,
) -> Vec<PlanEntry> {
    let mut gone = vec![];
    let held_set = held_claims(inp);
    let claims = unmarked_claims(inp, &held_set);
    for (pvc, prefix, ordinal) in
        orphan::gone_statefulset_claims(&inp.statefulsets, &claims, &inp.pods)
    {
        let held = held_in(&held_set, pvc);
        if !scope.covers_gone(&prefix) {
            continue;
        }
        if let Some(reason) = too_young(pvc, scope.older_than, now).filter(|_| !held) {
            skipped.push(Skipped {
                namespace: pvc.namespace().unwrap_or_default(),
                name: pvc.name_any(),
                statefulset: None,
                ordinal,
                code: "too-young",
                reason,
            });
            continue;
        }
        let naming = Naming {
            statefulset: None,
            statefulset_uid: None,
            template: None,
            claim_prefix: Some(prefix),
            ordinal,
        };
        let mut e = entry(pvc, naming, volumes, now);
        e.held = held;
        gone.push(e);
    }
    gone.sort_by(|a, b| {
        (&a.namespace, &a.claim_prefix, a.ordinal).cmp(&(&b.namespace, &b.claim_prefix, b.ordinal))
    });
    gone
}

/// The order of deletion: per namespace and StatefulSet, highest ordinal first (a
/// scale-up reclaims the lowest ordinals first), then the "StatefulSet gone" group.
pub fn deletion_order(plan: &PrunePlan, main: bool, gone: bool) -> Vec<(Group, &PlanEntry)> {
    let mut out: Vec<(Group, &PlanEntry)> = vec![];
    if main {
        let mut v: Vec<&PlanEntry> = plan.pvcs.iter().collect();
        v.sort_by(|a, b| {
            (&a.namespace, &a.statefulset)
                .cmp(&(&b.namespace, &b.statefulset))
                .then(b.ordinal.cmp(&a.ordinal))
        });
        out.extend(v.into_iter().map(|e| (Group::Orphan, e)));
    }
    if gone {
        let mut v: Vec<&PlanEntry> = plan.gone.iter().collect();
        v.sort_by(|a, b| {
            (&a.namespace, &a.claim_prefix)
                .cmp(&(&b.namespace, &b.claim_prefix))
                .then(b.ordinal.cmp(&a.ordinal))
        });
        out.extend(v.into_iter().map(|e| (Group::Gone, e)));
    }
    out
}

// ---- Re-checks before each delete (pure parts) -------------------------------------------

/// Why an orphan of the plan may no longer be deleted, judged on fresh objects; None
/// when it still is an orphan.
pub fn recheck_orphan(
    entry: &PlanEntry,
    sts: Option<&StatefulSet>,
    pvc: &PersistentVolumeClaim,
    pods: &[Pod],
    opts: OrphanRules,
) -> Option<String> {
    let sts_name = entry.statefulset.as_deref().unwrap_or_default();
    let Some(sts) = sts else {
        return Some(format!(
            "StatefulSet \"{sts_name}\" was deleted since the plan"
        ));
    };
    if entry.statefulset_uid.is_some() && sts.metadata.uid != entry.statefulset_uid {
        return Some(format!(
            "StatefulSet \"{sts_name}\" was deleted and re-created since the plan (another \
             uid): re-run to plan again"
        ));
    }
    let claims = orphan::classify(
        std::slice::from_ref(sts),
        std::slice::from_ref(pvc),
        pods,
        opts,
    );
    let verdict = claims
        .into_iter()
        .find(|c| {
            Some(c.template.as_str()) == entry.template.as_deref() && c.ordinal == entry.ordinal
        })
        .map(|c| c.verdict);
    match verdict {
        Some(Verdict::Orphan) => None,
        Some(Verdict::Live) => Some(format!(
            "StatefulSet \"{sts_name}\" scaled up to {} since the plan: ordinal {} is live again",
            model::replicas(sts),
            entry.ordinal
        )),
        Some(Verdict::MountedBy(pod)) => Some(format!("now mounted by pod \"{pod}\"")),
        Some(Verdict::ScaledToZero) => Some(format!(
            "StatefulSet \"{sts_name}\" was scaled to 0 since the plan"
        )),
        Some(other) => Some(format!("{} since the plan", other.reason())),
        None => Some(format!(
            "StatefulSet \"{sts_name}\" no longer has the volumeClaimTemplate \"{}\"",
            entry.template.as_deref().unwrap_or_default()
        )),
    }
}

/// Why a "StatefulSet gone" PVC may no longer be deleted; None when it still qualifies.
pub fn recheck_gone(
    sets: &[StatefulSet],
    pvc: &PersistentVolumeClaim,
    pods: &[Pod],
) -> Option<String> {
    if !orphan::gone_statefulset_claims(sets, std::slice::from_ref(pvc), pods).is_empty() {
        return None;
    }
    let key = (pvc.namespace().unwrap_or_default(), pvc.name_any());
    match orphan::mounts(pods).get(&key) {
        Some(pod) => Some(format!("now mounted by pod \"{pod}\"")),
        None => Some("a StatefulSet that claims it exists again".into()),
    }
}

/// The exit code for finished results: 0 all deleted (or validated), 3 anything else.
pub fn exit_code(results: &[Outcome]) -> i32 {
    if results
        .iter()
        .all(|r| matches!(r.result, Status::Deleted | Status::Validated))
    {
        exit::OK
    } else {
        exit::STOPPED
    }
}

pub fn summarize(results: &[Outcome]) -> Summary {
    let count = |s: Status| results.iter().filter(|r| r.result == s).count();
    let deleted_bytes = model::total_bytes(
        results
            .iter()
            .filter(|r| r.result == Status::Deleted)
            .filter_map(|r| r.capacity.as_deref()),
    );
    Summary {
        deleted: count(Status::Deleted),
        held: count(Status::Held),
        validated: count(Status::Validated),
        skipped: count(Status::Skipped),
        failed: count(Status::Failed),
        not_attempted: count(Status::NotAttempted),
        deleted_capacity: model::format_bytes(deleted_bytes),
    }
}

impl PruneReport {
    pub fn new(plan: PrunePlan, results: Vec<Outcome>, summary: Summary, dry_run: bool) -> Self {
        PruneReport {
            api_version: API_VERSION,
            kind: "PruneReport",
            dry_run: if dry_run { "server" } else { "none" },
            plan,
            results,
            summary,
        }
    }
}

/// The confirmation question for one group of PVCs.
pub fn question(what: &str, t: &Total, entries: &[PlanEntry]) -> String {
    let destroyed = entries
        .iter()
        .filter(|e| e.reclaim_policy.as_deref() == Some("Delete"))
        .count();
    let destroy = if destroyed > 0 {
        format!("; the data of {destroyed} is destroyed (reclaim policy Delete)")
    } else {
        String::new()
    };
    format!(
        "Delete {} {what}PVC(s), {} in total{destroy}?",
        t.count, t.capacity
    )
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
