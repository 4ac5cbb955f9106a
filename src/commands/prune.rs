//! `kubectl sts-safe prune-pvcs [STS]`: find the PVCs that StatefulSet scale-down truly
//! orphaned and delete them one at a time, each re-checked right before its delete.
//!
//! Flow: list → [`plan`] (pure) → show → confirm → [`execute`] → report.
//!
//! - Listing: one paginated list (500 per page) per kind — StatefulSets, pods, PVCs (with
//!   `-l`) in the namespace, or cluster-wide with `-A` — plus PersistentVolumes once
//!   (cluster-scoped). Never a request per PVC while planning. When the identity may not
//!   list PVs, the reclaim policy shows as "unknown" instead of failing.
//! - The orphan rule is [`crate::orphan::classify`]. The plan proposes the `Orphan`
//!   verdicts; mounted, being-deleted, ambiguous, scaled-to-zero and (with
//!   `--older-than`) too-young claims are listed under `skipped` with the reason. Live
//!   ordinals are never listed at all.
//! - `--include-deleted` adds the "StatefulSet gone" group
//!   ([`crate::orphan::gone_statefulset_claims`]), confirmed by a second, separate
//!   question. `--yes` answers that question too: the group only exists because
//!   `--include-deleted` asked for it.
//! - `--dry-run` (`=client`) stops after the plan. `--dry-run=server` runs the same
//!   re-checks and sends every delete with dryRun=All, so admission validates them;
//!   nothing is deleted and nothing is asked.
//! - Deleting: highest ordinal first (a scale-up claims the lowest ordinals first). Right
//!   before each delete the PVC's StatefulSet is read again (GET) and the pods of its
//!   namespace listed again; the PVC is judged again with the same rule. Then the delete
//!   carries Preconditions { uid, resourceVersion } from the plan, so a PVC changed or
//!   recreated since the plan is never deleted (409 → skipped).
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cli::{DryRun, Output, PruneArgs};
use crate::context::Ctx;
use crate::error::{exit, Error, Request, Result};
use crate::k8s::list_all;
use crate::model;
use crate::orphan::{self, Verdict};
use crate::ui;

pub const API_VERSION: &str = "sts-safe/v1";

/// Shown for `namespace` in error messages about cluster-wide requests.
const ALL_NAMESPACES: &str = "(all namespaces)";

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
    /// mounted | deleting | scaled-to-zero | ambiguous | too-young
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
    pub validated: usize,
    pub skipped: usize,
    pub failed: usize,
    pub not_attempted: usize,
    pub deleted_capacity: String,
}

// ---- Planning (pure) -------------------------------------------------------------------

