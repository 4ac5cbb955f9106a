//! RBAC preflight: ask the API server (SelfSubjectAccessReview) for every verb a run
//! will need before the first write, so it never stops half-way for lack of permission.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::context::Ctx;
use crate::error::{Error, Result};

/// (verb, API group, resource)
pub type Need = (&'static str, &'static str, &'static str);

pub async fn require(ctx: &Ctx, needs: &[Need]) -> Result<()> {
    let api: Api<SelfSubjectAccessReview> = Api::all(ctx.client.clone());
    let reviews = needs.iter().map(|(verb, group, resource)| {
        // "pods/eviction": a subresource.
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (*resource, None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    // Cluster-scoped resources are asked without a namespace, so a
                    // namespaced RoleBinding cannot seem to grant them.
                    namespace: (!CLUSTER_SCOPED.contains(&resource)).then(|| ctx.namespace.clone()),
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    subresource,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api = api.clone();
        async move { api.create(&PostParams::default(), &review).await }
    });
    let answers = futures::future::join_all(reviews).await;
    for ((verb, _, resource), answer) in needs.iter().zip(answers) {
        let review = answer.map_err(|e| ctx.err("create", "selfsubjectaccessreviews", None, e))?;
        let allowed = review.status.as_ref().is_some_and(|s| s.allowed);
        if !allowed {
            return Err(Error::Forbidden {
                user: "(current user)".into(),
                verb: verb.to_string(),
                resource: resource.to_string(),
                namespace: ctx.namespace.clone(),
                context: ctx.target.context.clone(),
            });
        }
    }
    Ok(())
}

/// Resources without a namespace among those the commands use.
const CLUSTER_SCOPED: &[&str] = &["nodes", "volumeattachments"];

pub const CANARY: &[Need] = &[
    ("get", "apps", "statefulsets"),
    ("patch", "apps", "statefulsets"),
    ("watch", "apps", "statefulsets"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("delete", "", "pods"),
    ("get", "apps", "controllerrevisions"),
    ("get", "coordination.k8s.io", "leases"),
    ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
    ("delete", "coordination.k8s.io", "leases"),
];

/// prune-pvcs in one namespace: the re-checks, the hold (patch) and the delete.
pub const PRUNE: &[Need] = &[
    ("get", "apps", "statefulsets"),
    ("list", "", "pods"),
    ("patch", "", "persistentvolumeclaims"),
    ("delete", "", "persistentvolumeclaims"),
    ("get", "coordination.k8s.io", "leases"),
    ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
    ("delete", "coordination.k8s.io", "leases"),
];

pub const SCALE: &[Need] = &[
    ("get", "apps", "statefulsets"),
    ("patch", "apps", "statefulsets"),
    ("watch", "apps", "statefulsets"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("list", "", "persistentvolumeclaims"),
    ("get", "coordination.k8s.io", "leases"),
    ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
    ("delete", "coordination.k8s.io", "leases"),
];

/// resize-pvcs: the claims (patch, watch), their Events, the re-create (delete and
/// create the StatefulSet, its copy in a ConfigMap), the adoption check and the lock.
pub const RESIZE: &[Need] = &[
    ("get", "apps", "statefulsets"),
    ("list", "apps", "statefulsets"),
    ("watch", "apps", "statefulsets"),
    ("delete", "apps", "statefulsets"),
    ("create", "apps", "statefulsets"),
    ("patch", "apps", "statefulsets"),
    ("list", "apps", "controllerrevisions"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("get", "", "persistentvolumeclaims"),
    ("list", "", "persistentvolumeclaims"),
    ("patch", "", "persistentvolumeclaims"),
    ("watch", "", "persistentvolumeclaims"),
    ("list", "", "events"),
    ("watch", "", "events"),
    ("list", "", "resourcequotas"),
    ("get", "", "configmaps"),
    ("create", "", "configmaps"),
    ("update", "", "configmaps"),
    ("delete", "", "configmaps"),
    ("get", "coordination.k8s.io", "leases"),
    ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
    ("delete", "coordination.k8s.io", "leases"),
];

/// resize-pvcs --restart-pods, besides [`RESIZE`].
pub const EVICT: &[Need] = &[("create", "", "pods/eviction")];

/// recover: the evidence (nodes, VolumeAttachments), the pods' delete and watch, the
/// Events it records and the lock. Node Leases and the pods of other namespaces on a
/// lost node are read when allowed (the plan says when they could not be).
pub const RECOVER: &[Need] = &[
    ("get", "apps", "statefulsets"),
    ("watch", "apps", "statefulsets"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("delete", "", "pods"),
    ("list", "", "persistentvolumeclaims"),
    ("get", "", "nodes"),
    ("list", "storage.k8s.io", "volumeattachments"),
    ("watch", "storage.k8s.io", "volumeattachments"),
    ("create", "", "events"),
    ("get", "coordination.k8s.io", "leases"),
    ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
    ("delete", "coordination.k8s.io", "leases"),
];

/// recover with the out-of-service taint, besides [`RECOVER`].
pub const TAINT: &[Need] = &[("patch", "", "nodes")];

/// recover --delete-attachments, besides [`RECOVER`].
pub const DETACH: &[Need] = &[("delete", "storage.k8s.io", "volumeattachments")];
