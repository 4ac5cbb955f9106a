//! The rollback's decisions: which revision is restored, which template that is, and
//! which pods the controller will not replace by itself (kubernetes issue 67250). Pure.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::ResourceExt;
use serde::Serialize;

use super::ondelete;
use super::template::{self, Change};
use super::API_VERSION;
use crate::model;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPlan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub statefulset: String,
    pub namespace: String,
    /// The revision restored (status.currentRevision).
    pub restore_revision: String,
    pub bad_revision: String,
    pub changes: Vec<Change>,
    /// Pods stuck not-Ready on the bad revision: the controller will not replace them
    /// itself. Under `OnDelete`: every pod on the bad revision, deleted one at a time.
    pub delete_pods: Vec<String>,
    /// The StatefulSet keeps (or gets back) `updateStrategy: OnDelete`.
    pub on_delete: bool,
    pub warnings: Vec<String>,
}

/// What `rollback -o json|yaml` ends with once the rollback is done: the plan it
/// carried out, the lock it held, its exit code.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plan: RollbackPlan,
    pub lock: Option<String>,
    pub exit_code: i32,
    pub seconds: f64,
}

impl RollbackReport {
    pub fn new(plan: RollbackPlan, lock: Option<String>, seconds: f64) -> Self {
        RollbackReport {
            api_version: super::API_VERSION,
            kind: "RollbackReport",
            plan,
            lock,
            exit_code: 0,
            seconds,
        }
    }
}

/// A pod the controller will not replace by itself: not Ready on a revision other
/// than the one being restored.
pub fn stuck(pod: &Pod, restore_revision: &str) -> bool {
    model::revision(pod).is_some_and(|r| r != restore_revision)
        && !model::is_terminating(pod)
        && !model::is_ready(pod)
}

/// The rollback of `sts`, or None when there is nothing to do. `restore` is the template
/// of `status.currentRevision` (read from its ControllerRevision); it is needed only
/// while a rollout is pending ([`needs_revision`]).
pub fn plan(
    sts: &StatefulSet,
    pods: &[Pod],
    namespace: &str,
    restore: Option<&PodTemplateSpec>,
) -> Option<(RollbackPlan, PodTemplateSpec)> {
    let name = sts.name_any();
    let current = model::current_revision(sts).unwrap_or_default().to_string();
    let on_delete = stays_on_delete(sts);
    let mut stuck_pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            if on_delete {
                model::revision(p).is_some_and(|r| r != current) && !model::is_terminating(p)
            } else {
                stuck(p, &current)
            }
        })
        .collect();
    stuck_pods.sort_by_key(|p| std::cmp::Reverse(model::ordinal_of(&name, &p.name_any())));
    let delete_pods = stuck_pods.iter().map(|p| p.name_any()).collect();
    if !model::rollout_pending(sts) {
        // The template may already be restored (a rollback stopped after its first
        // write): what remains is deleting pods stuck on the old bad revision.
        let first = stuck_pods.first()?;
        return Some((
            RollbackPlan {
                api_version: API_VERSION,
                kind: "RollbackPlan",
                statefulset: name,
                namespace: namespace.to_string(),
                restore_revision: current,
                bad_revision: model::revision(first).unwrap_or_default().to_string(),
                changes: vec![],
                delete_pods,
                on_delete,
                warnings: vec![
                    "the template is already restored; finishing an interrupted rollback".into(),
                ],
            },
            sts.spec.template.clone(),
        ));
    }
    let restore = restore?;
    let mut warnings = vec![];
    if model::partition(sts) > 0 && !on_delete {
        warnings.push(format!(
            "the partition ({}) is reset to 0",
            model::partition(sts)
        ));
    }
    Some((
        RollbackPlan {
            api_version: API_VERSION,
            kind: "RollbackPlan",
            statefulset: name,
            namespace: namespace.to_string(),
            restore_revision: current,
            bad_revision: model::update_revision(sts).unwrap_or_default().to_string(),
            changes: template::diff(&sts.spec.template, restore),
            delete_pods,
            on_delete,
            warnings,
        },
        restore.clone(),
    ))
}

