//! The recover engine: reads the evidence (nodes, their Leases, VolumeAttachments, the
//! pods on lost nodes), fences, re-checks, then taints or force-deletes and waits for
//! each pod to come back on a live node. Decisions are in `plan::recover`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Event, EventSource, Node, ObjectReference, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::ResourceExt;
use serde_json::json;

use super::interrupt::Interrupt;
use super::watch::{Poll, Tracker, WaitEnd};
use super::{explain, lease, read};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::model::node::{self as nodes, out_of_service_taint, OUT_OF_SERVICE_TAINT};
use crate::plan::recover::Method;
use crate::plan::recover::{
    still_silent, untaint_refusal, NodeEvidence, RecoverPlan, RecoverReport, RecoveredPod,
    FORCE_DETACH_AFTER,
};
use crate::render;
use crate::ui::{self, Progress};

pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a fence command may run.
const FENCE_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Gathered {
    pub sts: StatefulSet,
    pub pods: Vec<Pod>,
    pub nodes: BTreeMap<String, Option<Node>>,
    pub leases: BTreeMap<String, Lease>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub attachments: Vec<VolumeAttachment>,
    pub node_pods: Vec<Pod>,
    pub node_pods_readable: bool,
    pub server: (u32, u32),
    pub warnings: Vec<String>,
}

pub async fn server_version(ctx: &Ctx) -> Result<(u32, u32)> {
    let (major, minor, _) = super::read::server_release(ctx).await?;
    Ok((major, minor))
}

async fn get_node(ctx: &Ctx, name: &str) -> Result<Option<Node>> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    api.get_opt(name)
        .await
        .map_err(|e| ctx.err_in("get", "nodes", Some(name), "(cluster)", e))
}

/// The node's Lease; None when missing or not readable (the evidence then rests on
/// the Ready heartbeat, and the plan says so).
async fn get_node_lease(ctx: &Ctx, name: &str) -> std::result::Result<Option<Lease>, String> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), NODE_LEASE_NAMESPACE);
    api.get_opt(name).await.map_err(|e| e.to_string())
}

pub async fn gather(ctx: &Ctx, name: &str) -> Result<Gathered> {
    let sts = ctx.get_statefulset(name).await?;
    let pods = ctx.statefulset_pods(&sts).await?;
    let claims = ctx.namespace_pvcs().await?;
    let va_api: Api<VolumeAttachment> = Api::all(ctx.client.clone());
    let attachments = read::list_all(&va_api, &ListParams::default())
        .await
        .map_err(|e| ctx.err_in("list", "volumeattachments", None, "(cluster)", e))?;
    let volumes: Vec<&str> = claims.iter().filter_map(model::pvc_volume).collect();
    let mut names: Vec<String> = pods
        .iter()
        .filter_map(|p| model::node(p).map(str::to_string))
        .chain(
            attachments
                .iter()
                .filter(|va| nodes::attachment_volume(va).is_some_and(|v| volumes.contains(&v)))
                .map(|va| nodes::attachment_node(va).to_string()),
        )
        .collect();
    names.sort();
    names.dedup();
    let mut node_map = BTreeMap::new();
    let mut leases = BTreeMap::new();
    let mut warnings = vec![];
    let mut node_pods = vec![];
    let mut node_pods_readable = true;
    let pod_api: Api<Pod> = Api::all(ctx.client.clone());
    for n in names {
        let node = get_node(ctx, &n).await?;
        if node.as_ref().is_some_and(|n| !nodes::is_ready(n)) {
            match get_node_lease(ctx, &n).await {
                Ok(Some(l)) => {
                    leases.insert(n.clone(), l);
                }
                Ok(None) => warnings.push(format!("node \"{n}\" has no Lease in {NODE_LEASE_NAMESPACE}: the evidence rests on its Ready heartbeat")),
                // The Lease is the kubelet's heartbeat: without it, silence is not proven.
                Err(e) => return Err(Error::stopped(format!(
                    "cannot read the Lease of node \"{n}\" in {NODE_LEASE_NAMESPACE} ({e}): without it the node's silence is not proven; grant leases get there (deploy/rbac-recover.yaml); nothing was written"
                ))),
            }
            let lp = ListParams::default().fields(&format!("spec.nodeName={n}"));
            match read::list_all(&pod_api, &lp).await {
                Ok(on_node) => node_pods.extend(on_node),
                Err(kube::Error::Api(s)) if s.code == 403 => node_pods_readable = false,
                Err(e) => return Err(ctx.err_in("list", "pods", None, read::ALL_NAMESPACES, e)),
            }
        }
        node_map.insert(n, node);
    }
    Ok(Gathered {
        server: server_version(ctx).await?,
        sts,
        pods,
        nodes: node_map,
        leases,
        claims,
        attachments,
        node_pods,
        node_pods_readable,
        warnings,
    })
}

