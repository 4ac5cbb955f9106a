//! `kubectl sts-safe doctor [STS]`: list what the checks need, run them
//! (`plan::doctor::examine`), print the findings.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use crate::cli::DoctorArgs;
use crate::context::Ctx;
use crate::error::{exit, Error, Result};
use crate::exec::read::list_all;
use crate::plan::doctor::{self, DoctorInputs, DoctorReport};
use crate::render;

async fn list_or_empty<K>(ctx: &Ctx, resource: &str) -> Result<Vec<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    ctx.list::<K>(resource, &ListParams::default()).await
}

async fn gather(ctx: &Ctx, only: Option<&str>) -> Result<DoctorInputs> {
    let statefulsets = match only {
        Some(n) => vec![ctx.get_statefulset(n).await?],
        None => list_or_empty(ctx, "statefulsets").await?,
    };
    let classes_api: Api<StorageClass> = Api::all(ctx.client.clone());
    let all_classes = ListParams::default();
    let (pods, pvcs, services, pdbs, events, deployments, classes, leases) = futures::join!(
        list_or_empty::<Pod>(ctx, "pods"),
        list_or_empty::<PersistentVolumeClaim>(ctx, "persistentvolumeclaims"),
        list_or_empty::<Service>(ctx, "services"),
        ctx.list_pdbs(),
        list_or_empty::<Event>(ctx, "events"),
        list_or_empty::<Deployment>(ctx, "deployments"),
        list_all(&classes_api, &all_classes),
        list_or_empty::<Lease>(ctx, "leases"),
    );
    let pods = pods?;
    let nodes = crate::exec::read::nodes_of(ctx, &pods).await;
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

pub async fn run(ctx: &Ctx, args: &DoctorArgs) -> Result<i32> {
    let inputs = gather(ctx, args.name.as_deref()).await?;
    if inputs.statefulsets.is_empty() && args.name.is_none() && !ctx.namespace_exists().await {
        return Err(Error::NamespaceNotFound {
            namespace: ctx.namespace.clone(),
            context: ctx.target.context.clone(),
        });
    }
    let findings = doctor::examine(&inputs, args.name.as_deref(), Timestamp::now());
    let checked: Vec<String> = inputs.statefulsets.iter().map(|s| s.name_any()).collect();
    let report = DoctorReport::new(&ctx.namespace, checked, findings);
    render::show(ctx.output, &report)?;
    Ok(if report.has_errors() {
        exit::STOPPED
    } else {
        exit::OK
    })
}
