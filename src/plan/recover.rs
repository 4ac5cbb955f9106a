//! `recover`: which pods of a StatefulSet are stranded on a lost node, the evidence that
//! the node is gone, the method, and what the control plane will do node-wide. Pure:
//! the inputs are what `exec::recover` read, the output is the plan the operator reads.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::model::node::{self as nodes, OUT_OF_SERVICE_TAINT};
use crate::model::{self, format_age};

/// The attach/detach controller's force-detach timeout (maxWaitForUnmountDuration): it
/// detaches a volume a NotReady node still lists as in use this long after its pod is gone.
pub const FORCE_DETACH_AFTER: Duration = Duration::from_secs(6 * 60);
/// Kubernetes version from which `auto` picks the out-of-service taint (beta, on by default).
pub const OUT_OF_SERVICE_SINCE: (u32, u32) = (1, 26);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Auto,
    OutOfService,
    ForceDelete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::OutOfService => "out-of-service",
            Method::ForceDelete => "force-delete",
        }
    }
}

pub struct RecoverInputs<'a> {
    pub sts: &'a StatefulSet,
    pub pods: &'a [Pod],
    /// Every node a pod of the StatefulSet is bound to (None: the Node object is gone).
    pub nodes: &'a BTreeMap<String, Option<Node>>,
    /// Their Leases in `kube-node-lease`, by node name.
    pub leases: &'a BTreeMap<String, Lease>,
    pub claims: &'a [PersistentVolumeClaim],
    pub attachments: &'a [VolumeAttachment],
    /// Every pod bound to a silent node, in every namespace (what the taint affects).
    pub node_pods: &'a [Pod],
    /// False when this identity may not list pods in every namespace: then the node-wide
    /// list cannot be shown, and the out-of-service taint is refused.
    pub node_pods_readable: bool,
    /// Pods named on the command line (empty: every stranded pod).
    pub named: &'a [String],
    pub now: Timestamp,
    pub min_down: Duration,
    pub method: Method,
    pub server: (u32, u32),
    pub delete_attachments: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeEvidence {
    pub name: String,
    /// Ready condition status: True, False or Unknown.
    pub ready: String,
    pub ready_reason: Option<String>,
    pub ready_since: Option<String>,
    pub last_heartbeat: Option<String>,
    pub lease_renewed: Option<String>,
    /// Seconds since the kubelet was last heard (heartbeat or Lease, the later).
    pub silent_seconds: Option<i64>,
    pub taints: Vec<String>,
    pub out_of_service: bool,
    /// The Lease's and the Node's resourceVersions when read: the re-check before the
    /// first write takes any change of the Lease as the kubelet being back.
    pub lease_resource_version: Option<String>,
    pub node_resource_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeEvidence {
    pub claim: String,
    pub volume: Option<String>,
    /// VolumeAttachments of the volume on the lost node.
    pub attachments: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StrandedPod {
    pub name: String,
    pub uid: String,
    pub node: String,
    /// "Terminating for 3m" or "Running on a node that is not Ready".
    pub state: String,
    pub deletion_age_seconds: Option<i64>,
    pub volumes: Vec<VolumeEvidence>,
}

/// A pod whose recovery is under way (a re-run after an interruption): gone or
/// re-created, while a volume of its is still attached to the lost node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingRecovery {
    pub name: String,
    pub node: String,
    pub volume: String,
    pub attachment: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodePod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// `StatefulSet/redis`, `ReplicaSet/web-5d4…`, or `-`.
    pub owner: String,
    /// It tolerates the out-of-service taint, so the control plane leaves it.
    pub tolerates: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoverPlan {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub statefulset: String,
    pub method: Method,
    pub method_reason: String,
    pub min_down_seconds: u64,
    pub nodes: Vec<NodeEvidence>,
    pub pods: Vec<StrandedPod>,
    pub pending: Vec<PendingRecovery>,
    /// With out-of-service: every pod on the nodes to taint, of every workload.
    pub node_wide: Vec<NodePod>,
    pub risk: String,
    pub steps: Vec<String>,
    pub warnings: Vec<String>,
    pub delete_attachments: bool,
}

impl RecoverPlan {
    pub fn is_noop(&self) -> bool {
        self.pods.is_empty() && self.pending.is_empty()
    }

    /// The lost nodes the writes act on (stranded pods' and pending recoveries').
    pub fn lost_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .pods
            .iter()
            .map(|p| p.node.clone())
            .chain(self.pending.iter().map(|p| p.node.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The nodes this run taints (out-of-service and not tainted yet).
    pub fn to_taint(&self) -> Vec<String> {
        if self.method != Method::OutOfService {
            return vec![];
        }
        let lost = self.lost_nodes();
        self.nodes
            .iter()
            .filter(|n| lost.contains(&n.name) && !n.out_of_service)
            .map(|n| n.name.clone())
            .collect()
    }
}

/// Why a pod is stranded on `node`, or None when it is not (its node is Ready, it has
/// no node, or it is still inside its grace period).
pub fn stranded_state(pod: &Pod, node: Option<&Node>, now: Timestamp) -> Option<String> {
    let node = node?;
    if nodes::is_ready(node) {
        return None;
    }
    match pod.metadata.deletion_timestamp.as_ref() {
        // deletionTimestamp is when the grace period ends.
        Some(t) if t.0 <= now => Some(format!(
            "Terminating for {} past its grace period",
            format_age(now.as_second() - t.0.as_second())
        )),
        Some(_) => None,
        None => Some(format!("{} on a node that is not Ready", model::phase(pod))),
    }
}

pub fn evidence(name: &str, node: &Node, lease: Option<&Lease>, now: Timestamp) -> NodeEvidence {
    let ready = nodes::ready(node);
    let ts = |t: Option<Timestamp>| t.map(|t| t.to_string());
    NodeEvidence {
        name: name.to_string(),
        ready: ready.map_or("Unknown".into(), |c| c.status.clone()),
        ready_reason: ready.and_then(|c| c.reason.clone()),
        ready_since: ts(ready.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))),
        last_heartbeat: ts(ready.and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0))),
        lease_renewed: ts(lease.and_then(nodes::lease_renewed)),
        silent_seconds: nodes::last_heard(node, lease).map(|t| now.as_second() - t.as_second()),
        taints: nodes::taints(node).iter().map(nodes::taint_text).collect(),
        out_of_service: nodes::out_of_service(node),
        lease_resource_version: lease.and_then(|l| l.metadata.resource_version.clone()),
        node_resource_version: node.metadata.resource_version.clone(),
    }
}

