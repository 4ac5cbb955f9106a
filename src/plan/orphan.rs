//! Which PVCs belong to which StatefulSet ordinal, and which of them scale-down
//! truly orphaned. Pure functions over listed objects.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;

use crate::model;

/// Why a PVC attributed to a StatefulSet is (or is not) an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ordinal outside the live range, unmounted, not being deleted.
    Orphan,
    /// The ordinal is live: the StatefulSet will (re)attach it.
    Live,
    /// Outside the live range but a pod mounts it.
    MountedBy(String),
    /// Already being deleted.
    Deleting,
    /// The StatefulSet is scaled to 0; its PVCs are kept unless asked otherwise.
    ScaledToZero,
    /// The name fits more than one StatefulSet and the labels do not decide.
    Ambiguous(Vec<String>),
}

impl Verdict {
    pub fn reason(&self) -> String {
        match self {
            Verdict::Orphan => "orphaned by scale-down".into(),
            Verdict::Live => "ordinal is in the live range".into(),
            Verdict::MountedBy(p) => format!("mounted by pod \"{p}\""),
            Verdict::Deleting => "already being deleted".into(),
            Verdict::ScaledToZero => {
                "StatefulSet is scaled to 0 (use --include-scaled-to-zero)".into()
            }
            Verdict::Ambiguous(s) => format!("name fits several StatefulSets ({})", s.join(", ")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub pvc: &'a PersistentVolumeClaim,
    pub statefulset: String,
    /// The uid of the StatefulSet judged: a StatefulSet re-created under the same name
    /// is another object.
    pub statefulset_uid: Option<String>,
    pub template: String,
    pub ordinal: i32,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct OrphanRules {
    pub include_scaled_to_zero: bool,
}

/// Claim name → first pod (by name) that mounts it, for one namespace.
pub fn mounts(pods: &[Pod]) -> HashMap<(String, String), String> {
    let mut m = HashMap::new();
    for p in pods {
        let ns = p.namespace().unwrap_or_default();
        for c in model::mounted_claims(p) {
            m.entry((ns.clone(), c.to_string()))
                .or_insert_with(|| p.name_any());
        }
    }
    m
}

fn labels_match(pvc: &PersistentVolumeClaim, selector: &BTreeMap<String, String>) -> bool {
    let labels = pvc.metadata.labels.clone().unwrap_or_default();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Every (StatefulSet, template, ordinal) whose naming rule produces this PVC's name
/// in the same namespace.
fn name_matches<'s>(
    pvc: &PersistentVolumeClaim,
    sets: &'s [StatefulSet],
) -> Vec<(&'s StatefulSet, String, i32)> {
    let ns = pvc.namespace();
    let name = pvc.name_any();
    let mut out = vec![];
    for s in sets.iter().filter(|s| s.namespace() == ns) {
        let sname = s.name_any();
        for t in model::claim_templates(s) {
            if let Some(o) = model::claim_ordinal(&name, &t, &sname) {
                out.push((s, t, o));
            }
        }
    }
    out
}

/// Attributes every PVC that follows a StatefulSet's naming rule to that StatefulSet
/// and judges it. PVCs that fit no StatefulSet are not returned.
pub fn classify<'a>(
    sets: &[StatefulSet],
    pvcs: &'a [PersistentVolumeClaim],
    pods: &[Pod],
    opts: OrphanRules,
) -> Vec<Claim<'a>> {
    let mounted = mounts(pods);
    let mut out = vec![];
    for pvc in pvcs {
        let all = name_matches(pvc, sets);
        if all.is_empty() {
            continue;
        }
        // A live ordinal under any reading of the name wins: never propose it.
        let live = all
            .iter()
            .find(|(s, _, o)| model::live_range(s).contains(o));
        let by_labels: Vec<_> = all
            .iter()
            .filter(|(s, _, _)| labels_match(pvc, &model::selector_labels(s)))
            .collect();
        let (chosen, ambiguous) = match (live, all.len(), by_labels.as_slice()) {
            (Some(l), _, _) => (l, false),
            (None, 1, _) => (&all[0], false),
            (None, _, [one]) => (*one, false),
            (None, _, _) => (&all[0], true),
        };
        let (sts, template, ordinal) = (chosen.0, chosen.1.clone(), chosen.2);
        let key = (pvc.namespace().unwrap_or_default(), pvc.name_any());
        let verdict = if live.is_some() {
            Verdict::Live
        } else if ambiguous {
            Verdict::Ambiguous(all.iter().map(|(s, _, _)| s.name_any()).collect())
        } else if pvc.metadata.deletion_timestamp.is_some() {
            Verdict::Deleting
        } else if let Some(pod) = mounted.get(&key) {
            Verdict::MountedBy(pod.clone())
        } else if model::replicas(sts) == 0 && !opts.include_scaled_to_zero {
            Verdict::ScaledToZero
        } else {
            Verdict::Orphan
        };
        out.push(Claim {
            pvc,
            statefulset: sts.name_any(),
            statefulset_uid: sts.metadata.uid.clone(),
            template,
            ordinal,
            verdict,
        });
    }
    out
}

/// The orphans of one StatefulSet (default options: scaled-to-zero sets keep theirs).
pub fn orphans_of<'a>(
    sts: &StatefulSet,
    pvcs: &'a [PersistentVolumeClaim],
    pods: &[Pod],
) -> Vec<Claim<'a>> {
    classify(
        std::slice::from_ref(sts),
        pvcs,
        pods,
        OrphanRules::default(),
    )
    .into_iter()
    .filter(|c| c.verdict == Verdict::Orphan)
    .collect()
}

