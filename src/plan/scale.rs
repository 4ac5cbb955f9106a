//! The scale plan: which pods come and go, and what happens to each of their PVCs.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::orphan;
use crate::model;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcFate {
    pub name: String,
    /// reattached | created | kept | deleted
    pub action: String,
    pub capacity: Option<String>,
    pub phase: Option<String>,
    pub age_seconds: Option<i64>,
    pub storage_class: Option<String>,
    /// For deleted PVCs: the bound PV's reclaim policy, which decides whether the data survives.
    pub reclaim_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodChange {
    pub ordinal: i32,
    pub pod: String,
    pub pvcs: Vec<PvcFate>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalePlan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub statefulset: String,
    pub namespace: String,
    pub from: i32,
    pub to: i32,
    /// up | down
    pub direction: &'static str,
    /// Replica counts set one after another.
    pub steps: Vec<i32>,
    /// Pods created (up, lowest first) or removed (down, highest first).
    pub pods: Vec<PodChange>,
    pub warnings: Vec<String>,
    /// Warnings that mean the run will not succeed as things stand.
    pub errors: Vec<String>,
}

/// Replica counts from `from` to `to`, `step` at a time.
pub fn steps(from: i32, to: i32, step: i32) -> Vec<i32> {
    let step = step.max(1);
    let mut out = vec![];
    let mut cur = from;
    while cur != to {
        cur = if to > cur {
            (cur + step).min(to)
        } else {
            (cur - step).max(to)
        };
        out.push(cur);
    }
    out
}

pub struct ScaleInputs<'a> {
    pub sts: &'a StatefulSet,
    pub pvcs: &'a [PersistentVolumeClaim],
    /// None when PVs may not be read.
    pub pvs: Option<&'a [PersistentVolume]>,
    /// None when StorageClasses may not be read.
    pub classes: Option<&'a [StorageClass]>,
    pub now: Timestamp,
}

fn template_class(sts: &StatefulSet, template: &str) -> Option<String> {
    sts.spec
        .volume_claim_templates
        .iter()
        .flatten()
        .find(|t| t.metadata.name.as_deref() == Some(template))
        .and_then(|t| t.spec.as_ref()?.storage_class_name.clone())
}