fn owner_text(pod: &Pod) -> String {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map_or("-".into(), |o| format!("{}/{}", o.kind, o.name))
}

fn volumes_of(pod: &Pod, inp: &RecoverInputs, node: &str) -> Vec<VolumeEvidence> {
    model::mounted_claims(pod)
        .map(|claim| {
            let volume = inp
                .claims
                .iter()
                .find(|c| c.name_any() == claim)
                .and_then(model::pvc_volume)
                .map(str::to_string);
            let attachments = inp
                .attachments
                .iter()
                .filter(|va| volume.is_some() && nodes::attachment_volume(va) == volume.as_deref())
                .filter(|va| nodes::attachment_node(va) == node)
                .map(|va| va.name_any())
                .collect();
            VolumeEvidence {
                claim: claim.to_string(),
                volume,
                attachments,
            }
        })
        .collect()
}

fn choose_method(method: Method, server: (u32, u32)) -> Result<(Method, String), String> {
    let new_enough = server >= OUT_OF_SERVICE_SINCE;
    let v = format!("{}.{}", server.0, server.1);
    match method {
        Method::Auto if new_enough => Ok((
            Method::OutOfService,
            format!("auto: the server is {v}, which honours the out-of-service taint (1.26+)"),
        )),
        Method::Auto => Ok((
            Method::ForceDelete,
            format!("auto: the server is {v}, older than 1.26, which has no out-of-service taint"),
        )),
        Method::OutOfService if !new_enough => Err(format!(
            "--method out-of-service needs Kubernetes 1.26 or newer; the server is {v}: use --method force-delete (or auto)"
        )),
        Method::OutOfService => Ok((method, "chosen with --method".into())),
        Method::ForceDelete => Ok((method, "chosen with --method".into())),
    }
}