/// Everything the plan is computed from: one list per kind.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
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
    fn options(&self) -> orphan::Options {
        orphan::Options {
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
    }
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
            fmt_age(Some(a))
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
pub fn plan(inp: &Inputs, scope: &Scope, now: Timestamp) -> PrunePlan {
    let volumes = volume_index(inp.pvs.as_deref());
    let mut pvcs = vec![];
    let mut skipped = vec![];
    for c in orphan::classify(&inp.statefulsets, &inp.pvcs, &inp.pods, scope.options()) {
        if !scope.covers(&c) || c.verdict == Verdict::Live {
            continue;
        }
        let young = too_young(c.pvc, scope.older_than, now);
        let skip = match (skip_code(&c.verdict), young) {
            (Some(code), _) => Some((code, c.verdict.reason())),
            (None, Some(why)) => Some(("too-young", why)),
            (None, None) => None,
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
                    template: Some(c.template.clone()),
                    claim_prefix: None,
                    ordinal: c.ordinal,
                };
                pvcs.push(entry(c.pvc, naming, &volumes, now));
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
    inp: &Inputs,
    scope: &Scope,
    volumes: &Volumes,
    now: Timestamp,
    skipped: &mut Vec<Skipped>,
) -> Vec<PlanEntry> {
    let mut gone = vec![];
    for (pvc, prefix, ordinal) in
        orphan::gone_statefulset_claims(&inp.statefulsets, &inp.pvcs, &inp.pods)
    {
        if !scope.covers_gone(&prefix) {
            continue;
        }
        if let Some(reason) = too_young(pvc, scope.older_than, now) {
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
            template: None,
            claim_prefix: Some(prefix),
            ordinal,
        };
        gone.push(entry(pvc, naming, volumes, now));
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
    opts: orphan::Options,
) -> Option<String> {
    let sts_name = entry.statefulset.as_deref().unwrap_or_default();
    let Some(sts) = sts else {
        return Some(format!(
            "StatefulSet \"{sts_name}\" was deleted since the plan"
        ));
    };
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
        validated: count(Status::Validated),
        skipped: count(Status::Skipped),
        failed: count(Status::Failed),
        not_attempted: count(Status::NotAttempted),
        deleted_capacity: model::format_bytes(deleted_bytes),
    }
}

// ---- Text rendering ---------------------------------------------------------------------

fn fmt_age(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{}s", s.max(0)),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

fn where_text(p: &PrunePlan) -> String {
    match (&p.namespace, &p.statefulset) {
        (None, _) => "in all namespaces".into(),
        (Some(ns), Some(s)) => format!("of StatefulSet {ns}/{s}"),
        (Some(ns), None) => format!("in namespace \"{ns}\""),
    }
}

fn styled_consequence(e: &PlanEntry) -> String {
    match e.reclaim_policy.as_deref() {
        Some("Delete") => ui::red(&e.consequence).to_string(),
        Some("Retain") => ui::yellow(&e.consequence).to_string(),
        _ => e.consequence.clone(),
    }
}

fn entries_table(entries: &[PlanEntry], all_namespaces: bool, gone: bool) -> String {
    let second = if gone { "CLAIM PREFIX" } else { "STATEFULSET" };
    let mut header = vec![
        "PVC",
        second,
        "ORDINAL",
        "CAPACITY",
        "STORAGECLASS",
        "VOLUME",
        "RECLAIM POLICY",
        "AGE",
        "PHASE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let owner = if gone {
                dash(&e.claim_prefix)
            } else {
                dash(&e.statefulset)
            };
            let mut row = vec![
                e.name.clone(),
                owner,
                e.ordinal.to_string(),
                dash(&e.capacity),
                dash(&e.storage_class),
                dash(&e.volume),
                styled_consequence(e),
                fmt_age(e.age_seconds),
                e.phase.clone(),
            ];
            if all_namespaces {
                row.insert(0, e.namespace.clone());
            }
            row
        })
        .collect();
    ui::table(&header, &rows)
}

fn skipped_text(p: &PrunePlan) -> String {
    let all = p.namespace.is_none();
    let qualified = |ns: &str, name: &str| {
        if all {
            format!("{ns}/{name}")
        } else {
            name.to_string()
        }
    };
    let mut out = String::new();
    // One line per StatefulSet scaled to 0.
    let mut zero: Vec<(String, String, usize)> = vec![];
    for s in p.skipped.iter().filter(|s| s.code == "scaled-to-zero") {
        let sts = s.statefulset.clone().unwrap_or_default();
        match zero.iter_mut().find(|z| z.0 == s.namespace && z.1 == sts) {
            Some(z) => z.2 += 1,
            None => zero.push((s.namespace.clone(), sts, 1)),
        }
    }
    for (ns, sts, n) in &zero {
        out.push_str(&format!(
            "StatefulSet {} is scaled to 0: skipped, its {n} PVC(s) are kept (use --include-scaled-to-zero)\n",
            qualified(ns, sts)
        ));
    }
    let others: Vec<&Skipped> = p
        .skipped
        .iter()
        .filter(|s| s.code != "scaled-to-zero")
        .collect();
    if !others.is_empty() {
        out.push_str("Kept:\n");
        for s in others {
            let owner = match &s.statefulset {
                Some(sts) => format!("StatefulSet {sts}, ordinal {}", s.ordinal),
                None => format!("StatefulSet gone, ordinal {}", s.ordinal),
            };
            out.push_str(&format!(
                "  {} ({owner}): {}\n",
                qualified(&s.namespace, &s.name),
                s.reason
            ));
        }
    }
    out
}

/// The plan as text: the table, the totals, the "StatefulSet gone" group, what is kept.
pub fn render_plan(p: &PrunePlan) -> String {
    let all = p.namespace.is_none();
    let mut out = String::new();
    if p.pvcs.is_empty() {
        out.push_str(&format!(
            "No PVC orphaned by scale-down {}.\n",
            where_text(p)
        ));
    } else {
        out.push_str(&format!("PVCs orphaned by scale-down {}:\n", where_text(p)));
        out.push_str(&entries_table(&p.pvcs, all, false));
        out.push_str(&format!(
            "Total: {} PVC(s), {}\n",
            p.total.count, p.total.capacity
        ));
    }
    if !p.gone.is_empty() {
        out.push_str(&format!(
            "\nStatefulSet gone: PVCs of StatefulSets that no longer exist {} (deleted only if this group is confirmed):\n",
            where_text(p).replace("of StatefulSet", "named after")
        ));
        out.push_str(&entries_table(&p.gone, all, true));
        out.push_str(&format!(
            "Total: {} PVC(s), {}\n",
            p.gone_total.count, p.gone_total.capacity
        ));
    }
    let kept = skipped_text(p);
    if !kept.is_empty() {
        out.push('\n');
        out.push_str(&kept);
    }
    out
}

fn result_line(o: &Outcome, all_namespaces: bool) -> String {
    let name = if all_namespaces {
        format!("{}/{}", o.namespace, o.name)
    } else {
        o.name.clone()
    };
    let reason = o
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match o.result {
        Status::Deleted => format!("{} {name}", ui::green("deleted")),
        Status::Validated => format!("validated {name} (server dry-run, nothing deleted)"),
        Status::Skipped => format!("{} {name}{reason}", ui::yellow("skipped")),
        Status::Failed => format!("{} {name}{reason}", ui::red("failed")),
        Status::NotAttempted => format!("not deleted {name}{reason}"),
    }
}

pub fn render_summary(s: &Summary) -> String {
    let mut parts = vec![];
    if s.validated > 0 {
        parts.push(format!(
            "{} validated by the server (nothing deleted)",
            s.validated
        ));
    } else {
        parts.push(format!(
            "Deleted {} PVC(s) ({})",
            s.deleted, s.deleted_capacity
        ));
    }
    if s.skipped > 0 {
        parts.push(format!("{} skipped", s.skipped));
    }
    if s.not_attempted > 0 {
        parts.push(format!("{} not deleted", s.not_attempted));
    }
    if s.failed > 0 {
        parts.push(format!("{} failed", s.failed));
    }
    format!("{}.\n", parts.join(", "))
}

fn question(what: &str, t: &Total, entries: &[PlanEntry]) -> String {
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

// ---- I/O -------------------------------------------------------------------------------

fn map_err(
    ctx: &Ctx,
    verb: &str,
    resource: &str,
    name: Option<&str>,
    namespace: &str,
    e: kube::Error,
) -> Error {
    ctx.target.map(
        Request {
            verb,
            resource,
            name,
            namespace,
        },
        e,
    )
}

fn scoped_api<K>(ctx: &Ctx, all: bool) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    if all {
        Api::all(ctx.client.clone())
    } else {
        ctx.api::<K>()
    }
}

/// One paginated list of `K` in the namespace, or cluster-wide.
async fn list_scoped<K>(ctx: &Ctx, all: bool, resource: &str, lp: &ListParams) -> Result<Vec<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let ns = if all {
        ALL_NAMESPACES
    } else {
        ctx.namespace.as_str()
    };
    list_all(&scoped_api::<K>(ctx, all), lp)
        .await
        .map_err(|e| map_err(ctx, "list", resource, None, ns, e))
}