/// Runs the fence command for `node`; Ok(its output) when it exits 0.
pub async fn fence(cmd: &str, node: &str, namespace: &str) -> Result<String> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("NODE_NAME", node)
        .env("NAMESPACE", namespace)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = match tokio::time::timeout(FENCE_TIMEOUT, c.output()).await {
        Err(_) => {
            return Err(Error::stopped(format!(
                "--fence-cmd did not finish within {}s for node \"{node}\": the node is not confirmed off; nothing was written",
                FENCE_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(Error::stopped(format!(
                "--fence-cmd could not start ({e}): node \"{node}\" is not confirmed off; nothing was written"
            )))
        }
        Ok(Ok(o)) => o,
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string();
    if out.status.success() {
        return Ok(text);
    }
    Err(Error::stopped(format!(
        "--fence-cmd exited {} for node \"{node}\": the node is not confirmed off; nothing was written{}",
        out.status
            .code()
            .map_or_else(|| "by signal".into(), |c| c.to_string()),
        if text.is_empty() {
            String::new()
        } else {
            format!("\n{text}")
        }
    )))
}

/// Re-reads each lost node, its Lease and each stranded pod just before the first
/// write; stops with nothing written when anything moved. Returns the fresh nodes.
pub async fn recheck(ctx: &Ctx, plan: &RecoverPlan) -> Result<BTreeMap<String, Node>> {
    let mut fresh = BTreeMap::new();
    for before in plan
        .nodes
        .iter()
        .filter(|n| plan.lost_nodes().contains(&n.name))
    {
        let node = get_node(ctx, &before.name).await?;
        let lease = get_node_lease(ctx, &before.name).await.map_err(|e| {
            Error::stopped(format!(
                "cannot read the Lease of node \"{}\" again ({e}): the re-check cannot prove it is still silent; nothing was written",
                before.name
            ))
        })?;
        if let Err(why) = still_silent(before, node.as_ref(), lease.as_ref()) {
            return Err(Error::stopped(format!(
                "{why}: it came back between the plan and now; nothing was written"
            )));
        }
        fresh.insert(before.name.clone(), node.expect("checked by still_silent"));
    }
    let api = ctx.api::<Pod>();
    for p in &plan.pods {
        let now = api
            .get_opt(&p.name)
            .await
            .map_err(|e| ctx.err("get", "pods", Some(&p.name), e))?;
        if let Some(now) = now.filter(|n| n.uid().as_deref() != Some(p.uid.as_str())) {
            return Err(Error::stopped(format!(
                "pod \"{}\" was replaced since the plan (uid {} → {}): nothing was written; re-run to see the new state",
                p.name,
                p.uid,
                now.uid().unwrap_or_default()
            )));
        }
    }
    Ok(fresh)
}

/// Adds the out-of-service taint, guarded by the node's resourceVersion; on a conflict
/// the node is read again and must still be silent.
async fn taint(ctx: &Ctx, mut node: Node, before: &NodeEvidence) -> Result<()> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let name = node.name_any();
    for _ in 0..5 {
        if nodes::out_of_service(&node) {
            return Ok(());
        }
        let mut taints = nodes::taints(&node).to_vec();
        taints.push(out_of_service_taint());
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        ctx.may_write()?;
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                node = get_node(ctx, &name).await?.ok_or_else(|| {
                    Error::stopped(format!("node \"{name}\" was deleted while being tainted"))
                })?;
                let lease = get_node_lease(ctx, &name).await.map_err(|e| {
                    Error::stopped(format!(
                        "cannot read the Lease of node \"{name}\" again ({e}): not tainted"
                    ))
                })?;
                if let Err(why) = still_silent(before, Some(&node), lease.as_ref()) {
                    return Err(Error::stopped(format!("{why}: not tainted")));
                }
            }
            Err(e) => return Err(ctx.err_in("patch", "nodes", Some(&name), "(cluster)", e)),
        }
    }
    Err(Error::Conflict {
        object: format!("node \"{name}\""),
        detail: "it kept changing while the taint was added".into(),
    })
}