/// The claims' summed capacity, human-readable (`20Gi`).
pub fn total_capacity(claims: &[Claim]) -> String {
    let sizes: Vec<String> = claims
        .iter()
        .filter_map(|c| model::pvc_capacity(c.pvc))
        .collect();
    model::format_bytes(model::total_bytes(sizes.iter().map(String::as_str)))
}

/// PVCs that look like StatefulSet claims (`<prefix>-<ordinal>`, with labels) of a
/// StatefulSet that no longer exists: no existing StatefulSet's naming rule or
/// selector covers them and no pod mounts them.
pub fn gone_statefulset_claims<'a>(
    sets: &[StatefulSet],
    pvcs: &'a [PersistentVolumeClaim],
    pods: &[Pod],
) -> Vec<(&'a PersistentVolumeClaim, String, i32)> {
    let mounted = mounts(pods);
    pvcs.iter()
        .filter(|pvc| pvc.metadata.deletion_timestamp.is_none())
        .filter(|pvc| pvc.metadata.labels.as_ref().is_some_and(|l| !l.is_empty()))
        .filter(|pvc| name_matches(pvc, sets).is_empty())
        .filter(|pvc| {
            !sets
                .iter()
                .filter(|s| s.namespace() == pvc.namespace())
                .any(|s| {
                    labels_match(pvc, &model::selector_labels(s))
                        && !model::selector_labels(s).is_empty()
                })
        })
        .filter(|pvc| !mounted.contains_key(&(pvc.namespace().unwrap_or_default(), pvc.name_any())))
        .filter_map(|pvc| {
            let name = pvc.name_any();
            let (prefix, ord) = name.rsplit_once('-')?;
            let ord = model::parse_ordinal(ord)?;
            // `<template>-<statefulset>`: at least two dash-separated parts.
            prefix.contains('-').then(|| (pvc, prefix.to_string(), ord))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sts(
        name: &str,
        replicas: i32,
        templates: &[&str],
        labels: &[(&str, &str)],
    ) -> StatefulSet {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}},
                "volumeClaimTemplates": templates.iter().map(|t| serde_json::json!({"metadata": {"name": t}})).collect::<Vec<_>>(),
            }
        }))
        .unwrap()
    }

    pub fn pvc(name: &str, labels: &[(&str, &str)]) -> PersistentVolumeClaim {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": name, "namespace": "ns", "labels": labels}}),
        )
        .unwrap()
    }

    fn pod_mounting(name: &str, claim: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}
        }))
        .unwrap()
    }

    fn verdicts(
        sets: &[StatefulSet],
        pvcs: &[PersistentVolumeClaim],
        pods: &[Pod],
    ) -> Vec<(String, String, i32, Verdict)> {
        classify(sets, pvcs, pods, OrphanRules::default())
            .into_iter()
            .map(|c| (c.pvc.name_any(), c.statefulset, c.ordinal, c.verdict))
            .collect()
    }

    #[test]
    fn scale_down_leaves_orphans_above_the_live_range() {
        let sets = [sts("redis", 2, &["redis-data"], &[("app", "redis")])];
        let pvcs: Vec<_> = (0..5)
            .map(|i| pvc(&format!("redis-data-redis-{i}"), &[("app", "redis")]))
            .collect();
        let v = verdicts(&sets, &pvcs, &[]);
        let orphans: Vec<_> = v
            .iter()
            .filter(|x| x.3 == Verdict::Orphan)
            .map(|x| x.2)
            .collect();
        assert_eq!(orphans, vec![2, 3, 4]);
        assert_eq!(v.iter().filter(|x| x.3 == Verdict::Live).count(), 2);
    }

    #[test]
    fn mounted_deleting_and_scaled_to_zero_are_never_orphans() {
        let sets = [sts("db", 1, &["data"], &[]), sts("idle", 0, &["data"], &[])];
        let mut deleting = pvc("data-db-3", &[]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let pvcs = [pvc("data-db-2", &[]), deleting, pvc("data-idle-0", &[])];
        let pods = [pod_mounting("debug", "data-db-2")];
        let v = verdicts(&sets, &pvcs, &pods);
        assert_eq!(v[0].3, Verdict::MountedBy("debug".into()));
        assert_eq!(v[1].3, Verdict::Deleting);
        assert_eq!(v[2].3, Verdict::ScaledToZero);
        let with_zero = classify(
            &sets,
            &pvcs,
            &pods,
            OrphanRules {
                include_scaled_to_zero: true,
            },
        );
        assert_eq!(with_zero[2].verdict, Verdict::Orphan);
    }

    #[test]
    fn prefix_named_statefulsets_are_not_confused() {
        let sets = [
            sts("web", 1, &["data", "data-web"], &[("app", "web")]),
            sts("web-1", 1, &["data"], &[("app", "web-1")]),
        ];
        let pvcs = [
            pvc("data-web-1-0", &[("app", "web-1")]),
            pvc("data-web-web-2", &[("app", "web")]),
            pvc("data-web-3", &[("app", "web")]),
            pvc("data-web-1-4", &[("app", "web-1")]),
        ];
        let v = verdicts(&sets, &pvcs, &[]);
        assert_eq!(
            v[0],
            ("data-web-1-0".into(), "web-1".into(), 0, Verdict::Live)
        );
        assert_eq!(
            v[1],
            ("data-web-web-2".into(), "web".into(), 2, Verdict::Orphan)
        );
        assert_eq!(
            v[2],
            ("data-web-3".into(), "web".into(), 3, Verdict::Orphan)
        );
        assert_eq!(
            v[3],
            ("data-web-1-4".into(), "web-1".into(), 4, Verdict::Orphan)
        );
    }

    #[test]
    fn look_alike_names_are_decided_by_labels_or_refused() {
        // "data-web-1-3" is both (data, web-1, 3) and (data-web, 1, 3).
        let sets = [
            sts("web-1", 1, &["data"], &[("app", "a")]),
            sts("1", 1, &["data-web"], &[("app", "b")]),
        ];
        let by_labels = verdicts(&sets, &[pvc("data-web-1-3", &[("app", "b")])], &[]);
        assert_eq!(by_labels[0].1, "1");
        let unlabelled = verdicts(&sets, &[pvc("data-web-1-3", &[])], &[]);
        let live_anyway = verdicts(&sets, &[pvc("data-web-1-0", &[("app", "b")])], &[]);
        assert_eq!(
            live_anyway[0].3,
            Verdict::Live,
            "live under one reading: never proposed"
        );
        assert!(matches!(unlabelled[0].3, Verdict::Ambiguous(_)));
    }

    #[test]
    fn claims_of_a_deleted_statefulset_are_found_separately() {
        let sets = [sts("redis", 1, &["redis-data"], &[("app", "redis")])];
        let pvcs = [
            pvc("redis-data-redis-0", &[("app", "redis")]),
            pvc("pg-data-pg-0", &[("app", "pg")]),
            pvc("scratch", &[("app", "x")]),
            pvc("unlabelled-x-0", &[]),
        ];
        let gone = gone_statefulset_claims(&sets, &pvcs, &[]);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].1.as_str(), gone[0].2), ("pg-data-pg", 0));
    }
}