pub fn plan(inp: &ScaleInputs, to: i32, step: i32, namespace: &str) -> ScalePlan {
    let sts = inp.sts;
    let name = sts.name_any();
    let from = model::replicas(sts);
    let start = model::ordinal_start(sts);
    let templates = model::claim_templates(sts);
    let mut warnings = vec![];
    let mut errors = vec![];
    let up = to > from;
    let ordinals: Vec<i32> = if up {
        (start + from..start + to).collect()
    } else {
        (start + to..start + from).rev().collect()
    };
    let delete_on_scale = model::pvcs_deleted_when_scaled(sts);
    let pods = ordinals
        .iter()
        .map(|&o| {
            let pvcs = templates
                .iter()
                .map(|t| {
                    let pvc_name = model::pvc_name(t, &name, o);
                    let existing = inp.pvcs.iter().find(|p| p.name_any() == pvc_name);
                    fate(
                        inp,
                        sts,
                        t,
                        &pvc_name,
                        existing,
                        up,
                        delete_on_scale,
                        &mut warnings,
                        &mut errors,
                    )
                })
                .collect();
            PodChange {
                ordinal: o,
                pod: model::pod_name(&name, o),
                pvcs,
            }
        })
        .collect::<Vec<_>>();
    if !up && delete_on_scale && !templates.is_empty() {
        warnings.insert(
            0,
            format!(
                "DATA LOSS: persistentVolumeClaimRetentionPolicy.whenScaled is Delete: the controller deletes the PVCs of {} as it removes the pods",
                pods.iter().map(|p| p.pod.as_str()).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    if to == 0 {
        warnings.push(format!("scaling to 0 stops every pod of statefulset \"{name}\": the service is down until it is scaled up again"));
    }
    ScalePlan {
        api_version: super::API_VERSION,
        kind: "ScalePlan",
        statefulset: name,
        namespace: namespace.to_string(),
        from,
        to,
        direction: if up { "up" } else { "down" },
        steps: steps(from, to, step),
        pods,
        warnings,
        errors,
    }
}

#[allow(clippy::too_many_arguments)]
fn fate(
    inp: &ScaleInputs,
    sts: &StatefulSet,
    template: &str,
    pvc_name: &str,
    existing: Option<&PersistentVolumeClaim>,
    up: bool,
    delete_on_scale: bool,
    warnings: &mut Vec<String>,
    errors: &mut Vec<String>,
) -> PvcFate {
    let age =
        existing.and_then(|p| model::age_secs(p.metadata.creation_timestamp.as_ref(), inp.now));
    let class = existing
        .and_then(model::pvc_storage_class)
        .or_else(|| template_class(sts, template));
    let mut f = PvcFate {
        name: pvc_name.to_string(),
        action: String::new(),
        capacity: existing.and_then(model::pvc_capacity),
        phase: existing.map(|p| model::pvc_phase(p).to_string()),
        age_seconds: age,
        storage_class: class.clone(),
        reclaim_policy: None,
    };
    if up {
        if let Some(p) = existing {
            f.action = "reattached".into();
            warnings.push(format!(
                "PVC {pvc_name} already exists ({}, {}, created {} ago): the new pod starts with that old data",
                f.capacity.as_deref().unwrap_or("?"),
                model::pvc_phase(p),
                model::age(p.metadata.creation_timestamp.as_ref(), inp.now)
            ));
        } else {
            f.action = "created".into();
            if let Some(classes) = inp.classes {
                let resolved = match &class {
                    Some(c) if c.is_empty() => None,
                    Some(c) => Some(
                        classes
                            .iter()
                            .find(|s| &s.name_any() == c)
                            .ok_or_else(|| c.clone()),
                    ),
                    None => classes
                        .iter()
                        .find(|s| super::doctor::is_default_class(s))
                        .map(Ok)
                        .or(Some(Err(String::new()))),
                };
                match resolved {
                    Some(Ok(sc)) => {
                        f.storage_class = Some(sc.name_any());
                        if sc.provisioner == "kubernetes.io/no-provisioner" {
                            errors.push(format!(
                                "PVC {pvc_name}: StorageClass \"{}\" has no provisioner: the pod will sit Pending until someone creates a matching PV",
                                sc.name_any()
                            ));
                        }
                    }
                    Some(Err(c)) if c.is_empty() => errors.push(format!(
                        "PVC {pvc_name}: the template names no StorageClass and the cluster has no default one: the pod will sit Pending"
                    )),
                    Some(Err(c)) => errors.push(format!(
                        "PVC {pvc_name}: StorageClass \"{c}\" does not exist: the pod will sit Pending"
                    )),
                    None => {}
                }
            }
        }
    } else if delete_on_scale {
        f.action = "deleted".into();
        let pv = existing
            .and_then(model::pvc_volume)
            .and_then(|v| inp.pvs?.iter().find(|pv| pv.name_any() == v));
        f.reclaim_policy =
            pv.and_then(|pv| pv.spec.as_ref()?.persistent_volume_reclaim_policy.clone());
    } else {
        f.action = "kept".into();
    }
    f
}

/// Stops on a PodDisruptionBudget that the scale-down would violate: the reason, if any.
pub fn pdb_violation(
    sts: &StatefulSet,
    pdbs: &[PodDisruptionBudget],
    to: i32,
    step: i32,
) -> Option<String> {
    let from = model::replicas(sts);
    if to >= from {
        return None;
    }
    let resolve = |v: &IntOrString, total: i32| match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let pct: i32 = s.trim_end_matches('%').parse().unwrap_or(0);
            (pct * total + 99) / 100
        }
    };
    for pdb in model::pdbs_over(sts, pdbs) {
        let Some(spec) = pdb.spec.as_ref() else {
            continue;
        };
        if let Some(min) = &spec.min_available {
            let need = resolve(min, from);
            if to < need {
                return Some(format!(
                    "PodDisruptionBudget \"{}\" requires minAvailable {need}; scaling statefulset \"{}\" to {to} would violate it — change the PDB first if this is intended",
                    pdb.name_any(),
                    sts.name_any()
                ));
            }
        }
        if let Some(max) = &spec.max_unavailable {
            let allowed = resolve(max, from);
            if step > allowed {
                return Some(format!(
                    "PodDisruptionBudget \"{}\" allows {allowed} pod(s) unavailable at once; --step {step} would remove more — use --step {allowed}",
                    pdb.name_any()
                ));
            }
        }
    }
    None
}

/// Why the scale must not start as things are (without --force): pods not Ready or
/// a rollout pending.
pub fn health_stop(sts: &StatefulSet, pods: &[Pod]) -> Option<String> {
    let name = sts.name_any();
    let unready = model::unavailable_in_range(sts, pods);
    if !unready.is_empty() {
        return Some(format!(
            "statefulset \"{name}\" has pods that are not Running/Ready: {}; fix them first or pass --force",
            unready.join(", ")
        ));
    }
    if model::rollout_pending(sts) {
        return Some(format!(
            "statefulset \"{name}\" has a rollout pending ({} → {}): finish it (kubectl sts-safe canary {name} --resume) or roll it back first, or pass --force",
            model::current_revision(sts).unwrap_or("?"),
            model::update_revision(sts).unwrap_or("?")
        ));
    }
    None
}

/// Why a new pod of a scale step is not Ready, from its state and its latest events
/// (`Reason: message`, oldest first). An unscheduled pod is the seed's "Pod stuck in
/// Pending": say what the scheduler said and what to change.
pub fn pod_stuck_cause(pod: &Pod, events: &[String]) -> String {
    let name = pod.name_any();
    if model::node(pod).is_none() && model::phase(pod) == "Pending" {
        return match events.iter().rev().find(|e| e.starts_with("FailedScheduling:")) {
            Some(why) => format!(
                "{name} is stuck in Pending: no node can take it ({why}); relax its scheduling constraints (affinity, topology spread, taints, resources) or add nodes"
            ),
            None => format!("{name} is stuck in Pending: not scheduled yet"),
        };
    }
    let state = model::bad_container_state(pod)
        .unwrap_or_else(|| format!("{}, not Ready", model::phase(pod)));
    if events.is_empty() {
        format!("{name} is {state}")
    } else {
        format!("{name} is {state}; events: {}", events.join(" | "))
    }
}

/// A PVC left behind by the scale, in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeftPvc {
    pub name: String,
    pub ordinal: i32,
    pub capacity: Option<String>,
}

