//! The scale plan: which pods come and go, and what happens to each of their PVCs.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::model;
use crate::ui;

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

pub struct Inputs<'a> {
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

pub fn plan(inp: &Inputs, to: i32, step: i32, namespace: &str) -> ScalePlan {
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
        api_version: "sts-safe/v1",
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
    inp: &Inputs,
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
                        .find(|s| crate::commands::doctor::is_default_class(s))
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

pub fn render(p: &ScalePlan) -> String {
    let mut s = format!(
        "Scale plan for statefulset {}/{}: {} → {} replicas ({} step(s): {})\n",
        p.namespace,
        ui::bold(&p.statefulset),
        p.from,
        p.to,
        p.steps.len(),
        p.steps
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" → ")
    );
    let verb = if p.direction == "up" {
        "create"
    } else {
        "remove"
    };
    for pod in &p.pods {
        s.push_str(&format!("  {verb} {}\n", pod.pod));
        for f in &pod.pvcs {
            let size = f.capacity.as_deref().unwrap_or("");
            let line = match f.action.as_str() {
                "reattached" => format!("PVC {} already exists ({size}, {}): reattached with its old data", f.name, f.phase.as_deref().unwrap_or("?")),
                "created" => format!("PVC {} will be created (StorageClass {})", f.name, f.storage_class.as_deref().unwrap_or("default")),
                "kept" => format!("PVC {} is kept ({size}): orphaned until a scale-up reattaches it or `prune-pvcs` deletes it", f.name),
                _ => format!(
                    "PVC {} is {} ({size}); its PV's reclaim policy is {}",
                    f.name,
                    ui::red("DELETED"),
                    match f.reclaim_policy.as_deref() {
                        Some("Delete") => "Delete: the data is destroyed".to_string(),
                        Some("Retain") => "Retain: the PV stays Released and keeps the data".to_string(),
                        Some(o) => o.to_string(),
                        None => "unknown".to_string(),
                    }
                ),
            };
            s.push_str(&format!("      {line}\n"));
        }
    }
    for e in &p.errors {
        s.push_str(&format!("{} {e}\n", ui::red("error:")));
    }
    for w in &p.warnings {
        let tag = if w.starts_with("DATA LOSS") {
            ui::red("warning:")
        } else {
            ui::yellow("warning:")
        };
        s.push_str(&format!("{tag} {w}\n"));
    }
    s
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
    ) -> Inputs<'a> {
        let _ = f;
        Inputs {
            sts,
            pvcs,
            pvs: Some(pvs),
            classes: Some(classes),
            now: fixtures::now(),
        }
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
        assert!(render(&p).contains("PVC redis-data-redis-1 is kept (10Gi)"));
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
        let text = render(&p);
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