/// Whether the rollback leaves the StatefulSet on `OnDelete`: it uses it, and it is not an
/// interrupted canary run whose recorded strategy is another one.
pub fn stays_on_delete(sts: &StatefulSet) -> bool {
    let original =
        ondelete::recorded_strategy(sts).unwrap_or_else(|| ondelete::current_strategy(sts));
    ondelete::is_ondelete(&ondelete::strategy_to_restore(&original))
}

/// Under `OnDelete`, the next pod to delete: a pod on the bad revision that is down
/// anyway first, else the highest one, but only while every other pod is up (one pod
/// down at a time). `deleted` holds the uids already deleted.
pub fn next_ondelete_delete<'p>(
    pods: &'p std::collections::BTreeMap<i32, Pod>,
    live: std::ops::Range<i32>,
    restore: &str,
    deleted: &std::collections::BTreeSet<String>,
) -> Option<&'p Pod> {
    let bad = |p: &Pod| {
        model::revision(p).is_some_and(|r| r != restore)
            && !model::is_terminating(p)
            && !deleted.contains(&p.uid().unwrap_or_default())
    };
    let mut victims: Vec<(i32, &Pod)> = live
        .clone()
        .filter_map(|o| pods.get(&o).map(|p| (o, p)))
        .filter(|(_, p)| bad(p))
        .collect();
    victims.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    if let Some((_, p)) = victims.iter().find(|(_, p)| !model::is_available(p)) {
        return Some(p);
    }
    let all_up = live.clone().all(|o| {
        pods.get(&o)
            .is_some_and(|p| model::is_available(p) && !model::is_terminating(p))
    });
    victims.first().filter(|_| all_up).map(|(_, p)| *p)
}

/// Whether [`plan`] needs the template of the current revision (a rollout is pending).
pub fn needs_revision(sts: &StatefulSet) -> bool {
    model::rollout_pending(sts)
}