/// The `-o json|yaml` document of a finished scale (kind ScaleReport).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plan: ScalePlan,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub orphan_pvcs: Vec<LeftPvc>,
    pub orphan_capacity: String,
    pub seconds: f64,
    /// The lock this run held (`user@host/pid`).
    pub lock: Option<String>,
    /// The command's exit code (the report is printed when the scale succeeded).
    pub exit_code: i32,
}

/// Ready pods with an ordinal the StatefulSet keeps, counted from the pods themselves:
/// right after a scale-down the controller's `status.readyReplicas` still counts the pods
/// just removed, and a report of 5 ready out of 3 would be read as a fault.
fn ready_in_range(sts: &StatefulSet, pods: &[Pod]) -> i32 {
    model::live_range(sts).len() as i32 - model::unavailable_in_range(sts, pods).len() as i32
}

impl ScaleReport {
    /// The report once the scale is done: what runs now and which PVCs stay behind.
    pub fn new(
        plan: ScalePlan,
        sts: &StatefulSet,
        pvcs: &[PersistentVolumeClaim],
        pods: &[Pod],
        seconds: f64,
    ) -> Self {
        let orphans = orphan::orphans_of(sts, pvcs, pods);
        ScaleReport {
            api_version: super::API_VERSION,
            kind: "ScaleReport",
            plan,
            replicas: model::replicas(sts),
            ready_replicas: ready_in_range(sts, pods),
            orphan_capacity: orphan::total_capacity(&orphans),
            orphan_pvcs: orphans
                .iter()
                .map(|c| LeftPvc {
                    name: c.pvc.name_any(),
                    ordinal: c.ordinal,
                    capacity: model::pvc_capacity(c.pvc),
                })
                .collect(),
            seconds,
            lock: None,
            exit_code: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn inputs<'a>(
        sts: &'a StatefulSet,
        f: &'a fixtures::Fixture,
        pvcs: &'a [PersistentVolumeClaim],
        pvs: &'a [PersistentVolume],
        classes: &'a [StorageClass],
    ) -> ScaleInputs<'a> {
        let _ = f;
        ScaleInputs {
            sts,
            pvcs,
            pvs: Some(pvs),
            classes: Some(classes),
            now: fixtures::now(),
        }
    }

