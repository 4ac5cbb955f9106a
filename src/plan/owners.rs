//! Other owners of a StatefulSet: a controller that reconciles it (an ownerReference with
//! `controller: true`, e.g. a database operator's custom resource) fights every write, so
//! writes are refused unless `--allow-owned`; GitOps tools (Argo CD, Flux, Helm) re-apply
//! their template on the next sync, so every write plan warns about them.

use k8s_openapi::api::apps::v1::StatefulSet;

/// "PostgresCluster/main (postgres-operator.crunchydata.com/v1beta1)" when a controller
/// owns the StatefulSet.
pub fn controller_owner(sts: &StatefulSet) -> Option<String> {
    let refs = sts.metadata.owner_references.as_ref()?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .map(|r| format!("{}/{} ({})", r.kind, r.name, r.api_version))
}

/// The refusal for an owned StatefulSet.
pub fn owned_message(sts: &str, owner: &str) -> String {
    format!(
        "statefulset \"{sts}\" is controlled by {owner}, which reconciles it and will undo or \
         fight this change; make the change through {owner} instead, or pass --allow-owned if \
         you know it leaves this alone"
    )
}

/// What syncs this StatefulSet from elsewhere, by its own markers: labels, annotations and
/// managedFields managers.
pub fn gitops_managers(sts: &StatefulSet) -> Vec<&'static str> {
    let labels = sts.metadata.labels.clone().unwrap_or_default();
    let annotations = sts.metadata.annotations.clone().unwrap_or_default();
    let managers: Vec<String> = sts
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    let has_label = |k: &str| labels.contains_key(k);
    let has_annotation = |k: &str| annotations.contains_key(k);
    let managed_by = |m: &str| managers.iter().any(|x| x == m);
    let mut out = vec![];
    if has_label("argocd.argoproj.io/instance")
        || has_annotation("argocd.argoproj.io/tracking-id")
        || managed_by("argocd-controller")
        || managed_by("argocd-application-controller")
    {
        out.push("Argo CD");
    }
    if has_label("kustomize.toolkit.fluxcd.io/name")
        || has_label("helm.toolkit.fluxcd.io/name")
        || managed_by("kustomize-controller")
        || managed_by("helm-controller")
    {
        out.push("Flux");
    }
    if labels
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        == Some("Helm")
        || has_annotation("meta.helm.sh/release-name")
        || managed_by("helm")
    {
        out.push("Helm");
    }
    out
}

/// The warning every write plan carries for a GitOps-managed StatefulSet; `what` is the
/// change ("the template", "replicas").
pub fn gitops_warning(sts: &StatefulSet, what: &str) -> Option<String> {
    let tools = gitops_managers(sts);
    if tools.is_empty() {
        return None;
    }
    Some(format!(
        "managed by {}: the next sync may revert {what}; make the same change in the source it \
         syncs from (Git repository, chart values), or pause its auto-sync/self-heal while this runs",
        tools.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(json: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_controller_owner_is_named() {
        let s = sts(
            serde_json::json!({"metadata": {"name": "db", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-a-controller", "uid": "1"},
                {"apiVersion": "example.com/v1", "kind": "Database", "name": "main", "uid": "2", "controller": true}
            ]}}),
        );
        assert_eq!(
            controller_owner(&s).as_deref(),
            Some("Database/main (example.com/v1)")
        );
        let free = sts(
            serde_json::json!({"metadata": {"name": "db", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}
            ]}}),
        );
        assert_eq!(controller_owner(&free), None);
        assert!(owned_message("db", "Database/main (example.com/v1)").contains("--allow-owned"));
    }

    #[test]
    fn gitops_markers_are_recognised() {
        let argo = sts(serde_json::json!({"metadata": {"name": "db",
            "labels": {"argocd.argoproj.io/instance": "shop"}}}));
        assert_eq!(gitops_managers(&argo), ["Argo CD"]);
        let flux_helm = sts(serde_json::json!({"metadata": {"name": "db",
            "labels": {"helm.toolkit.fluxcd.io/name": "db", "app.kubernetes.io/managed-by": "Helm"}}}));
        assert_eq!(gitops_managers(&flux_helm), ["Flux", "Helm"]);
        let by_manager = sts(serde_json::json!({"metadata": {"name": "db",
            "managedFields": [{"manager": "kustomize-controller", "operation": "Apply"}]}}));
        assert_eq!(gitops_managers(&by_manager), ["Flux"]);
        let w = gitops_warning(&argo, "the template").unwrap();
        assert!(
            w.starts_with("managed by Argo CD: the next sync may revert the template"),
            "{w}"
        );
        assert_eq!(
            gitops_warning(&sts(serde_json::json!({"metadata": {"name": "db"}})), "x"),
            None
        );
    }
}
