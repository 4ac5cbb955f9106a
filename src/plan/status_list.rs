//! `status` without a name: every StatefulSet of the namespace (or, with `-A`, of every
//! namespace) on one line (kind StatusList). Each line is a summary of what `status NAME`
//! shows (`super::build`) and of what `doctor` finds (`doctor::examine`), so the list
//! never tells another story than those two.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::{Replicas, Strategy};
use crate::model;
use crate::plan::doctor::{self, DoctorInputs, Severity};
use crate::plan::lease::{self, LockInfo};

/// The documented `-o json|yaml` structure (apiVersion sts-safe/v1, kind StatusList).
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusList {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// None with `-A`.
    pub namespace: Option<String>,
    /// By namespace, then name.
    pub items: Vec<StatusLine>,
}

/// One StatefulSet's line.
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusLine {
    pub namespace: String,
    pub name: String,
    pub replicas: Replicas,
    pub update_strategy: Strategy,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    pub revision_state: RevisionState,
    /// The claims outside the live ordinal range (`status NAME`'s orphan PVCs).
    pub orphan_pvcs: Vec<OrphanRef>,
    /// Their summed capacity (`0` when there is none).
    pub orphan_capacity: String,
    pub findings: FindingCounts,
    /// The holder of the StatefulSet's lock (null when free).
    pub lock: Option<LockInfo>,
    pub age_seconds: Option<i64>,
}

/// Where the StatefulSet's revisions stand.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RevisionState {
    /// Every pod runs the update revision (RollingUpdate: currentRevision = updateRevision).
    Converged,
    /// RollingUpdate with partition 0: the controller is replacing pods.
    RolloutPending,
    /// RollingUpdate held at a partition above 0: a canary, or a staged rollout.
    Partitioned,
    /// OnDelete: pods wait for someone to delete them.
    OnDeletePending,
    /// The controller has not yet seen the latest spec (or reported no revision).
    NotObserved,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrphanRef {
    pub name: String,
    pub ordinal: i32,
    pub capacity: Option<String>,
}

/// What `doctor STS` finds, counted by severity.
#[derive(Debug, Serialize, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FindingCounts {
    pub errors: usize,
    pub warnings: usize,
    pub info: usize,
    /// The checks that found something, sorted, each once.
    pub checks: Vec<&'static str>,
}

