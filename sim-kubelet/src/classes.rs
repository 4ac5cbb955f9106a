//! The built-in StorageClasses, and which class a claim uses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use tracing::{debug, info};

use crate::resize::EXPANSION_ANNOTATION;
use crate::storage::{NOBODY_PROVISIONER, SIM_PROVISIONER};
use crate::util::api_code;

pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
pub const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// The StorageClasses ensured at start-up.
pub fn builtin_classes() -> Vec<StorageClass> {
    let (sim, nobody) = (SIM_PROVISIONER, NOBODY_PROVISIONER);
    let default = (DEFAULT_CLASS_ANNOTATION, "true");
    let expansion = |how| (EXPANSION_ANNOTATION, how);
    // name, provisioner, reclaim policy, allowVolumeExpansion, annotations (the default
    // class says "online" so that plans, which read the annotation, can say it too)
    [
        (
            "sim-standard",
            sim,
            "Delete",
            true,
            vec![default, expansion("online")],
        ),
        ("sim-retain", sim, "Retain", true, vec![]),
        ("sim-unprovisioned", nobody, "Delete", true, vec![]),
        (
            "sim-offline",
            sim,
            "Delete",
            true,
            vec![expansion("offline")],
        ),
        ("sim-failing", sim, "Delete", true, vec![expansion("fail")]),
        ("sim-fixed", sim, "Delete", false, vec![]),
    ]
    .into_iter()
    .map(
        |(name, provisioner, reclaim, expandable, annotations)| StorageClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: (!annotations.is_empty()).then(|| {
                    annotations
                        .into_iter()
                        .map(|(k, v): (&str, &str)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>()
                }),
                ..Default::default()
            },
            provisioner: provisioner.into(),
            reclaim_policy: Some(reclaim.into()),
            volume_binding_mode: Some("Immediate".into()),
            allow_volume_expansion: Some(expandable),
            ..Default::default()
        },
    )
    .collect()
}

/// Creates the built-in StorageClasses that do not exist yet; an existing one (from a
/// cluster state made by an older simulator) gets the annotations it lacks.
pub async fn ensure_classes(client: &Client) -> anyhow::Result<()> {
    let api: Api<StorageClass> = Api::all(client.clone());
    for class in builtin_classes() {
        let name = class.name_any();
        match api.create(&PostParams::default(), &class).await {
            Ok(_) => info!(class = %name, "created storage class"),
            Err(e) if api_code(&e) == Some(409) => {
                debug!(class = %name, "storage class exists");
                let patch = serde_json::json!({"metadata": {"annotations": class.annotations()}});
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    debug!(class = %name, error = %e, "annotating storage class failed");
                }
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("creating storage class {name}")))
            }
        }
    }
    Ok(())
}

pub fn is_default_class(class: &StorageClass) -> bool {
    class.annotations().iter().any(|(k, v)| {
        (k == DEFAULT_CLASS_ANNOTATION || k == BETA_DEFAULT_CLASS_ANNOTATION) && v == "true"
    })
}

/// The class a claim asks for, as Kubernetes sees it: the beta annotation, else
/// `spec.storageClassName`; `None` when the claim names no class at all.
pub fn claim_class(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.annotations()
        .get(BETA_CLASS_ANNOTATION)
        .cloned()
        .or_else(|| pvc.spec.as_ref()?.storage_class_name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_classes_and_their_expansion() {
        let classes = builtin_classes();
        let get = |name: &str| classes.iter().find(|c| c.name_any() == name).unwrap();
        assert!(is_default_class(get("sim-standard")));
        assert_eq!(classes.iter().filter(|c| is_default_class(c)).count(), 1);
        for (name, expandable, expansion) in [
            ("sim-standard", true, Some("online")),
            ("sim-offline", true, Some("offline")),
            ("sim-failing", true, Some("fail")),
            ("sim-fixed", false, None),
        ] {
            let c = get(name);
            assert_eq!(c.provisioner, SIM_PROVISIONER, "{name}");
            assert_eq!(c.reclaim_policy.as_deref(), Some("Delete"), "{name}");
            assert_eq!(
                c.volume_binding_mode.as_deref(),
                Some("Immediate"),
                "{name}"
            );
            assert_eq!(c.allow_volume_expansion, Some(expandable), "{name}");
            let got = c
                .annotations()
                .get(EXPANSION_ANNOTATION)
                .map(String::as_str);
            assert_eq!(got, expansion, "{name}");
        }
    }
}