/// Deletes the pod with grace period 0, only if it is still the one planned (uid).
async fn force_delete(ctx: &Ctx, name: &str, uid: &str) -> Result<()> {
    ctx.may_write()?;
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match ctx.api::<Pod>().delete(name, &dp).await {
        Ok(_) => Ok(()),
        // Gone already (the control plane was first), or replaced: nothing to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(ctx.err("delete", "pods", Some(name), e)),
    }
}

async fn delete_attachment(ctx: &Ctx, va: &VolumeAttachment) -> Result<()> {
    ctx.may_write()?;
    let api: Api<VolumeAttachment> = Api::all(ctx.client.clone());
    let name = va.name_any();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: va.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(ctx.err_in("delete", "volumeattachments", Some(&name), "(cluster)", e)),
    }
}

/// Records what was done as an Event on the StatefulSet (best effort: the work is done
/// or about to be; a missing Event must not undo it).
pub async fn record_event(ctx: &Ctx, sts: &StatefulSet, type_: &str, reason: &str, message: &str) {
    let now = Timestamp::now();
    let ev = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", sts.name_any())),
            namespace: Some(ctx.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("StatefulSet".into()),
            name: Some(sts.name_any()),
            namespace: Some(ctx.namespace.clone()),
            uid: sts.uid(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.chars().take(1000).collect()),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some("sts-safe".into()),
            host: None,
        }),
        reporting_component: Some("sts-safe".into()),
        reporting_instance: Some(
            hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown-host".into()),
        ),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: None::<MicroTime>,
        count: Some(1),
        ..Default::default()
    };
    if let Err(e) = ctx.api::<Event>().create(&PostParams::default(), &ev).await {
        render::note(format!(
            "warning: could not record the Event on statefulset \"{}\": {e}",
            sts.name_any()
        ));
    }
}

pub struct RecoverOptions {
    pub timeout: Duration,
    pub fenced_by: String,
}