/// The plan, or the reason to stop (exit 3) with nothing written.
pub fn plan(inp: &RecoverInputs, namespace: &str) -> Result<RecoverPlan, String> {
    let sts_name = inp.sts.name_any();
    let (method, method_reason) = choose_method(inp.method, inp.server)?;
    let by_name: BTreeMap<String, &Pod> = inp.pods.iter().map(|p| (p.name_any(), p)).collect();
    let mut warnings = vec![];
    for n in inp.named {
        let Some(pod) = by_name.get(n) else {
            return Err(format!(
                "pod \"{n}\" is not a pod of statefulset \"{sts_name}\" in namespace \"{namespace}\""
            ));
        };
        let node_name = model::node(pod).unwrap_or("");
        let node = inp.nodes.get(node_name).and_then(Option::as_ref);
        if stranded_state(pod, node, inp.now).is_none() {
            let why = match node {
                _ if node_name.is_empty() => "it is not bound to any node".to_string(),
                None => format!("its node \"{node_name}\" no longer exists: the pod garbage collector deletes it"),
                Some(n) if nodes::is_ready(n) => format!("its node \"{node_name}\" is Ready: a pod on a healthy node is never recovered"),
                Some(_) => "it is still inside its termination grace period".to_string(),
            };
            return Err(format!("pod \"{n}\" is not stranded: {why}"));
        }
    }
    let mut stranded = vec![];
    let mut evid: BTreeMap<String, NodeEvidence> = BTreeMap::new();
    for pod in inp.pods {
        let name = pod.name_any();
        if !inp.named.is_empty() && !inp.named.contains(&name) {
            continue;
        }
        let Some(node_name) = model::node(pod) else {
            continue;
        };
        let node = inp.nodes.get(node_name).and_then(Option::as_ref);
        if node.is_none()
            && inp.nodes.contains_key(node_name)
            && pod.metadata.deletion_timestamp.is_some()
        {
            warnings.push(format!(
                "pod \"{name}\": node \"{node_name}\" no longer exists; the pod garbage collector deletes the pod"
            ));
        }
        let Some(state) = stranded_state(pod, node, inp.now) else {
            if let (Some(n), Some(t)) = (node, pod.metadata.deletion_timestamp.as_ref()) {
                if !nodes::is_ready(n) {
                    warnings.push(format!(
                        "pod \"{name}\" on node \"{node_name}\" (not Ready) is Terminating within its grace period, which ends in {}: run recover again then",
                        format_age(t.0.as_second() - inp.now.as_second())
                    ));
                }
            }
            continue;
        };
        let node = node.expect("stranded pods have a node");
        let ev = evid
            .entry(node_name.to_string())
            .or_insert_with(|| evidence(node_name, node, inp.leases.get(node_name), inp.now));
        let silent = ev.silent_seconds.unwrap_or(i64::MAX);
        if silent < inp.min_down.as_secs() as i64 {
            return Err(format!(
                "node \"{node_name}\" of pod \"{name}\" was last heard from {} ago (Ready={}{}); --min-down is {}: a node silent for so short a time may be rebooting or partitioned. Wait, or lower --min-down if you know it is off",
                format_age(silent),
                ev.ready,
                ev.ready_since.as_deref().map(|s| format!(" since {s}")).unwrap_or_default(),
                format_age(inp.min_down.as_secs() as i64),
            ));
        }
        stranded.push(StrandedPod {
            uid: pod.uid().unwrap_or_default(),
            node: node_name.to_string(),
            state,
            deletion_age_seconds: pod
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| inp.now.as_second() - t.0.as_second()),
            volumes: volumes_of(pod, inp, node_name),
            name,
        });
    }
    let pending = if inp.named.is_empty() {
        pending(inp, &mut evid)
    } else {
        vec![]
    };
    for p in &pending {
        let ev = &evid[&p.node];
        let silent = ev.silent_seconds.unwrap_or(i64::MAX);
        if silent < inp.min_down.as_secs() as i64 {
            return Err(format!(
                "volume {} of {} is still attached to node \"{}\", last heard from {} ago; --min-down is {}: wait, or lower --min-down if you know it is off",
                p.volume,
                p.name,
                p.node,
                format_age(silent),
                format_age(inp.min_down.as_secs() as i64)
            ));
        }
    }
    if method == Method::OutOfService && !inp.node_pods_readable && !evid.is_empty() {
        return Err("the out-of-service taint is node-wide, and this identity cannot list the pods of every namespace to show which it would delete (grant deploy/rbac-recover.yaml's ClusterRole sts-safe-recover), or use --method force-delete".into());
    }
    let node_wide = if method == Method::OutOfService {
        let taint = nodes::out_of_service_taint();
        let mut v: Vec<NodePod> = inp
            .node_pods
            .iter()
            .filter(|p| model::node(p).is_some_and(|n| evid.contains_key(n)))
            .map(|p| NodePod {
                namespace: p.namespace().unwrap_or_default(),
                name: p.name_any(),
                node: model::node(p).unwrap_or_default().to_string(),
                owner: owner_text(p),
                tolerates: nodes::pod_tolerates(p, &taint),
            })
            .collect();
        v.sort_by(|a, b| (&a.node, &a.namespace, &a.name).cmp(&(&b.node, &b.namespace, &b.name)));
        v
    } else {
        vec![]
    };
    let mut plan = RecoverPlan {
        api_version: super::API_VERSION.into(),
        kind: "RecoverPlan".into(),
        namespace: namespace.to_string(),
        statefulset: sts_name,
        method,
        method_reason,
        min_down_seconds: inp.min_down.as_secs(),
        nodes: evid.into_values().collect(),
        pods: stranded,
        pending,
        node_wide,
        risk: String::new(),
        steps: vec![],
        warnings,
        delete_attachments: inp.delete_attachments,
    };
    plan.risk = risk(&plan);
    plan.steps = steps(&plan);
    Ok(plan)
}