/// The StatefulSet's pods as `status NAME` reads them: selected by its matchLabels and
/// named `<sts>-<ordinal>`.
fn pods_of(sts: &StatefulSet, pods: &[Pod]) -> Vec<Pod> {
    let name = sts.name_any();
    let selector = model::selector_labels(sts);
    pods.iter()
        .filter(|p| {
            model::ordinal_of(&name, &p.name_any()).is_some()
                && selector.iter().all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .cloned()
        .collect()
}

/// Where the revisions stand; under OnDelete the pods say it (older servers never move
/// currentRevision there, kubernetes 73492).
pub fn revision_state(sts: &StatefulSet, pods: &[Pod]) -> RevisionState {
    if !model::observed(sts) || model::update_revision(sts).is_none() {
        return RevisionState::NotObserved;
    }
    if model::strategy_type(sts) == "OnDelete" {
        return if model::pods_behind_update(sts, pods).is_empty() {
            RevisionState::Converged
        } else {
            RevisionState::OnDeletePending
        };
    }
    match (model::rollout_pending(sts), model::partition(sts)) {
        (false, _) => RevisionState::Converged,
        (true, p) if p > 0 => RevisionState::Partitioned,
        (true, _) => RevisionState::RolloutPending,
    }
}

fn counts(findings: &[doctor::Finding]) -> FindingCounts {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    let mut checks: Vec<&'static str> = findings.iter().map(|f| f.check).collect();
    checks.sort_unstable();
    checks.dedup();
    FindingCounts {
        errors: n(Severity::Error),
        warnings: n(Severity::Warn),
        info: n(Severity::Info),
        checks,
    }
}

/// One StatefulSet's line, from the objects of its namespace.
pub fn line(sts: &StatefulSet, inp: &DoctorInputs, now: Timestamp) -> StatusLine {
    let name = sts.name_any();
    let pods = pods_of(sts, &inp.pods);
    let report = super::build(sts, &pods, &inp.pvcs, now);
    let orphan_pvcs: Vec<OrphanRef> = report
        .orphan_pvcs
        .iter()
        .map(|o| OrphanRef {
            name: o.name.clone(),
            ordinal: o.ordinal,
            capacity: o.capacity.clone(),
        })
        .collect();
    let orphan_capacity = model::format_bytes(model::total_bytes(
        orphan_pvcs.iter().filter_map(|o| o.capacity.as_deref()),
    ));
    let lease_name = lease::lease_name(&name);
    StatusLine {
        namespace: report.namespace,
        replicas: report.replicas,
        update_strategy: report.update_strategy,
        current_revision: report.current_revision,
        update_revision: report.update_revision,
        revision_state: revision_state(sts, &pods),
        orphan_pvcs,
        orphan_capacity,
        findings: counts(&doctor::examine(inp, Some(&name), now)),
        lock: inp
            .leases
            .iter()
            .find(|l| l.name_any() == lease_name)
            .and_then(|l| lease::read(l, now)),
        age_seconds: model::age_secs(sts.metadata.creation_timestamp.as_ref(), now),
        name,
    }
}

/// The list: `namespace` is the one listed, None with `-A`.
pub fn build(
    by_namespace: &BTreeMap<String, DoctorInputs>,
    namespace: Option<&str>,
    now: Timestamp,
) -> StatusList {
    let mut items = vec![];
    for inp in by_namespace.values() {
        let mut sets: Vec<&StatefulSet> = inp.statefulsets.iter().collect();
        sets.sort_by_key(|s| s.name_any());
        items.extend(sets.into_iter().map(|s| line(s, inp, now)));
    }
    StatusList {
        api_version: crate::plan::API_VERSION,
        kind: "StatusList",
        namespace: namespace.map(str::to_string),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::plan::doctor::all::split_by_namespace;
    use crate::plan::doctor::all::tests::merged;

    /// Four namespaces: a scale-down's orphan, a canary half-way, a clean StatefulSet
    /// and one with a root container.
    fn cluster() -> StatusList {
        let inp = merged(&[
            ("redis-scaled-down.yaml", "a-scaled"),
            ("redis-canary-midway.yaml", "b-canary"),
            ("doctor/clean.yaml", "c-clean"),
            ("doctor/security-root-user.yaml", "d-root"),
        ]);
        build(&split_by_namespace(inp), None, fixtures::now())
    }

    fn item<'a>(l: &'a StatusList, ns: &str) -> &'a StatusLine {
        l.items.iter().find(|i| i.namespace == ns).unwrap()
    }

    #[test]
    fn one_line_per_statefulset_by_namespace() {
        let l = cluster();
        let keys: Vec<_> = l
            .items
            .iter()
            .map(|i| format!("{}/{}", i.namespace, i.name))
            .collect();
        assert_eq!(
            keys,
            [
                "a-scaled/redis",
                "b-canary/redis",
                "c-clean/redis",
                "d-root/redis"
            ]
        );
        assert_eq!(l.namespace, None);
        assert_eq!(l.kind, "StatusList");
    }

    #[test]
    fn the_scaled_down_line_counts_its_orphan_as_status_does() {
        let l = cluster();
        let a = item(&l, "a-scaled");
        assert_eq!(a.revision_state, RevisionState::Converged);
        assert_eq!((a.replicas.ready, a.replicas.desired), (2, 2));
        assert_eq!(
            a.orphan_pvcs,
            vec![OrphanRef {
                name: "redis-data-redis-2".into(),
                ordinal: 2,
                capacity: Some("10Gi".into())
            }]
        );
        assert_eq!(a.orphan_capacity, "10Gi");
        // doctor's orphan-pvcs warning is among its findings.
        assert!(a.findings.checks.contains(&"orphan-pvcs"), "{a:?}");
    }

    #[test]
    fn the_canary_line_is_partitioned() {
        let l = cluster();
        let b = item(&l, "b-canary");
        assert_eq!(b.revision_state, RevisionState::Partitioned);
        assert_eq!(b.update_strategy.partition, 2);
        assert_eq!((b.replicas.updated, b.replicas.desired), (1, 3));
        assert_eq!(b.current_revision.as_deref(), Some("redis-aaa"));
        assert_eq!(b.update_revision.as_deref(), Some("redis-bbb"));
        assert!(b.orphan_pvcs.is_empty());
        assert_eq!(b.orphan_capacity, "0");
    }

    #[test]
    fn findings_are_doctors_counted() {
        let l = cluster();
        let c = item(&l, "c-clean");
        assert_eq!(c.findings, FindingCounts::default());
        let d = item(&l, "d-root");
        let by_ns = split_by_namespace(merged(&[("doctor/security-root-user.yaml", "d-root")]));
        let found = doctor::examine(&by_ns["d-root"], Some("redis"), fixtures::now());
        assert_eq!(d.findings, counts(&found));
        assert!(d.findings.errors >= 1, "{:?}", d.findings);
        assert!(d.findings.checks.contains(&"security-root-user"));
    }

    #[test]
    fn one_namespace_names_it() {
        let inp = merged(&[("doctor/clean.yaml", "prod")]);
        let l = build(&split_by_namespace(inp), Some("prod"), fixtures::now());
        assert_eq!(l.namespace.as_deref(), Some("prod"));
        assert_eq!(l.items.len(), 1);
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["apiVersion"], "sts-safe/v1");
        assert_eq!(json["items"][0]["revisionState"], "converged");
        assert_eq!(json["items"][0]["replicas"]["ready"], 3);
        assert_eq!(json["items"][0]["findings"]["errors"], 0);
        assert!(json["items"][0]["lock"].is_null());
        assert_eq!(json["items"][0]["updateStrategy"]["type"], "RollingUpdate");
    }

    #[test]
    fn revision_states() {
        let f = fixtures::load("redis-canary-midway.yaml");
        let pods = f.pods();
        let mut sts = f.sts();
        assert_eq!(revision_state(&sts, &pods), RevisionState::Partitioned);
        sts.spec.update_strategy = serde_json::from_value(serde_json::json!(
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        ))
        .unwrap();
        assert_eq!(revision_state(&sts, &pods), RevisionState::RolloutPending);
        sts.spec.update_strategy =
            serde_json::from_value(serde_json::json!({"type": "OnDelete"})).unwrap();
        assert_eq!(revision_state(&sts, &pods), RevisionState::OnDeletePending);
        // OnDelete: the pods say it, whatever currentRevision says.
        let updated: Vec<Pod> = pods
            .iter()
            .filter(|p| model::revision(p) == Some("redis-bbb"))
            .cloned()
            .collect();
        assert_eq!(revision_state(&sts, &updated), RevisionState::Converged);
        sts.metadata.generation = Some(6);
        assert_eq!(revision_state(&sts, &pods), RevisionState::NotObserved);
        let scaled = fixtures::load("redis-scaled-down.yaml");
        assert_eq!(
            revision_state(&scaled.sts(), &scaled.pods()),
            RevisionState::Converged
        );
    }
}