/// Acts on the plan (after fencing and the re-check) and waits for every pod.
pub async fn execute(
    ctx: &Ctx,
    g: Gathered,
    plan: RecoverPlan,
    opts: &RecoverOptions,
) -> Result<i32> {
    let fresh = recheck(ctx, &plan).await?;
    let op = lease::operation(ctx).await;
    let evidence: Vec<String> = plan
        .nodes
        .iter()
        .filter(|n| plan.lost_nodes().contains(&n.name))
        .map(|n| {
            format!(
                "node {} Ready={} since {}, last heard {}s ago, lease renewed {}",
                n.name,
                n.ready,
                n.ready_since.as_deref().unwrap_or("?"),
                n.silent_seconds.unwrap_or(-1),
                n.lease_renewed.as_deref().unwrap_or("never")
            )
        })
        .collect();
    let pods: Vec<&str> = plan.pods.iter().map(|p| p.name.as_str()).collect();
    record_event(
        ctx,
        &g.sts,
        "Warning",
        "Recovering",
        &format!(
            "sts-safe recover by {} ({}): pods [{}] on lost node(s) {}; evidence: {}; method {}; fenced by {}",
            op.user,
            op.host,
            pods.join(", "),
            plan.lost_nodes().join(", "),
            evidence.join("; "),
            plan.method.as_str(),
            opts.fenced_by
        ),
    )
    .await;
    let started = Instant::now();
    let mut tainted = vec![];
    for n in plan.to_taint() {
        let before = plan
            .nodes
            .iter()
            .find(|e| e.name == n)
            .expect("planned node");
        taint(ctx, fresh[&n].clone(), before).await?;
        render::note(format!(
            "tainted node {n} {OUT_OF_SERVICE_TAINT}=nodeshutdown:NoExecute"
        ));
        tainted.push(n);
    }
    let deleted_at = Instant::now();
    for p in &plan.pods {
        force_delete(ctx, &p.name, &p.uid).await?;
        render::note(format!(
            "deleted pod {} (uid {}) from node {}",
            p.name, p.uid, p.node
        ));
    }
    let mut tracker = Tracker::start_with_attachments(ctx, &g.sts).await?;
    let mut deleted_attachments = vec![];
    if plan.delete_attachments && plan.method == Method::ForceDelete {
        let lost = plan.lost_nodes();
        let volumes: Vec<String> = plan
            .pods
            .iter()
            .flat_map(|p| p.volumes.iter().filter_map(|v| v.volume.clone()))
            .chain(plan.pending.iter().map(|p| p.volume.clone()))
            .collect();
        for va in tracker.attachments() {
            let on_lost = lost.iter().any(|n| n == nodes::attachment_node(&va));
            if on_lost
                && nodes::attachment_volume(&va).is_some_and(|v| volumes.iter().any(|w| w == v))
            {
                delete_attachment(ctx, &va).await?;
                render::note(format!(
                    "deleted VolumeAttachment {} (volume {} on node {}) by hand (--delete-attachments)",
                    va.name_any(),
                    nodes::attachment_volume(&va).unwrap_or("?"),
                    nodes::attachment_node(&va)
                ));
                deleted_attachments.push(va.name_any());
            }
        }
    }
    let mut recovered = vec![];
    let waits: Vec<(String, Option<String>, String, Vec<String>)> = plan
        .pods
        .iter()
        .map(|p| {
            let vols = p.volumes.iter().filter_map(|v| v.volume.clone()).collect();
            (p.name.clone(), Some(p.uid.clone()), p.node.clone(), vols)
        })
        .chain(plan.pending.iter().map(|p| {
            let vols = plan
                .pending
                .iter()
                .filter(|q| q.name == p.name)
                .map(|q| q.volume.clone())
                .collect();
            (p.name.clone(), None, p.node.clone(), vols)
        }))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let progress = Progress::new(ctx);
    let mut interrupt = Interrupt::install();
    for (name, old_uid, lost, volumes) in waits {
        if !seen.insert(name.clone()) {
            continue;
        }
        let line = progress.line(name.clone());
        let deadline = Instant::now() + opts.timeout;
        let method = plan.method;
        let result = tracker
            .wait_for(deadline, &mut interrupt, |t| {
                let (done, msg) = replacement_state(
                    t,
                    &volumes,
                    &name,
                    old_uid.as_deref(),
                    &lost,
                    method,
                    deleted_at,
                );
                if done.is_none() {
                    line.set(msg);
                }
                match done {
                    Some(p) => Poll::Done(p),
                    None => Poll::Pending(Some(Duration::from_secs(1))),
                }
            })
            .await;
        match result {
            Ok(p) => {
                let secs = started.elapsed().as_secs_f64();
                line.finish(format!(
                    "Ready on node {} after {secs:.1}s",
                    model::node(&p).unwrap_or("?")
                ));
                recovered.push(RecoveredPod {
                    name: name.clone(),
                    old_uid: old_uid.clone(),
                    old_node: lost.clone(),
                    new_uid: p.uid().unwrap_or_default(),
                    new_node: model::node(&p).unwrap_or_default().to_string(),
                    seconds: (secs * 10.0).round() / 10.0,
                });
            }
            Err(WaitEnd::Interrupted) => {
                return Err(Error::Interrupted(format!(
                    "interrupted while {name} comes back (the writes are done; the control plane goes on); re-run the same command to keep watching"
                )))
            }
            Err(WaitEnd::Timeout) => {
                let pod = tracker.pods().into_values().find(|p| p.name_any() == name);
                let lines = explain::pod_failure(ctx, &name, pod.as_ref()).await;
                return Err(Error::stopped(format!(
                    "{name} did not come back within {}s:\n  {}",
                    opts.timeout.as_secs(),
                    lines.join("\n  ")
                )));
            }
        }
    }
    drop(progress);
    let report = RecoverReport::new(
        &plan,
        opts.fenced_by.clone(),
        tainted,
        deleted_attachments,
        recovered,
    );
    record_event(
        ctx,
        &g.sts,
        "Normal",
        "Recovered",
        &format!(
            "sts-safe recover by {}: {}",
            op.user,
            report
                .pods
                .iter()
                .map(|p| format!(
                    "{} {} → {} in {}s",
                    p.name, p.old_node, p.new_node, p.seconds
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .await;
    render::show(ctx.output, &report)?;
    Ok(0)
}

/// Where pod `name` is on its way back: Some(pod) once re-created on another node than
/// `lost`, its volumes attached there, and Ready; and the progress text.
fn replacement_state(
    t: &Tracker,
    volumes: &[String],
    name: &str,
    old_uid: Option<&str>,
    lost: &str,
    method: Method,
    deleted_at: Instant,
) -> (Option<Pod>, String) {
    let pod = t.pods().into_values().find(|p| p.name_any() == name);
    let attachments = t.attachments();
    let on = |node: &str| -> Vec<&VolumeAttachment> {
        attachments
            .iter()
            .filter(|va| nodes::attachment_node(va) == node)
            .collect()
    };
    let still_on_lost: Vec<&VolumeAttachment> = on(lost)
        .into_iter()
        .filter(|va| nodes::is_attached(va))
        .filter(|va| nodes::attachment_volume(va).is_some_and(|v| volumes.iter().any(|w| w == v)))
        .collect();
    let replaced = |p: &Pod| old_uid.is_none_or(|u| p.uid().as_deref() != Some(u));
    match pod {
        Some(p) if old_uid.is_some() && p.uid().as_deref() == old_uid => (
            None,
            format!("waiting for the old pod to be deleted from {lost}"),
        ),
        // Ready on another node: its volumes are attached there, whatever objects remain.
        Some(p)
            if replaced(&p)
                && model::is_ready(&p)
                && model::node(&p).is_some_and(|n| n != lost) =>
        {
            (Some(p), "Ready".into())
        }
        _ if !still_on_lost.is_empty() => {
            let waited = deleted_at.elapsed();
            let msg = match method {
                Method::ForceDelete => {
                    // In steps of 10 s, so a log without a terminal gets a line per step.
                    let left = FORCE_DETACH_AFTER
                        .saturating_sub(waited)
                        .as_secs()
                        .div_ceil(10)
                        * 10;
                    format!(
                        "volume still attached to {lost}: the attach/detach controller force-detaches it in about {}m{:02}s (6m after the pod is gone, while {lost} is not Ready)",
                        left / 60,
                        left % 60
                    )
                }
                _ => format!("waiting for the volume to detach from {lost}"),
            };
            (None, msg)
        }
        None => (
            None,
            "waiting for the StatefulSet controller to re-create it".into(),
        ),
        Some(p) => match model::node(&p) {
            None => (None, "waiting to be scheduled".into()),
            Some(n) if n == lost => (None, format!("still bound to {lost}")),
            Some(n) if !model::is_ready(&p) => {
                let attached = on(n)
                    .into_iter()
                    .filter(|va| nodes::is_attached(va))
                    .filter(|va| {
                        nodes::attachment_volume(va).is_some_and(|v| volumes.iter().any(|w| w == v))
                    })
                    .count();
                (
                    None,
                    format!(
                        "on {n}: {attached} of {} volume(s) attached, starting",
                        volumes.len()
                    ),
                )
            }
            Some(_) => (Some(p), "Ready".into()),
        },
    }
}

/// `recover --untaint NODE`: removes the out-of-service taint once the node is back.
pub async fn untaint(ctx: &Ctx, name: &str, yes: bool, dry_run: bool) -> Result<i32> {
    let node = get_node(ctx, name)
        .await?
        .ok_or_else(|| Error::stopped(format!("node \"{name}\" not found: nothing to untaint")))?;
    let lease = get_node_lease(ctx, name).await.ok().flatten();
    if !nodes::out_of_service(&node) {
        render::note(format!(
            "node \"{name}\" has no {OUT_OF_SERVICE_TAINT} taint: nothing to do"
        ));
        return Ok(0);
    }
    if let Some(why) = untaint_refusal(name, &node, lease.as_ref(), Timestamp::now()) {
        return Err(Error::stopped(why));
    }
    render::note(format!(
        "node \"{name}\" is back and Ready: removing its {OUT_OF_SERVICE_TAINT} taint"
    ));
    if dry_run {
        return Ok(0);
    }
    ui::confirm(
        ctx,
        yes,
        &format!("Remove the out-of-service taint from node \"{name}\"?"),
    )?;
    let taints: Vec<_> = nodes::taints(&node)
        .iter()
        .filter(|t| t.key != OUT_OF_SERVICE_TAINT)
        .cloned()
        .collect();
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"taints": taints},
    });
    let api: Api<Node> = Api::all(ctx.client.clone());
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            render::note(format!(
                "removed the {OUT_OF_SERVICE_TAINT} taint from node \"{name}\""
            ));
            Ok(0)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Conflict {
            object: format!("node \"{name}\""),
            detail: "it changed while the taint was removed".into(),
        }),
        Err(e) => Err(ctx.err_in("patch", "nodes", Some(name), "(cluster)", e)),
    }
}