/// Recoveries under way: an ordinal whose pod is gone or not Ready on a live node while
/// one of its volumes is still attached to a node that is not Ready.
fn pending(inp: &RecoverInputs, evid: &mut BTreeMap<String, NodeEvidence>) -> Vec<PendingRecovery> {
    let mut out = vec![];
    let sts = inp.sts.name_any();
    for ordinal in model::live_range(inp.sts) {
        let name = model::pod_name(&sts, ordinal);
        let pod = inp.pods.iter().find(|p| p.name_any() == name);
        if pod.is_some_and(|p| model::is_ready(p) || model::is_terminating(p)) {
            continue;
        }
        for template in model::claim_templates(inp.sts) {
            let claim = model::pvc_name(&template, &sts, ordinal);
            let Some(volume) = inp
                .claims
                .iter()
                .find(|c| c.name_any() == claim)
                .and_then(model::pvc_volume)
            else {
                continue;
            };
            for va in inp
                .attachments
                .iter()
                .filter(|va| nodes::attachment_volume(va) == Some(volume))
            {
                let node_name = nodes::attachment_node(va);
                if pod.and_then(|p| model::node(p)) == Some(node_name) {
                    continue;
                }
                let Some(Some(node)) = inp.nodes.get(node_name) else {
                    continue;
                };
                if nodes::is_ready(node) {
                    continue;
                }
                evid.entry(node_name.to_string()).or_insert_with(|| {
                    evidence(node_name, node, inp.leases.get(node_name), inp.now)
                });
                out.push(PendingRecovery {
                    name: name.clone(),
                    node: node_name.to_string(),
                    volume: volume.to_string(),
                    attachment: va.name_any(),
                });
            }
        }
    }
    out
}

fn risk(plan: &RecoverPlan) -> String {
    let nodes = plan.lost_nodes().join(", ");
    let pods: Vec<&str> = plan.pods.iter().map(|p| p.name.as_str()).collect();
    format!(
        "If node {nodes} is in fact still running, {} keeps running there while a new copy starts on another node: two pods with one identity writing to one volume (split brain, corrupted data). Go on only once the node is confirmed powered off or fenced.",
        if pods.is_empty() { "the old pod".to_string() } else { pods.join(", ") }
    )
}