/// Done: every live ordinal Available on the restored revision, the controller has seen
/// our write and promoted the revision, and no pod is missing.
pub fn restored(
    sts: &StatefulSet,
    pods: &std::collections::BTreeMap<i32, Pod>,
    restore: &str,
    generation: i64,
) -> bool {
    let all_good = model::live_range(sts).all(|o| {
        pods.get(&o)
            .is_some_and(|p| model::is_available(p) && model::revision(p) == Some(restore))
    });
    let promoted = sts.metadata.generation.unwrap_or(0) == generation
        && model::observed(sts)
        && !model::rollout_pending(sts);
    all_good && promoted && pods.len() as i32 >= model::replicas(sts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(yaml: &str) -> StatefulSet {
        serde_yaml::from_str(yaml).unwrap()
    }

    const PENDING: &str = "metadata: {name: redis, generation: 3}
spec:
  replicas: 3
  serviceName: redis
  selector: {matchLabels: {app: redis}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}
  template: {metadata: {labels: {app: redis}}, spec: {containers: [{name: redis, image: 'redis:bad'}]}}
status: {replicas: 3, observedGeneration: 3, currentRevision: redis-good, updateRevision: redis-bad}";

    fn pod(name: &str, revision: &str, ready: bool, terminating: bool) -> Pod {
        let mut p: Pod = serde_yaml::from_str(&format!(
            "metadata: {{name: {name}, labels: {{controller-revision-hash: {revision}}}}}
status: {{phase: Running, conditions: [{{type: Ready, status: '{}'}}]}}",
            if ready { "True" } else { "False" }
        ))
        .unwrap();
        if terminating {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        }
        p
    }

    fn good_template() -> PodTemplateSpec {
        serde_yaml::from_str("{metadata: {labels: {app: redis}}, spec: {containers: [{name: redis, image: 'redis:good'}]}}").unwrap()
    }

    #[test]
    fn only_unready_pods_on_another_revision_are_stuck() {
        assert!(stuck(
            &pod("redis-2", "redis-bad", false, false),
            "redis-good"
        ));
        assert!(
            !stuck(&pod("redis-2", "redis-bad", true, false), "redis-good"),
            "Ready: the controller replaces it"
        );
        assert!(
            !stuck(&pod("redis-2", "redis-bad", false, true), "redis-good"),
            "already going away"
        );
        assert!(
            !stuck(&pod("redis-1", "redis-good", false, false), "redis-good"),
            "already restored"
        );
        let mut unlabelled = pod("redis-0", "x", false, false);
        unlabelled.metadata.labels = None;
        assert!(
            !stuck(&unlabelled, "redis-good"),
            "no revision: not ours to judge"
        );
    }

    #[test]
    fn pending_rollout_restores_the_current_revision_and_deletes_stuck_pods() {
        let s = sts(PENDING);
        let pods = vec![
            pod("redis-0", "redis-good", true, false),
            pod("redis-1", "redis-good", true, false),
            pod("redis-2", "redis-bad", false, false),
        ];
        let t = good_template();
        let (p, restored_template) = plan(&s, &pods, "db", Some(&t)).unwrap();
        assert_eq!(
            (p.restore_revision.as_str(), p.bad_revision.as_str()),
            ("redis-good", "redis-bad")
        );
        assert_eq!(p.delete_pods, vec!["redis-2"]);
        assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
        assert_eq!(p.warnings, vec!["the partition (2) is reset to 0"]);
        assert!(template::same_template(&restored_template, &t));
        assert!(needs_revision(&s));
        assert!(
            plan(&s, &pods, "db", None).is_none(),
            "no revision template, no plan"
        );
    }

    #[test]
    fn converged_statefulset_finishes_an_interrupted_rollback_or_does_nothing() {
        let mut s = sts(PENDING);
        s.status.as_mut().unwrap().update_revision = Some("redis-good".into());
        assert!(!needs_revision(&s));
        let healthy = vec![
            pod("redis-0", "redis-good", true, false),
            pod("redis-2", "redis-bad", true, false),
        ];
        assert!(
            plan(&s, &healthy, "db", None).is_none(),
            "nothing stuck: nothing to do"
        );
        let left = vec![
            pod("redis-0", "redis-good", true, false),
            pod("redis-2", "redis-bad", false, false),
        ];
        let (p, t) = plan(&s, &left, "db", None).unwrap();
        assert_eq!(p.delete_pods, vec!["redis-2"]);
        assert_eq!(p.bad_revision, "redis-bad");
        assert!(p.changes.is_empty());
        assert!(template::same_template(&t, &s.spec.template));
    }
}

#[cfg(test)]
mod ondelete_tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn pod(name: &str, rev: &str, ready: bool) -> Pod {
        serde_yaml::from_str(&format!(
            "metadata: {{name: {name}, uid: u-{name}, labels: {{controller-revision-hash: {rev}}}}}
status: {{phase: Running, conditions: [{{type: Ready, status: '{}'}}]}}",
            if ready { "True" } else { "False" }
        ))
        .unwrap()
    }

    #[test]
    fn ondelete_rollback_deletes_one_bad_pod_at_a_time() {
        let none = BTreeSet::new();
        let mut pods: BTreeMap<i32, Pod> = BTreeMap::from([
            (0, pod("db-0", "good", true)),
            (1, pod("db-1", "bad", true)),
            (2, pod("db-2", "bad", true)),
        ]);
        let next = |pods: &BTreeMap<i32, Pod>, d: &BTreeSet<String>| {
            next_ondelete_delete(pods, 0..3, "good", d).map(|p| p.name_any())
        };
        assert_eq!(next(&pods, &none).as_deref(), Some("db-2"), "highest first");
        // A bad pod that is down anyway goes first.
        pods.insert(1, pod("db-1", "bad", false));
        assert_eq!(next(&pods, &none).as_deref(), Some("db-1"));
        // While another pod is down, no healthy bad pod is deleted.
        pods.insert(1, pod("db-1", "good", false));
        assert_eq!(next(&pods, &none), None);
        pods.insert(1, pod("db-1", "good", true));
        let deleted: BTreeSet<String> = ["u-db-2".to_string()].into();
        assert_eq!(next(&pods, &deleted), None, "each uid once");
    }
}