    #[test]
    fn a_pod_no_node_takes_is_stuck_in_pending_with_the_schedulers_reason() {
        let pending: Pod =
            serde_yaml::from_str("metadata: {name: redis-3}\nstatus: {phase: Pending}").unwrap();
        let why = "FailedScheduling: 0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules";
        let c = pod_stuck_cause(&pending, &["Scheduled: x".into(), why.into()]);
        assert!(
            c.starts_with(
                "redis-3 is stuck in Pending: no node can take it (FailedScheduling: 0/3"
            ),
            "{c}"
        );
        assert!(c.contains("relax its scheduling constraints"), "{c}");
        assert_eq!(
            pod_stuck_cause(&pending, &[]),
            "redis-3 is stuck in Pending: not scheduled yet"
        );
        let running: Pod = serde_yaml::from_str(
            "metadata: {name: redis-3}\nspec: {nodeName: n, containers: []}\nstatus: {phase: Running}",
        )
        .unwrap();
        assert_eq!(
            pod_stuck_cause(&running, &["Unhealthy: probe".into()]),
            "redis-3 is Running, not Ready; events: Unhealthy: probe"
        );
    }

    #[test]
    fn the_report_counts_ready_pods_in_the_range_not_the_stale_status() {
        // Just scaled 5 → 3: the controller's status still says 5 ready, redis-3 is being
        // deleted and redis-4's deletion has not been observed yet.
        let sts: StatefulSet = serde_yaml::from_str(
            "metadata: {name: redis}\nspec: {replicas: 3, serviceName: r, selector: {}, \
             template: {}}\nstatus: {replicas: 5, readyReplicas: 5}",
        )
        .unwrap();
        let pod = |name: &str, ready: &str, deleting: bool| -> Pod {
            let deletion = if deleting {
                ", deletionTimestamp: '2026-01-01T00:00:00Z'"
            } else {
                ""
            };
            serde_yaml::from_str(&format!(
                "metadata: {{name: {name}{deletion}}}\nstatus: {{phase: Running, \
                 conditions: [{{type: Ready, status: '{ready}'}}]}}"
            ))
            .unwrap()
        };
        let pods = [
            pod("redis-0", "True", false),
            pod("redis-1", "True", false),
            pod("redis-2", "False", false),
            pod("redis-3", "True", true),
            pod("redis-4", "True", false),
        ];
        let inputs = ScaleInputs {
            sts: &sts,
            pvcs: &[],
            pvs: None,
            classes: None,
            now: fixtures::now(),
        };
        let report = ScaleReport::new(plan(&inputs, 3, 1, "default"), &sts, &[], &pods, 1.0);
        assert_eq!((report.replicas, report.ready_replicas), (3, 2));
    }

    #[test]
    fn step_lists() {
        assert_eq!(steps(3, 5, 1), vec![4, 5]);
        assert_eq!(steps(5, 2, 2), vec![3, 2]);
        assert_eq!(steps(0, 3, 5), vec![3]);
        assert!(steps(3, 3, 1).is_empty());
    }

    #[test]
    fn scale_up_reattaches_existing_pvcs_and_creates_missing_ones() {
        let f = fixtures::load("redis-scaled-down.yaml"); // 2 replicas, PVCs 0..=2
        let (sts, pvcs) = (f.sts(), f.pvcs());
        let classes: Vec<StorageClass> = f.all("StorageClass");
        let p = plan(&inputs(&sts, &f, &pvcs, &[], &classes), 4, 1, "production");
        assert_eq!(p.direction, "up");
        assert_eq!(
            p.pods.iter().map(|c| c.pod.as_str()).collect::<Vec<_>>(),
            ["redis-2", "redis-3"]
        );
        assert_eq!(p.pods[0].pvcs[0].action, "reattached");
        assert_eq!(p.pods[1].pvcs[0].action, "created");
        assert!(
            p.warnings[0].contains("redis-data-redis-2 already exists (10Gi, Bound"),
            "{:?}",
            p.warnings
        );
        assert!(p.warnings[0].contains("old data"));
    }