fn steps(plan: &RecoverPlan) -> Vec<String> {
    let mut s = vec![];
    let pods = |v: &[StrandedPod]| {
        v.iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match plan.method {
        Method::OutOfService => {
            for n in plan.to_taint() {
                s.push(format!(
                    "taint node {n} {OUT_OF_SERVICE_TAINT}=nodeshutdown:NoExecute: node-wide, the control plane force-deletes every pod on it without a matching toleration ({} listed below) and detaches their volumes at once",
                    plan.node_wide.iter().filter(|p| p.node == n && !p.tolerates).count()
                ));
            }
            if !plan.pods.is_empty() {
                s.push(format!(
                    "delete {} (grace period 0, uid precondition) right after the taint, as the pod garbage collector would on its next pass (every 20s)",
                    pods(&plan.pods)
                ));
            }
        }
        Method::ForceDelete => {
            if !plan.pods.is_empty() {
                s.push(format!(
                    "delete {} with grace period 0 and a uid precondition",
                    pods(&plan.pods)
                ));
            }
            if plan.delete_attachments {
                s.push("delete the VolumeAttachments of their volumes on the lost node by hand (--delete-attachments): only the attach/detach controller should; a wrong detach can corrupt data".into());
            } else {
                s.push(format!(
                    "wait for the attach/detach controller to force-detach their volumes from the lost node: it does so {} after the pod is gone, while the node is not Ready",
                    format_age(FORCE_DETACH_AFTER.as_secs() as i64)
                ));
            }
        }
        Method::Auto => {}
    }
    s.push(
        "wait until each pod is re-created on another node, its volumes attached, and Ready".into(),
    );
    s.push(
        "record an Event on the StatefulSet (who, which node, which evidence, which method)".into(),
    );
    if plan.method == Method::OutOfService {
        for n in plan.lost_nodes() {
            s.push(format!(
                "when node {n} is back, remove the taint: kubectl sts-safe recover --untaint {n}"
            ));
        }
    }
    s
}

/// Just before the first write: the node must still be silent exactly as planned. Any
/// change of its Lease (a renewal) or a Ready node means the kubelet is back. Err says
/// what changed.
pub fn still_silent(
    before: &NodeEvidence,
    node: Option<&Node>,
    lease: Option<&Lease>,
) -> Result<(), String> {
    let Some(node) = node else {
        return Err(format!(
            "node \"{}\" was deleted since the plan",
            before.name
        ));
    };
    if nodes::is_ready(node) {
        return Err(format!("node \"{}\" is Ready again", before.name));
    }
    let lease_rv = lease.and_then(|l| l.metadata.resource_version.clone());
    if lease_rv != before.lease_resource_version {
        return Err(format!(
            "the Lease of node \"{}\" changed since the plan (renewed {})",
            before.name,
            lease
                .and_then(nodes::lease_renewed)
                .map_or("?".into(), |t| t.to_string())
        ));
    }
    let heartbeat = nodes::ready(node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    let planned = before
        .last_heartbeat
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    if heartbeat > planned {
        return Err(format!(
            "node \"{}\" posted a heartbeat at {} since the plan",
            before.name,
            heartbeat.map_or("?".into(), |t| t.to_string())
        ));
    }
    Ok(())
}

/// `--untaint NODE`: the reason to refuse while the node is still silent.
pub fn untaint_refusal(
    name: &str,
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
) -> Option<String> {
    let ev = evidence(name, node, lease, now);
    if !nodes::out_of_service(node) {
        return None;
    }
    let silent = ev.silent_seconds.unwrap_or(i64::MAX);
    (!nodes::is_ready(node) || silent > 60).then(|| {
        format!(
            "node \"{name}\" is not back (Ready={}, last heard {} ago): removing the out-of-service taint now would let pods be scheduled onto it and its volumes attached again while its state is unknown; remove it once the node is back and Ready",
            ev.ready,
            if silent == i64::MAX { "never".into() } else { format_age(silent) }
        )
    })
}

/// Stranded pods for `doctor` and `status`: (pod name, node, state).
pub fn stranded_pods<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    nodes: &BTreeMap<String, Node>,
    now: Timestamp,
) -> Vec<(String, String, String)> {
    pods.into_iter()
        .filter_map(|p| {
            let n = model::node(p)?;
            let state = stranded_state(p, nodes.get(n), now)?;
            Some((p.name_any(), n.to_string(), state))
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoveredPod {
    pub name: String,
    /// None for a recovery a re-run picked up (the old pod was gone already).
    pub old_uid: Option<String>,
    pub old_node: String,
    pub new_uid: String,
    pub new_node: String,
    /// From the first write to Ready.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoverReport {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub statefulset: String,
    pub method: Method,
    /// `--fence-cmd`, or `typed node name`.
    pub fenced_by: String,
    pub nodes: Vec<NodeEvidence>,
    pub tainted: Vec<String>,
    pub deleted_attachments: Vec<String>,
    pub pods: Vec<RecoveredPod>,
    /// The commands that remove the out-of-service taint once the nodes are back.
    pub untaint: Vec<String>,
}

impl RecoverReport {
    pub fn new(
        plan: &RecoverPlan,
        fenced_by: String,
        tainted: Vec<String>,
        deleted_attachments: Vec<String>,
        pods: Vec<RecoveredPod>,
    ) -> RecoverReport {
        let untaint = if plan.method == Method::OutOfService {
            plan.lost_nodes()
                .iter()
                .map(|n| format!("kubectl sts-safe recover --untaint {n}"))
                .collect()
        } else {
            vec![]
        };
        RecoverReport {
            api_version: super::API_VERSION.into(),
            kind: "RecoverReport".into(),
            namespace: plan.namespace.clone(),
            statefulset: plan.statefulset.clone(),
            method: plan.method,
            fenced_by,
            nodes: plan.nodes.clone(),
            tainted,
            deleted_attachments,
            pods,
            untaint,
        }
    }
}
#[cfg(test)]
#[path = "recover_tests.rs"]
mod tests;