#[cfg(test)]
mod properties {
    use super::tests::{pvc, sts};
    use super::*;
    use proptest::prelude::*;

    fn dns_name() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
    }

    proptest! {
        /// Whatever the names, a PVC of a live ordinal is never an orphan.
        #[test]
        fn live_ordinals_are_never_orphans(
            s1 in dns_name(), s2 in dns_name(), t1 in dns_name(), t2 in dns_name(),
            r1 in 0i32..6, r2 in 0i32..6, ords in proptest::collection::vec(0i32..12, 1..8),
            zero in any::<bool>(),
        ) {
            prop_assume!(s1 != s2);
            let sets = [sts(&s1, r1, &[&t1], &[("app", &s1)]), sts(&s2, r2, &[&t2], &[("app", &s2)])];
            let mut pvcs = vec![];
            for o in &ords {
                pvcs.push(pvc(&model::pvc_name(&t1, &s1, *o), &[("app", &s1)]));
                pvcs.push(pvc(&model::pvc_name(&t2, &s2, *o), &[("app", &s2)]));
            }
            let claims = classify(&sets, &pvcs, &[], OrphanRules { include_scaled_to_zero: zero });
            for c in claims.iter().filter(|c| c.verdict == Verdict::Orphan) {
                // Every StatefulSet whose rule produces this name must have the ordinal outside its range.
                for s in &sets {
                    for t in model::claim_templates(s) {
                        if let Some(o) = model::claim_ordinal(&c.pvc.name_any(), &t, &s.name_any()) {
                            prop_assert!(!model::live_range(s).contains(&o), "{} is live in {}", c.pvc.name_any(), s.name_any());
                        }
                    }
                }
            }
        }
    }
}
