//! Reads: paginated lists (in the namespace or, with `-A`, across all of them) and gets
//! whose errors name the object, namespace and context.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Node, PersistentVolumeClaim, Pod, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::de::DeserializeOwned;

use crate::context::Ctx;
use crate::error::{Error, Request, Result};
use crate::model;
use crate::plan::doctor::DoctorInputs;
use crate::plan::recreate::record_name;

pub const PAGE_SIZE: u32 = 500;

/// Stands for the namespace in messages about cluster-wide requests.
pub const ALL_NAMESPACES: &str = "(all namespaces)";

/// Lists every object, 500 per request, following `continue` tokens.
pub async fn list_all<K>(api: &Api<K>, lp: &ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut lp = lp.clone().limit(PAGE_SIZE);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

impl Ctx {
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Reads the StatefulSet, telling "no such namespace" apart from "no such StatefulSet".
    pub async fn get_statefulset(&self, name: &str) -> Result<StatefulSet> {
        match self.api::<StatefulSet>().get(name).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let mapped = self.err("get", "statefulsets", Some(name), e);
                if matches!(mapped, Error::NotFound { .. }) {
                    if !self.namespace_exists().await {
                        return Err(Error::NamespaceNotFound {
                            namespace: self.namespace.clone(),
                            context: self.target.context.clone(),
                        });
                    }
                    // Gone in the middle of a resize: its copy waits in the record.
                    let record = record_name(name);
                    if let Ok(Some(_)) = self.api::<ConfigMap>().get_opt(&record).await {
                        return Err(Error::Aborted {
                            cause: Box::new(mapped),
                            next: format!(
                                "an interrupted resize-pvcs keeps its copy in configmap \"{record}\": create it again with `kubectl sts-safe resize-pvcs {name} -n {} --resume`",
                                self.namespace
                            ),
                        });
                    }
                }
                Err(mapped)
            }
        }
    }

    /// False only when the API says the namespace does not exist.
    pub async fn namespace_exists(&self) -> bool {
        let api: Api<Namespace> = Api::all(self.client.clone());
        !matches!(api.get(&self.namespace).await, Err(kube::Error::Api(s)) if s.code == 404)
    }

    /// Maps a kube error on a request in `namespace` (another than the context's, or
    /// [`ALL_NAMESPACES`]).
    pub fn err_in(
        &self,
        verb: &str,
        resource: &str,
        name: Option<&str>,
        namespace: &str,
        e: kube::Error,
    ) -> Error {
        self.target.map(
            Request {
                verb,
                resource,
                name,
                namespace,
            },
            e,
        )
    }

    /// One paginated list of `K` in the namespace, or in every namespace (`-A`).
    pub async fn list_scoped<K>(&self, all: bool, resource: &str, lp: &ListParams) -> Result<Vec<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        <K as Resource>::DynamicType: Default,
    {
        if !all {
            return self.list(resource, lp).await;
        }
        list_all(&Api::<K>::all(self.client.clone()), lp)
            .await
            .map_err(|e| self.err_in("list", resource, None, ALL_NAMESPACES, e))
    }

    pub async fn list<K>(&self, resource: &str, lp: &ListParams) -> Result<Vec<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        <K as Resource>::DynamicType: Default,
    {
        list_all(&self.api::<K>(), lp)
            .await
            .map_err(|e| self.err("list", resource, None, e))
    }

    /// The StatefulSet's pods: selected by its labels and named `<sts>-<ordinal>`.
    pub async fn statefulset_pods(&self, sts: &StatefulSet) -> Result<Vec<Pod>> {
        let name = model::name(sts);
        let pods: Vec<Pod> = self
            .list("pods", &ListParams::default().labels(&selector_string(sts)))
            .await?;
        Ok(pods
            .into_iter()
            .filter(|p| model::ordinal_of(&name, &model::name(p)).is_some())
            .collect())
    }

    pub async fn namespace_pvcs(&self) -> Result<Vec<PersistentVolumeClaim>> {
        self.list("persistentvolumeclaims", &ListParams::default())
            .await
    }
}

/// `matchLabels` as a label selector string (`a=b,c=d`).
pub fn selector_string(sts: &StatefulSet) -> String {
    model::selector_labels(sts)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Ctx {
    /// PodDisruptionBudgets from policy/v1, falling back to policy/v1beta1 on servers
    /// older than 1.21 (same fields for what the plugin reads).
    pub async fn list_pdbs(
        &self,
    ) -> Result<Vec<k8s_openapi::api::policy::v1::PodDisruptionBudget>> {
        self.list_pdbs_scoped(false).await
    }

    /// [`Ctx::list_pdbs`] in the namespace, or in every namespace (`-A`).
    pub async fn list_pdbs_scoped(
        &self,
        all: bool,
    ) -> Result<Vec<k8s_openapi::api::policy::v1::PodDisruptionBudget>> {
        use k8s_openapi::api::policy::v1::PodDisruptionBudget;
        use kube::api::DynamicObject;
        use kube::discovery::ApiResource;
        let ns = if all { ALL_NAMESPACES } else { &self.namespace };
        let fail = |e| self.err_in("list", "poddisruptionbudgets", None, ns, e);
        let v1: Api<PodDisruptionBudget> = if all {
            Api::all(self.client.clone())
        } else {
            self.api()
        };
        match list_all(&v1, &ListParams::default()).await {
            Ok(v) => Ok(v),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let ar = ApiResource {
                    group: "policy".into(),
                    version: "v1beta1".into(),
                    api_version: "policy/v1beta1".into(),
                    kind: "PodDisruptionBudget".into(),
                    plural: "poddisruptionbudgets".into(),
                };
                let api: Api<DynamicObject> = if all {
                    Api::all_with(self.client.clone(), &ar)
                } else {
                    Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
                };
                let items = list_all(&api, &ListParams::default()).await.map_err(fail)?;
                Ok(items
                    .into_iter()
                    .filter_map(|o| {
                        let mut v = serde_json::to_value(o).ok()?;
                        v["apiVersion"] = "policy/v1".into();
                        serde_json::from_value(v).ok()
                    })
                    .collect())
            }
            Err(e) => Err(fail(e)),
        }
    }
}