/// PersistentVolumes, or None when this identity may not list them.
async fn list_pvs(ctx: &Ctx) -> Result<Option<Vec<PersistentVolume>>> {
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match list_all(&api, &ListParams::default()).await {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(map_err(
            ctx,
            "list",
            "persistentvolumes",
            None,
            ALL_NAMESPACES,
            e,
        )),
    }
}

async fn collect(ctx: &Ctx, args: &PruneArgs) -> Result<Inputs> {
    let all = args.all_namespaces;
    let every = ListParams::default();
    let pvc_params = match &args.selector {
        Some(s) => ListParams::default().labels(s),
        None => ListParams::default(),
    };
    let (statefulsets, pods, pvcs, pvs) = futures::try_join!(
        list_scoped::<StatefulSet>(ctx, all, "statefulsets", &every),
        list_scoped::<Pod>(ctx, all, "pods", &every),
        list_scoped::<PersistentVolumeClaim>(ctx, all, "persistentvolumeclaims", &pvc_params),
        list_pvs(ctx),
    )?;
    Ok(Inputs {
        statefulsets,
        pods,
        pvcs,
        pvs,
    })
}

async fn scope(ctx: &Ctx, args: &PruneArgs) -> Result<Scope> {
    if args.all_namespaces && args.name.is_some() {
        return Err(Error::usage(
            "a StatefulSet name cannot be combined with -A/--all-namespaces: give -n NAMESPACE instead",
        ));
    }
    let statefulset_exists = match &args.name {
        None => true,
        Some(n) => match ctx.get_statefulset(n).await {
            Ok(_) => true,
            Err(Error::NotFound { .. }) if args.include_deleted => false,
            Err(e) => return Err(e),
        },
    };
    Ok(Scope {
        namespace: (!args.all_namespaces).then(|| ctx.namespace.clone()),
        statefulset: args.name.clone(),
        statefulset_exists,
        include_deleted: args.include_deleted,
        include_scaled_to_zero: args.include_scaled_to_zero,
        older_than: args.older_than,
    })
}

/// Asks one yes/no question: Ok(false) when the operator answers no; the refusal
/// without a terminal (and without --yes) is an error, before anything is written.
fn ask(ctx: &Ctx, yes: bool, q: &str) -> Result<bool> {
    match ui::confirm(ctx, yes, q) {
        Ok(()) => Ok(true),
        Err(Error::Declined(_)) if ctx.interactive => Ok(false),
        Err(e) => Err(e),
    }
}

