//! `status`'s document: what state a StatefulSet is in, built from listed objects.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::orphan;
use crate::model;

/// The documented `-o json|yaml` structure (apiVersion sts-safe/v1, kind StatusReport).
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    pub replicas: Replicas,
    pub update_strategy: Strategy,
    pub pod_management_policy: String,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    pub rollout_pending: bool,
    pub generation: i64,
    pub observed_generation: Option<i64>,
    pub min_ready_seconds: i32,
    pub ordinal_start: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc_retention_policy: Option<Retention>,
    pub ordinals: Vec<OrdinalRow>,
    pub orphan_pvcs: Vec<OrphanPvc>,
    /// The operation in progress: the holder of the StatefulSet's lock (null when free).
    pub lock: Option<crate::plan::lease::LockInfo>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Replicas {
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: Option<i32>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    #[serde(rename = "type")]
    pub type_: String,
    pub partition: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub when_scaled: String,
    pub when_deleted: String,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrdinalRow {
    pub ordinal: i32,
    pub pod: String,
    /// Missing | Pending | Running | Terminating | Succeeded | Failed | Unknown
    pub phase: String,
    pub ready: bool,
    /// current | update | other | unknown (absent pod: null)
    pub revision: Option<String>,
    pub revision_hash: Option<String>,
    pub images: Vec<String>,
    pub restarts: i32,
    pub age_seconds: Option<i64>,
    pub node: Option<String>,
    pub pvcs: Vec<PvcRef>,
    /// Set when the pod is stranded on a lost node (`recover` brings it back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stranded: Option<String>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PvcRef {
    pub name: String,
    /// Missing when the PVC does not exist yet.
    pub phase: String,
    pub capacity: Option<String>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrphanPvc {
    pub name: String,
    pub template: String,
    pub ordinal: i32,
    pub phase: String,
    pub capacity: Option<String>,
    pub age_seconds: Option<i64>,
    /// Set when a pod still mounts it (then prune-pvcs will not delete it).
    pub mounted_by: Option<String>,
}

/// Builds the report from listed objects; pure.
pub fn build(
    sts: &StatefulSet,
    pods: &[Pod],
    pvcs: &[PersistentVolumeClaim],
    now: Timestamp,
) -> StatusReport {
    let name = sts.name_any();
    let status = sts.status.clone().unwrap_or_default();
    let current = status.current_revision.clone();
    let update = status.update_revision.clone();
    let by_name: HashMap<String, &Pod> = pods.iter().map(|p| (p.name_any(), p)).collect();
    let pvc_by_name: HashMap<String, &PersistentVolumeClaim> =
        pvcs.iter().map(|p| (p.name_any(), p)).collect();
    let templates = model::claim_templates(sts);

    let live = model::live_range(sts);
    // Rows for the live range plus any pod still present above it (e.g. terminating).
    let mut ordinals: Vec<i32> = live.clone().collect();
    for p in pods {
        if let Some(o) = model::ordinal_of(&name, &p.name_any()) {
            if !ordinals.contains(&o) {
                ordinals.push(o);
            }
        }
    }
    ordinals.sort_unstable();

    let rows = ordinals
        .into_iter()
        .map(|o| {
            let pod_name = model::pod_name(&name, o);
            let pod = by_name.get(&pod_name).copied();
            let pvcs = templates
                .iter()
                .map(|t| {
                    let n = model::pvc_name(t, &name, o);
                    let p = pvc_by_name.get(&n);
                    PvcRef {
                        phase: p
                            .map(|p| model::pvc_phase(p).to_string())
                            .unwrap_or_else(|| "Missing".into()),
                        capacity: p.and_then(|p| model::pvc_capacity(p)),
                        name: n,
                    }
                })
                .collect();
            match pod {
                None => OrdinalRow {
                    ordinal: o,
                    pod: pod_name,
                    phase: "Missing".into(),
                    ready: false,
                    revision: None,
                    revision_hash: None,
                    images: vec![],
                    restarts: 0,
                    age_seconds: None,
                    node: None,
                    pvcs,
                    stranded: None,
                },
                Some(p) => {
                    let hash = model::revision(p).map(str::to_string);
                    let revision = Some(
                        match hash.as_deref() {
                            Some(h) if Some(h) == update.as_deref() && update != current => {
                                "update"
                            }
                            Some(h) if Some(h) == current.as_deref() => "current",
                            Some(h) if Some(h) == update.as_deref() => "update",
                            Some(_) => "other",
                            None => "unknown",
                        }
                        .to_string(),
                    );
                    OrdinalRow {
                        ordinal: o,
                        pod: pod_name,
                        phase: if model::is_terminating(p) {
                            "Terminating".into()
                        } else {
                            model::phase(p).to_string()
                        },
                        ready: model::is_ready(p),
                        revision,
                        revision_hash: hash,
                        images: model::images(p),
                        restarts: model::restarts(p),
                        age_seconds: model::age_secs(p.metadata.creation_timestamp.as_ref(), now),
                        node: model::node(p).map(str::to_string),
                        pvcs,
                        stranded: None,
                    }
                }
            }
        })
        .collect();

    let opts = orphan::OrphanRules {
        include_scaled_to_zero: true,
    };
    let orphan_pvcs = orphan::classify(std::slice::from_ref(sts), pvcs, pods, opts)
        .into_iter()
        .filter(|c| {
            !matches!(
                c.verdict,
                orphan::Verdict::Live | orphan::Verdict::Ambiguous(_)
            )
        })
        .map(|c| OrphanPvc {
            name: c.pvc.name_any(),
            template: c.template.clone(),
            ordinal: c.ordinal,
            phase: model::pvc_phase(c.pvc).to_string(),
            capacity: model::pvc_capacity(c.pvc),
            age_seconds: model::age_secs(c.pvc.metadata.creation_timestamp.as_ref(), now),
            mounted_by: match &c.verdict {
                orphan::Verdict::MountedBy(p) => Some(p.clone()),
                _ => None,
            },
        })
        .collect();

    StatusReport {
        api_version: super::API_VERSION,
        kind: "StatusReport",
        namespace: sts.namespace().unwrap_or_default(),
        replicas: Replicas {
            desired: model::replicas(sts),
            current: status.current_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas,
        },
        update_strategy: Strategy {
            type_: model::strategy_type(sts).to_string(),
            partition: model::partition(sts),
            max_unavailable: model::max_unavailable(sts),
        },
        pod_management_policy: model::pod_management_policy(sts).to_string(),
        rollout_pending: model::rollout_pending(sts),
        current_revision: current,
        update_revision: update,
        generation: sts.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation,
        min_ready_seconds: model::min_ready_seconds(sts),
        ordinal_start: model::ordinal_start(sts),
        pvc_retention_policy: model::retention_policy(sts).map(|(s, d)| Retention {
            when_scaled: s,
            when_deleted: d,
        }),
        ordinals: rows,
        orphan_pvcs,
        lock: None,
        name,
    }
}

#[path = "status_list.rs"]
pub mod list;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn status_of_a_scaled_down_statefulset_lists_orphans() {
        let f = fixtures::load("redis-scaled-down.yaml");
        let r = build(&f.sts(), &f.pods(), &f.pvcs(), fixtures::now());
        assert_eq!(r.replicas.desired, 2);
        assert_eq!(
            r.ordinals.iter().map(|o| o.ordinal).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(r.ordinals.iter().all(|o| o.ready && o.phase == "Running"));
        assert_eq!(r.ordinals[0].pvcs[0].name, "redis-data-redis-0");
        assert_eq!(r.ordinals[0].pvcs[0].phase, "Bound");
        let orphans: Vec<_> = r.orphan_pvcs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(orphans, vec!["redis-data-redis-2"]);
        let text = crate::render::Report::text(&r);
        assert!(
            text.contains("1 PVC(s) outside the live ordinal range (10Gi)"),
            "{text}"
        );
        assert!(text.contains("prune-pvcs redis -n production"), "{text}");
    }

    #[test]
    fn status_marks_missing_ordinals_and_pending_rollouts() {
        let f = fixtures::load("redis-canary-midway.yaml");
        let r = build(&f.sts(), &f.pods(), &f.pvcs(), fixtures::now());
        assert!(r.rollout_pending);
        let revs: Vec<_> = r.ordinals.iter().map(|o| o.revision.clone()).collect();
        assert_eq!(
            revs,
            vec![Some("current".into()), None, Some("update".into())]
        );
        assert_eq!(r.ordinals[1].phase, "Missing");
        assert_eq!(r.update_strategy.partition, 2);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kind"], "StatusReport");
        assert_eq!(json["updateStrategy"]["type"], "RollingUpdate");
    }
}