/// What `doctor`'s checks and the `status` list read: the StatefulSet `only` (a GET) or
/// every StatefulSet, with the objects around them, in the namespace or, with `all`, in
/// every namespace: one list per kind either way, never one per namespace. Leases,
/// StorageClasses and nodes are best effort (an identity may not read them); any other
/// refused list is an error naming the verb, the resource and the scope.
pub async fn doctor_inputs(ctx: &Ctx, all: bool, only: Option<&str>) -> Result<DoctorInputs> {
    let every = ListParams::default();
    let statefulsets = match only {
        Some(n) => vec![ctx.get_statefulset(n).await?],
        None => ctx.list_scoped(all, "statefulsets", &every).await?,
    };
    let classes_api: Api<StorageClass> = Api::all(ctx.client.clone());
    let (pods, pvcs, services, pdbs, events, deployments, classes, leases) = futures::join!(
        ctx.list_scoped::<Pod>(all, "pods", &every),
        ctx.list_scoped::<PersistentVolumeClaim>(all, "persistentvolumeclaims", &every),
        ctx.list_scoped::<Service>(all, "services", &every),
        ctx.list_pdbs_scoped(all),
        ctx.list_scoped::<Event>(all, "events", &every),
        ctx.list_scoped::<Deployment>(all, "deployments", &every),
        list_all(&classes_api, &every),
        ctx.list_scoped::<Lease>(all, "leases", &every),
    );
    let pods = pods?;
    let nodes = if all {
        listed_nodes(ctx, &pods).await
    } else {
        nodes_of(ctx, &pods).await
    };
    Ok(DoctorInputs {
        statefulsets,
        pods,
        pvcs: pvcs?,
        services: services?,
        pdbs: pdbs?,
        events: events?,
        deployments: deployments?,
        // StorageClasses are cluster-scoped: a namespaced identity may not list them.
        storage_classes: classes.ok(),
        // Locks are shown when readable; an identity without leases rights sees none.
        leases: leases.unwrap_or_default(),
        nodes,
    })
}

/// The nodes the pods run on, from one list of every node (for `-A`, where a GET per
/// node would be many requests); best effort, as [`nodes_of`].
async fn listed_nodes(ctx: &Ctx, pods: &[Pod]) -> BTreeMap<String, Node> {
    let used: BTreeSet<&str> = pods.iter().filter_map(model::node).collect();
    if used.is_empty() {
        return BTreeMap::new();
    }
    let api: Api<Node> = Api::all(ctx.client.clone());
    list_all(&api, &ListParams::default())
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|n| used.contains(model::name(n).as_str()))
        .map(|n| (model::name(&n), n))
        .collect()
}

/// The nodes the pods are bound to, by name; best effort: a node this identity may not
/// read (nodes are cluster-scoped) or that is gone is left out, so `status` and
/// `doctor` mark stranded pods when they can and stay quiet otherwise.
pub async fn nodes_of(
    ctx: &Ctx,
    pods: &[k8s_openapi::api::core::v1::Pod],
) -> std::collections::BTreeMap<String, k8s_openapi::api::core::v1::Node> {
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(ctx.client.clone());
    let mut names: Vec<&str> = pods.iter().filter_map(model::node).collect();
    names.sort_unstable();
    names.dedup();
    let reads = names.iter().map(|n| api.get_opt(n));
    names
        .iter()
        .zip(futures::future::join_all(reads).await)
        .filter_map(|(n, r)| Some((n.to_string(), r.ok()??)))
        .collect()
}

fn number(s: &str) -> u32 {
    s.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// The API server's major, minor and patch release (patch from gitVersion, e.g. v1.37.2).
pub async fn server_release(ctx: &Ctx) -> Result<(u32, u32, u32)> {
    let info = ctx
        .client
        .apiserver_version()
        .await
        .map_err(|e| ctx.err("get", "version", None, e))?;
    let patch = info
        .git_version
        .trim_start_matches('v')
        .splitn(3, '.')
        .nth(2)
        .map(number)
        .unwrap_or(0);
    Ok((number(&info.major), number(&info.minor), patch))
}