/// Per-PVC re-check: re-reads the StatefulSet (GET) or, for the gone group, the
/// namespace's StatefulSets, and the namespace's pods.
async fn recheck(
    ctx: &Ctx,
    group: Group,
    e: &PlanEntry,
    pvc: &PersistentVolumeClaim,
    opts: orphan::Options,
) -> Result<Option<String>> {
    let ns = e.namespace.as_str();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pods = list_all(&pods_api, &ListParams::default())
        .await
        .map_err(|err| map_err(ctx, "list", "pods", None, ns, err))?;
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    match group {
        Group::Orphan => {
            let name = e.statefulset.as_deref().unwrap_or_default();
            let sts = sts_api
                .get_opt(name)
                .await
                .map_err(|err| map_err(ctx, "get", "statefulsets", Some(name), ns, err))?;
            Ok(recheck_orphan(e, sts.as_ref(), pvc, &pods, opts))
        }
        Group::Gone => {
            let sets = list_all(&sts_api, &ListParams::default())
                .await
                .map_err(|err| map_err(ctx, "list", "statefulsets", None, ns, err))?;
            Ok(recheck_gone(&sets, pvc, &pods))
        }
    }
}

/// Deletes (or, with `dry_run`, validates) one PVC under the plan's preconditions.
/// Ok((Skipped, reason)) for a failed precondition or a PVC already gone.
async fn delete(ctx: &Ctx, e: &PlanEntry, dry_run: bool) -> Result<(Status, Option<String>)> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &e.namespace);
    let dp = DeleteParams {
        dry_run,
        preconditions: Some(Preconditions {
            uid: e.uid.clone(),
            resource_version: e.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&e.name, &dp).await {
        Ok(_) if dry_run => Ok((Status::Validated, None)),
        Ok(_) => Ok((Status::Deleted, None)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok((
            Status::Skipped,
            Some(
                "changed or recreated since the plan (uid/resourceVersion precondition failed)"
                    .into(),
            ),
        )),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            Ok((Status::Skipped, Some("already gone".into())))
        }
        Err(err) => Err(map_err(
            ctx,
            "delete",
            "persistentvolumeclaims",
            Some(&e.name),
            &e.namespace,
            err,
        )),
    }
}

async fn prune_one(
    ctx: &Ctx,
    group: Group,
    e: &PlanEntry,
    pvc: &PersistentVolumeClaim,
    opts: orphan::Options,
    dry_run: bool,
) -> Result<(Status, Option<String>)> {
    if let Some(why) = recheck(ctx, group, e, pvc, opts).await? {
        return Ok((Status::Skipped, Some(why)));
    }
    delete(ctx, e, dry_run).await
}

/// Sets the returned flag on Ctrl-C; a second Ctrl-C exits at once.
fn watch_interrupt() -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let handle = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            f.store(true, Ordering::SeqCst);
            ui::note(
                "Ctrl-C: stopping after the current PVC (press Ctrl-C again to abort at once)",
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
    (flag, handle)
}

struct Run {
    outcomes: Vec<Outcome>,
    error: Option<Error>,
    interrupted: bool,
    all_namespaces: bool,
    text: bool,
}

impl Run {
    fn record(&mut self, group: Group, e: &PlanEntry, result: Status, reason: Option<String>) {
        let o = Outcome {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
            group,
            result,
            reason,
            capacity: e.capacity.clone(),
        };
        if self.text {
            let _ = ui::print_stdout(&(result_line(&o, self.all_namespaces) + "\n"));
        }
        self.outcomes.push(o);
    }

    /// Why the next PVC must not be attempted: an earlier error, or Ctrl-C.
    fn stop_reason(&mut self, interrupt: &AtomicBool) -> Option<&'static str> {
        if self.error.is_some() {
            return Some("not attempted after an error");
        }
        if interrupt.load(Ordering::SeqCst) {
            self.interrupted = true;
            return Some("not attempted: interrupted");
        }
        None
    }
}

/// Deletes the confirmed groups one PVC at a time; never returns early so that the
/// report always covers every planned PVC.
async fn execute(
    ctx: &Ctx,
    inp: &Inputs,
    plan: &PrunePlan,
    scope: &Scope,
    groups: (bool, bool),
    dry_run: bool,
) -> Run {
    let pvcs: HashMap<(String, String), &PersistentVolumeClaim> = inp
        .pvcs
        .iter()
        .map(|p| ((p.namespace().unwrap_or_default(), p.name_any()), p))
        .collect();
    let mut run = Run {
        outcomes: vec![],
        error: None,
        interrupted: false,
        all_namespaces: plan.namespace.is_none(),
        text: ctx.output == Output::Text,
    };
    let (interrupt, handle) = watch_interrupt();
    for (group, e) in deletion_order(plan, true, true) {
        let confirmed = match group {
            Group::Orphan => groups.0,
            Group::Gone => groups.1,
        };
        if !confirmed {
            run.record(group, e, Status::NotAttempted, Some("not confirmed".into()));
            continue;
        }
        if let Some(why) = run.stop_reason(&interrupt) {
            run.record(group, e, Status::NotAttempted, Some(why.into()));
            continue;
        }
        let Some(pvc) = pvcs.get(&(e.namespace.clone(), e.name.clone())) else {
            run.record(
                group,
                e,
                Status::Skipped,
                Some("not in the listed PVCs".into()),
            );
            continue;
        };
        match prune_one(ctx, group, e, pvc, scope.options(), dry_run).await {
            Ok((status, reason)) => run.record(group, e, status, reason),
            Err(err) => {
                run.record(group, e, Status::Failed, Some(err.to_string()));
                run.error = Some(err);
            }
        }
    }
    handle.abort();
    run
}