    #[test]
    fn missing_storage_class_is_an_error_level_warning() {
        let f = fixtures::load("redis-scaled-down.yaml");
        let (sts, pvcs) = (f.sts(), f.pvcs());
        let p = plan(&inputs(&sts, &f, &pvcs, &[], &[]), 4, 1, "production");
        assert_eq!(
            p.errors.len(),
            1,
            "only redis-3's PVC is new: {:?}",
            p.errors
        );
        assert!(p.errors[0].contains("no default one"), "{:?}", p.errors);
        let no_prov: StorageClass = serde_yaml::from_str("metadata: {name: local, annotations: {storageclass.kubernetes.io/is-default-class: 'true'}}\nprovisioner: kubernetes.io/no-provisioner").unwrap();
        let p = plan(
            &inputs(&sts, &f, &pvcs, &[], std::slice::from_ref(&no_prov)),
            4,
            1,
            "production",
        );
        assert!(p.errors[0].contains("has no provisioner"), "{:?}", p.errors);
    }

    #[test]
    fn scale_down_keeps_pvcs_by_default() {
        let f = fixtures::load("redis-scaled-down.yaml");
        let (sts, pvcs) = (f.sts(), f.pvcs());
        let p = plan(&inputs(&sts, &f, &pvcs, &[], &[]), 0, 1, "production");
        assert_eq!(
            p.pods.iter().map(|c| c.ordinal).collect::<Vec<_>>(),
            [1, 0],
            "highest first"
        );
        assert!(p.pods.iter().all(|c| c.pvcs[0].action == "kept"));
        assert!(p.warnings.iter().any(|w| w.contains("scaling to 0")));
        assert!(crate::render::Report::text(&p).contains("PVC redis-data-redis-1 is kept (10Gi)"));
    }

    #[test]
    fn when_scaled_delete_warns_of_data_loss_with_the_reclaim_policy() {
        let f = fixtures::load("scale-retention-delete.yaml");
        let (sts, pvcs) = (f.sts(), f.pvcs());
        let pvs: Vec<PersistentVolume> = f.all("PersistentVolume");
        let p = plan(&inputs(&sts, &f, &pvcs, &pvs, &[]), 1, 1, "production");
        assert!(p.warnings[0].starts_with("DATA LOSS"), "{:?}", p.warnings);
        let fates: Vec<_> = p
            .pods
            .iter()
            .map(|c| {
                (
                    c.pod.clone(),
                    c.pvcs[0].action.clone(),
                    c.pvcs[0].reclaim_policy.clone(),
                )
            })
            .collect();
        assert_eq!(
            fates,
            vec![
                ("db-2".into(), "deleted".into(), Some("Retain".into())),
                ("db-1".into(), "deleted".into(), Some("Delete".into())),
            ]
        );
        let text = crate::render::Report::text(&p);
        assert!(text.contains("Delete: the data is destroyed"), "{text}");
        assert!(text.contains("Retain: the PV stays Released"), "{text}");
    }

    #[test]
    fn ordinals_start_shifts_pods_and_pvc_names() {
        let f = fixtures::load("scale-retention-delete.yaml"); // ordinals.start 0 there
        let mut sts = f.sts();
        sts.spec.ordinals = Some(serde_json::from_value(serde_json::json!({"start": 5})).unwrap());
        let p = plan(&inputs(&sts, &f, &[], &[], &[]), 5, 1, "production"); // 3 → 5
        assert_eq!(
            p.pods.iter().map(|c| c.pod.as_str()).collect::<Vec<_>>(),
            ["db-8", "db-9"]
        );
        assert_eq!(p.pods[0].pvcs[0].name, "data-db-8");
        let down = plan(&inputs(&sts, &f, &[], &[], &[]), 1, 1, "production");
        assert_eq!(
            down.pods.iter().map(|c| c.ordinal).collect::<Vec<_>>(),
            [7, 6]
        );
    }
}