fn show_plan(ctx: &Ctx, plan: &PrunePlan) -> Result<()> {
    match ctx.output {
        Output::Text => ui::print_stdout(&render_plan(plan)),
        o => ui::emit(o, plan),
    }
}

fn check_selector(args: &PruneArgs) -> Result<()> {
    match args.selector.as_deref() {
        Some(s) if s.trim().is_empty() => Err(Error::usage("-l/--selector is empty")),
        _ => Ok(()),
    }
}

/// Confirms each non-empty group; Ok((main, gone)).
fn confirm_groups(ctx: &Ctx, yes: bool, plan: &PrunePlan) -> Result<(bool, bool)> {
    let main = !plan.pvcs.is_empty() && ask(ctx, yes, &question("", &plan.total, &plan.pvcs))?;
    let gone = !plan.gone.is_empty()
        && ask(
            ctx,
            yes,
            &question("\"StatefulSet gone\" ", &plan.gone_total, &plan.gone),
        )?;
    if !main && !gone {
        return Err(Error::Declined("not confirmed; nothing was changed".into()));
    }
    Ok((main, gone))
}

fn finish(ctx: &Ctx, plan: PrunePlan, run: Run, dry_run: bool) -> Result<i32> {
    let summary = summarize(&run.outcomes);
    let code = exit_code(&run.outcomes);
    let report = PruneReport {
        api_version: API_VERSION,
        kind: "PruneReport",
        dry_run: if dry_run { "server" } else { "none" },
        plan,
        results: run.outcomes,
        summary,
    };
    match ctx.output {
        Output::Text => ui::print_stdout(&render_summary(&report.summary))?,
        o => ui::emit(o, &report)?,
    }
    if let Some(e) = run.error {
        return Err(e);
    }
    if run.interrupted {
        return Err(Error::Interrupted(format!(
            "stopped by Ctrl-C after deleting {} PVC(s); the others were not touched",
            report.summary.deleted
        )));
    }
    if code != exit::OK {
        ui::note("some planned PVCs were not deleted (reasons above); re-run to see the new state");
    }
    Ok(code)
}

pub async fn run(ctx: &Ctx, args: &PruneArgs) -> Result<i32> {
    check_selector(args)?;
    let scope = scope(ctx, args).await?;
    let inputs = collect(ctx, args).await?;
    if scope.namespace.is_some()
        && inputs.statefulsets.is_empty()
        && inputs.pvcs.is_empty()
        && !ctx.namespace_exists().await
    {
        return Err(Error::NamespaceNotFound {
            namespace: ctx.namespace.clone(),
            context: ctx.target.context.clone(),
        });
    }
    let plan = plan(&inputs, &scope, Timestamp::now());
    let dry = args.mutate.dry_run;
    let nothing = plan.pvcs.is_empty() && plan.gone.is_empty();
    if dry == DryRun::Client || (nothing && ctx.output == Output::Text) {
        show_plan(ctx, &plan)?;
        return Ok(exit::OK);
    }
    if ctx.output == Output::Text {
        ui::print_stdout(&render_plan(&plan))?;
    }
    let groups = if dry == DryRun::Server || nothing {
        (true, true)
    } else {
        if ctx.output != Output::Text && ctx.interactive && !args.mutate.yes {
            ui::note(render_plan(&plan));
        }
        confirm_groups(ctx, args.mutate.yes, &plan)?
    };
    let run = execute(ctx, &inputs, &plan, &scope, groups, dry == DryRun::Server).await;
    finish(ctx, plan, run, dry == DryRun::Server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn inputs(ns: Option<&str>) -> Inputs {
        let f = fixtures::load("prune/mixed.yaml");
        let keep = |o: &Option<String>| ns.is_none() || o.as_deref() == ns;
        Inputs {
            statefulsets: f
                .statefulsets()
                .into_iter()
                .filter(|s| keep(&s.metadata.namespace))
                .collect(),
            pods: f
                .pods()
                .into_iter()
                .filter(|s| keep(&s.metadata.namespace))
                .collect(),
            pvcs: f
                .pvcs()
                .into_iter()
                .filter(|s| keep(&s.metadata.namespace))
                .collect(),
            pvs: Some(f.all("PersistentVolume")),
        }
    }

    fn shop() -> Scope {
        Scope {
            namespace: Some("shop".into()),
            statefulset_exists: true,
            ..Scope::default()
        }
    }

    fn names(entries: &[PlanEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn skipped<'a>(p: &'a PrunePlan, code: &str) -> Vec<&'a str> {
        p.skipped
            .iter()
            .filter(|s| s.code == code)
            .map(|s| s.name.as_str())
            .collect()
    }

    #[test]
    fn proposes_exactly_the_scaled_down_ordinals_without_cross_attribution() {
        let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
        assert_eq!(
            names(&p.pvcs),
            [
                "vol2-db3-10",
                "redis-data-redis-2",
                "redis-data-redis-3",
                "redis-data-redis-4",
                "data-web-3",
                "data-web-web-2",
                "data-web-1-4"
            ]
        );
        let owner: Vec<_> = p
            .pvcs
            .iter()
            .map(|e| {
                (
                    e.statefulset.as_deref().unwrap(),
                    e.template.as_deref().unwrap(),
                    e.ordinal,
                )
            })
            .collect();
        assert!(owner.contains(&("web", "data", 3)));
        assert!(owner.contains(&("web", "data-web", 2)));
        assert!(owner.contains(&("web-1", "data", 4)));
        assert!(owner.contains(&("db3", "vol2", 10)));
        assert!(p.gone.is_empty(), "the gone group needs --include-deleted");
        assert_eq!(p.total.count, 7);
        // 10+20+10 (redis) + 3×1 (web) + 5 (db3)
        assert_eq!(p.total.capacity, "48Gi");
        assert_eq!(p.total.bytes, 48 * 1024u64.pow(3));
    }

    #[test]
    fn reclaim_policy_is_spelled_out() {
        let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
        let by_name = |n: &str| p.pvcs.iter().find(|e| e.name == n).unwrap();
        let r2 = by_name("redis-data-redis-2");
        assert_eq!(r2.reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(r2.consequence, "Delete: the data is destroyed");
        assert_eq!(r2.volume.as_deref(), Some("pv-r2"));
        assert_eq!(r2.storage_class.as_deref(), Some("sim-standard"));
        assert_eq!(r2.phase, "Bound");
        assert_eq!(
            (r2.uid.as_deref(), r2.resource_version.as_deref()),
            (Some("u-r2"), Some("102"))
        );
        assert_eq!(r2.age_seconds, Some(19 * 86400 + 12 * 3600));
        let r3 = by_name("redis-data-redis-3");
        assert_eq!(
            r3.consequence,
            "Retain: the PV stays Released and must be cleaned up by hand"
        );
        let r4 = by_name("redis-data-redis-4");
        assert_eq!(
            (r4.reclaim_policy.as_deref(), r4.phase.as_str()),
            (None, "Pending")
        );
        assert!(r4.consequence.contains("no PV bound"));

        let mut forbidden = inputs(Some("shop"));
        forbidden.pvs = None;
        let p = plan(&forbidden, &shop(), fixtures::now());
        let r2 = p
            .pvcs
            .iter()
            .find(|e| e.name == "redis-data-redis-2")
            .unwrap();
        assert_eq!(r2.reclaim_policy.as_deref(), Some("unknown"));
        assert!(r2.consequence.starts_with("unknown"));
    }

    #[test]
    fn mounted_scaled_to_zero_and_live_claims_are_not_proposed() {
        let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
        assert_eq!(skipped(&p, "mounted"), ["redis-data-redis-5"]);
        let mounted = p.skipped.iter().find(|s| s.code == "mounted").unwrap();
        assert_eq!(mounted.reason, "mounted by pod \"debug\"");
        assert_eq!(
            skipped(&p, "scaled-to-zero"),
            ["data-idle-0", "data-idle-1"]
        );
        let all: Vec<&str> = names(&p.pvcs)
            .into_iter()
            .chain(p.skipped.iter().map(|s| s.name.as_str()))
            .collect();
        for live in [
            "redis-data-redis-0",
            "redis-data-redis-1",
            "data-web-0",
            "data-web-web-0",
            "data-web-1-0",
            "vol2-db3-0",
            "scratch",
        ] {
            assert!(!all.contains(&live), "{live} must not appear");
        }
        let with_zero = Scope {
            include_scaled_to_zero: true,
            ..shop()
        };
        let p = plan(&inputs(Some("shop")), &with_zero, fixtures::now());
        assert!(names(&p.pvcs).contains(&"data-idle-0") && names(&p.pvcs).contains(&"data-idle-1"));
        assert!(skipped(&p, "scaled-to-zero").is_empty());
    }

    #[test]
    fn a_named_statefulset_restricts_the_plan() {
        let scope = Scope {
            statefulset: Some("web".into()),
            ..shop()
        };
        let p = plan(&inputs(Some("shop")), &scope, fixtures::now());
        assert_eq!(names(&p.pvcs), ["data-web-3", "data-web-web-2"]);
        assert!(p.skipped.is_empty());
        let idle = Scope {
            statefulset: Some("idle".into()),
            ..shop()
        };
        let p = plan(&inputs(Some("shop")), &idle, fixtures::now());
        assert!(p.pvcs.is_empty());
        assert!(render_plan(&p)
            .contains("StatefulSet idle is scaled to 0: skipped, its 2 PVC(s) are kept"));
    }

    #[test]
    fn statefulset_gone_group_only_with_include_deleted() {
        let scope = Scope {
            include_deleted: true,
            ..shop()
        };
        let p = plan(&inputs(Some("shop")), &scope, fixtures::now());
        assert_eq!(names(&p.gone), ["pg-data-pg-0", "pg-data-pg-1"]);
        assert_eq!(p.gone[0].claim_prefix.as_deref(), Some("pg-data-pg"));
        assert_eq!(p.gone[0].statefulset, None);
        assert_eq!(p.gone_total.capacity, "16Gi");
        assert!(!names(&p.pvcs).contains(&"pg-data-pg-0"));
        // Named after the gone StatefulSet: only its claims.
        let named = Scope {
            statefulset: Some("pg".into()),
            statefulset_exists: false,
            ..scope.clone()
        };
        let p = plan(&inputs(Some("shop")), &named, fixtures::now());
        assert!(p.pvcs.is_empty());
        assert_eq!(names(&p.gone), ["pg-data-pg-0", "pg-data-pg-1"]);
        let other = Scope {
            statefulset: Some("mysql".into()),
            statefulset_exists: false,
            ..scope
        };
        assert!(plan(&inputs(Some("shop")), &other, fixtures::now())
            .gone
            .is_empty());
    }

    #[test]
    fn older_than_keeps_young_pvcs() {
        let scope = Scope {
            older_than: Some(Duration::from_secs(7 * 86400)),
            ..shop()
        };
        let p = plan(&inputs(Some("shop")), &scope, fixtures::now());
        assert!(!names(&p.pvcs).contains(&"data-web-1-4"));
        assert_eq!(skipped(&p, "too-young"), ["data-web-1-4"]);
        let s = p.skipped.iter().find(|s| s.code == "too-young").unwrap();
        assert_eq!(s.reason, "younger than --older-than 7days (age 60m)");
    }

    #[test]
    fn all_namespaces_judges_mounts_per_namespace() {
        let scope = Scope {
            namespace: None,
            statefulset_exists: true,
            ..Scope::default()
        };
        let p = plan(&inputs(None), &scope, fixtures::now());
        let other: Vec<_> = p
            .pvcs
            .iter()
            .filter(|e| e.namespace == "other")
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(other, ["redis-data-redis-1"]);
        // "reader" in namespace other mounts a claim named redis-data-redis-2: not shop's.
        assert!(p
            .pvcs
            .iter()
            .any(|e| e.namespace == "shop" && e.name == "redis-data-redis-2"));
        let text = render_plan(&p);
        assert!(text.contains("in all namespaces"), "{text}");
        assert!(
            text.lines().nth(1).unwrap().starts_with("NAMESPACE  PVC"),
            "{text}"
        );
        assert!(
            text.contains("shop/data-idle-0")
                || text.contains("StatefulSet shop/idle is scaled to 0"),
            "{text}"
        );
    }

    #[test]
    fn text_plan_has_the_table_and_totals() {
        console::set_colors_enabled(false);
        let scope = Scope {
            include_deleted: true,
            ..shop()
        };
        let text = render_plan(&plan(&inputs(Some("shop")), &scope, fixtures::now()));
        let header = text.lines().nth(1).unwrap();
        assert!(header.starts_with("PVC "), "{text}");
        for col in [
            "STATEFULSET",
            "ORDINAL",
            "CAPACITY",
            "STORAGECLASS",
            "VOLUME",
            "RECLAIM POLICY",
            "AGE",
            "PHASE",
        ] {
            assert!(header.contains(col), "{col} in {header}");
        }
        assert!(
            text.contains("PVCs orphaned by scale-down in namespace \"shop\":"),
            "{text}"
        );
        assert!(text.contains("Total: 7 PVC(s), 48Gi"), "{text}");
        assert!(text.contains("Delete: the data is destroyed"), "{text}");
        assert!(text.contains("StatefulSet gone:"), "{text}");
        assert!(text.contains("Total: 2 PVC(s), 16Gi"), "{text}");
        assert!(
            text.contains(
                "redis-data-redis-5 (StatefulSet redis, ordinal 5): mounted by pod \"debug\""
            ),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.starts_with("redis-data-redis-2 "))
            .unwrap();
        for cell in [
            "redis",
            "2",
            "10Gi",
            "sim-standard",
            "pv-r2",
            "19d",
            "Bound",
        ] {
            assert!(row.split_whitespace().any(|c| c == cell), "{cell} in {row}");
        }
    }

    #[test]
    fn json_plan_shape() {
        let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["apiVersion"], "sts-safe/v1");
        assert_eq!(v["kind"], "PrunePlan");
        assert_eq!(v["namespace"], "shop");
        let e = &v["pvcs"][1];
        for key in [
            "name",
            "statefulset",
            "template",
            "ordinal",
            "capacity",
            "storageClass",
            "volume",
            "reclaimPolicy",
            "consequence",
            "ageSeconds",
            "phase",
            "uid",
            "resourceVersion",
        ] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
        assert!(e.get("claimPrefix").is_none());
        assert_eq!(v["total"]["count"], 7);
        assert_eq!(v["skipped"][0]["code"], "scaled-to-zero");
    }

    #[test]
    fn deletion_goes_from_the_highest_ordinal_down() {
        let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
        let order: Vec<_> = deletion_order(&p, true, false)
            .into_iter()
            .filter(|(_, e)| e.statefulset.as_deref() == Some("redis"))
            .map(|(_, e)| e.ordinal)
            .collect();
        assert_eq!(order, [4, 3, 2]);
    }

    fn redis_sts(replicas: i32) -> StatefulSet {
        let mut s = inputs(Some("shop")).statefulsets.remove(0);
        s.spec.replicas = Some(replicas);
        s
    }

    #[test]
    fn recheck_catches_scale_up_new_mounts_and_deletion() {
        let inp = inputs(Some("shop"));
        let p = plan(&inp, &shop(), fixtures::now());
        let e = p
            .pvcs
            .iter()
            .find(|e| e.name == "redis-data-redis-2")
            .unwrap();
        let pvc = inp.pvcs.iter().find(|x| x.name_any() == e.name).unwrap();
        let opts = orphan::Options::default();
        assert_eq!(
            recheck_orphan(e, Some(&redis_sts(2)), pvc, &inp.pods, opts),
            None
        );
        assert_eq!(
            recheck_orphan(e, Some(&redis_sts(3)), pvc, &inp.pods, opts).unwrap(),
            "StatefulSet \"redis\" scaled up to 3 since the plan: ordinal 2 is live again"
        );
        assert_eq!(
            recheck_orphan(e, Some(&redis_sts(0)), pvc, &inp.pods, opts).unwrap(),
            "StatefulSet \"redis\" was scaled to 0 since the plan"
        );
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "restore", "namespace": "shop"},
            "spec": {"containers": [], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "redis-data-redis-2"}}]}
        }))
        .unwrap();
        assert_eq!(
            recheck_orphan(
                e,
                Some(&redis_sts(2)),
                pvc,
                std::slice::from_ref(&pod),
                opts
            )
            .unwrap(),
            "now mounted by pod \"restore\""
        );
        assert_eq!(
            recheck_orphan(e, None, pvc, &inp.pods, opts).unwrap(),
            "StatefulSet \"redis\" was deleted since the plan"
        );
        let gone = inp
            .pvcs
            .iter()
            .find(|x| x.name_any() == "pg-data-pg-0")
            .unwrap();
        assert_eq!(recheck_gone(&inp.statefulsets, gone, &[]), None);
        let mut pg_pod = pod;
        pg_pod.spec.as_mut().unwrap().volumes.as_mut().unwrap()[0]
            .persistent_volume_claim
            .as_mut()
            .unwrap()
            .claim_name = "pg-data-pg-0".into();
        assert_eq!(
            recheck_gone(&inp.statefulsets, gone, &[pg_pod]).unwrap(),
            "now mounted by pod \"restore\""
        );
    }

    fn outcome(result: Status) -> Outcome {
        Outcome {
            namespace: "ns".into(),
            name: "x".into(),
            group: Group::Orphan,
            result,
            reason: None,
            capacity: Some("10Gi".into()),
        }
    }

    #[test]
    fn exit_code_is_3_when_anything_planned_was_not_deleted() {
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(
            exit_code(&[outcome(Status::Deleted), outcome(Status::Deleted)]),
            0
        );
        assert_eq!(exit_code(&[outcome(Status::Validated)]), 0);
        assert_eq!(
            exit_code(&[outcome(Status::Deleted), outcome(Status::Skipped)]),
            3
        );
        assert_eq!(exit_code(&[outcome(Status::NotAttempted)]), 3);
        let s = summarize(&[
            outcome(Status::Deleted),
            outcome(Status::Deleted),
            outcome(Status::Skipped),
        ]);
        assert_eq!(
            (s.deleted, s.skipped, s.deleted_capacity.as_str()),
            (2, 1, "20Gi")
        );
        assert_eq!(render_summary(&s), "Deleted 2 PVC(s) (20Gi), 1 skipped.\n");
    }

    #[test]
    fn the_question_names_count_size_and_destroyed_data() {
        let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
        let q = question("", &p.total, &p.pvcs);
        assert_eq!(
            q,
            "Delete 7 PVC(s), 48Gi in total; the data of 1 is destroyed (reclaim policy Delete)?"
        );
    }
}
