//! The nodes we play: the built-in `sim-node-*` (registered at start) and every Node
//! labelled `sim.sts-safe.dev/node=true` (created by anyone). One watch over the labelled
//! nodes keeps a registry ([`Nodes`]) and runs one kubelet task per node: it renews the
//! node's Lease (every `--lease-renew`), posts its status (every `--status-every`, and at
//! once when `volumesInUse` changes) and stops doing anything while the node is powered
//! off (annotation `sim.sts-safe.dev/power: "off"`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::scheduling::SimNode;
use crate::util::{api_code, is_not_found};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const NODE_IP: &str = "127.0.0.1";
/// Nodes with this label set to `true` are played by the simulator.
pub const NODE_LABEL: &str = "sim.sts-safe.dev/node";
/// `off` powers the node off (a lost node); absent or anything else: on.
pub const POWER_ANNOTATION: &str = "sim.sts-safe.dev/power";
/// Makes kube-controller-manager's attach/detach controller attach the node's volumes.
pub const CONTROLLER_MANAGED_ATTACH: &str =
    "volumes.kubernetes.io/controller-managed-attach-detach";
/// The version the nodes report as kubelet and kube-proxy: the API server's own, set once
/// at start ([`set_version`]); v1.20.2 until then.
static KUBELET_VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn set_version(v: String) {
    let _ = KUBELET_VERSION.set(v);
}

fn kubelet_version() -> &'static str {
    KUBELET_VERSION.get().map_or("v1.20.2", String::as_str)
}
const RETRY: Duration = Duration::from_secs(1);
const LEASE_DURATION_SECONDS: i32 = 40;

/// Heartbeat intervals from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Heartbeats {
    pub lease_renew: Duration,
    pub status_every: Duration,
}

/// The built-in nodes, named `sim-node-0..count-1`.
pub fn sim_nodes(count: usize) -> Vec<SimNode> {
    (0..count)
        .map(|i| {
            let name = format!("sim-node-{i}");
            let labels: BTreeMap<String, String> = [
                ("kubernetes.io/hostname", name.as_str()),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("beta.kubernetes.io/os", "linux"),
                ("beta.kubernetes.io/arch", "amd64"),
                (NODE_LABEL, "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            SimNode {
                name,
                labels,
                ready: true,
                ..SimNode::default()
            }
        })
        .collect()
}

/// Whether the node is powered on (no `sim.sts-safe.dev/power: off`).
pub fn powered_on(node: &Node) -> bool {
    node.annotations()
        .get(POWER_ANNOTATION)
        .is_none_or(|v| v.trim() != "off")
}

/// The scheduler's view of a node object.
pub fn sim_node(node: &Node) -> SimNode {
    let spec = node.spec.as_ref();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    SimNode {
        name: node.name_any(),
        labels: node.labels().clone(),
        taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        ready,
    }
}

fn resources() -> BTreeMap<String, Quantity> {
    [
        ("cpu", "64"),
        ("memory", "256Gi"),
        ("pods", "1000"),
        ("ephemeral-storage", "1Ti"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
    .collect()
}

/// The node status we report; `since` is the conditions' transition time.
pub fn node_status(name: &str, since: &Time, heartbeat: &Time) -> NodeStatus {
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(heartbeat.clone()),
        last_transition_time: Some(since.clone()),
    };
    NodeStatus {
        capacity: Some(resources()),
        allocatable: Some(resources()),
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: NODE_IP.into(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.into(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: format!("sim-boot-{name}"),
            container_runtime_version: "sim://1.0.0".into(),
            kernel_version: "5.10.0-sim".into(),
            kube_proxy_version: kubelet_version().into(),
            kubelet_version: kubelet_version().into(),
            machine_id: format!("sim-machine-{name}"),
            operating_system: "linux".into(),
            os_image: "sts-safe simulated node".into(),
            system_uuid: format!("sim-uuid-{name}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node_annotations() -> BTreeMap<String, String> {
    [
        ("node.alpha.kubernetes.io/ttl", "0"),
        (CONTROLLER_MANAGED_ATTACH, "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn node_object(node: &SimNode, since: &Time) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(node.labels.clone()),
            annotations: Some(node_annotations()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(&node.name, since, since)),
    }
}

/// Creates (or updates the labels and annotations of) a built-in node. Its status and
/// Lease come from its kubelet task once the node watch sees it.
pub async fn register(client: &Client, node: &SimNode) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let obj = node_object(node, &Time(Timestamp::now()));
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(409) => {
            let patch = json!({ "metadata": {
                "labels": node.labels,
                "annotations": obj.metadata.annotations,
            }});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("updating node {}", node.name))?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("creating node {}", node.name)),
    }
}

/// Creates or renews the node's Lease in `kube-node-lease`.
async fn renew_lease(client: &Client, name: &str, node_uid: &str) -> kube::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(Timestamp::now());
    let patch = json!({ "spec": { "renewTime": now, "holderIdentity": name } });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: (!node_uid.is_empty()).then(|| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.into(),
                    uid: node_uid.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    match api.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(409) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The registry of the nodes we play, shared by the scheduler, the pod workers and the
/// node tasks.
pub struct Nodes {
    nodes: RwLock<BTreeMap<String, Arc<Node>>>,
    /// Pod uid → (node, unique volume names the pod has mounted).
    in_use: Mutex<BTreeMap<String, (String, Vec<String>)>>,
    /// Bumped when a node appears, disappears or changes power, readiness, taints,
    /// labels or schedulability.
    changes: watch::Sender<u64>,
    /// Bumped when a node's volumes in use change.
    in_use_changes: watch::Sender<u64>,
}

impl Default for Nodes {
    fn default() -> Self {
        Self {
            nodes: RwLock::default(),
            in_use: Mutex::default(),
            changes: watch::channel(0).0,
            in_use_changes: watch::channel(0).0,
        }
    }
}

/// What of a node matters to the scheduler and the pod workers.
fn digest(node: &Node) -> (SimNode, bool, Option<String>) {
    (sim_node(node), powered_on(node), node.metadata.uid.clone())
}

impl Nodes {
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn is_played(&self, name: &str) -> bool {
        self.nodes.read().expect("nodes lock").contains_key(name)
    }

    /// Whether the node is played and powered on.
    pub fn powered_on(&self, name: &str) -> bool {
        self.nodes
            .read()
            .expect("nodes lock")
            .get(name)
            .is_some_and(|n| powered_on(n))
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.nodes
            .read()
            .expect("nodes lock")
            .keys()
            .cloned()
            .collect()
    }

    /// The scheduler's view of every node we play.
    pub fn sim_nodes(&self) -> Vec<SimNode> {
        self.nodes
            .read()
            .expect("nodes lock")
            .values()
            .map(|n| sim_node(n))
            .collect()
    }

    fn upsert(&self, node: Arc<Node>) {
        let name = node.name_any();
        let changed = {
            let mut map = self.nodes.write().expect("nodes lock");
            let changed = map
                .get(&name)
                .is_none_or(|old| digest(old) != digest(&node));
            map.insert(name, node);
            changed
        };
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    fn remove(&self, name: &str) {
        if self
            .nodes
            .write()
            .expect("nodes lock")
            .remove(name)
            .is_some()
        {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    fn retain(&self, keep: &HashSet<String>) {
        let removed = {
            let mut map = self.nodes.write().expect("nodes lock");
            let before = map.len();
            map.retain(|k, _| keep.contains(k));
            before != map.len()
        };
        if removed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// The kubelet of `node` mounted the volumes `names` for the pod `uid`.
    pub fn set_in_use(&self, node: &str, uid: &str, names: Vec<String>) {
        let mut map = self.in_use.lock().expect("in-use lock");
        let entry = (node.to_string(), names);
        if map.get(uid) != Some(&entry) {
            map.insert(uid.to_string(), entry);
            drop(map);
            self.in_use_changes.send_modify(|n| *n += 1);
        }
    }

    /// The pod `uid` is gone (or no longer runs): its volumes are unmounted.
    pub fn clear_in_use(&self, uid: &str) {
        let removed = self
            .in_use
            .lock()
            .expect("in-use lock")
            .remove(uid)
            .is_some();
        if removed {
            self.in_use_changes.send_modify(|n| *n += 1);
        }
    }

    /// The unique names of the volumes in use on `node`, sorted, without repeats.
    pub fn in_use(&self, node: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .in_use
            .lock()
            .expect("in-use lock")
            .values()
            .filter(|(n, _)| n == node)
            .flat_map(|(_, names)| names.iter().cloned())
            .collect();
        set.into_iter().collect()
    }
}

/// A running node task; dropping it stops the task.
struct Player {
    uid: String,
    tx: watch::Sender<Arc<Node>>,
    task: JoinHandle<()>,
}

impl Drop for Player {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the labelled nodes, keeps `nodes` up to date and runs one kubelet task per
/// node. `builtin` nodes deleted by someone are registered again. `ready` is signalled
/// after the first list.
pub async fn run(
    client: Client,
    nodes: Arc<Nodes>,
    builtin: Vec<SimNode>,
    beats: Heartbeats,
    ready: oneshot::Sender<()>,
) {
    let api: Api<Node> = Api::all(client.clone());
    let cfg = watcher::Config::default().labels(&format!("{NODE_LABEL}=true"));
    let stream = watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    let mut ready = Some(ready);
    let mut players: HashMap<String, Player> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    let apply = |node: Node, players: &mut HashMap<String, Player>| {
        let name = node.name_any();
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let node = Arc::new(node);
        nodes.upsert(node.clone());
        match players.get(&name) {
            Some(p) if p.uid == uid => {
                p.tx.send_replace(node);
            }
            _ => {
                info!(node = %name, "playing node");
                let (tx, rx) = watch::channel(node);
                let task = tokio::spawn(play(client.clone(), nodes.clone(), beats, rx));
                players.insert(name, Player { uid, tx, task });
            }
        }
    };
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Apply(node)) => apply(node, &mut players),
            Ok(watcher::Event::InitApply(node)) => {
                if let Some(set) = listed.as_mut() {
                    set.insert(node.name_any());
                }
                apply(node, &mut players);
            }
            Ok(watcher::Event::Delete(node)) => {
                let name = node.name_any();
                if players.remove(&name).is_some() {
                    info!(node = %name, "node deleted; no longer playing it");
                }
                nodes.remove(&name);
                if let Some(b) = builtin.iter().find(|b| b.name == name) {
                    let (client, b) = (client.clone(), b.clone());
                    tokio::spawn(async move {
                        info!(node = %b.name, "built-in node was deleted; registering it again");
                        crate::retry(&format!("registering node {}", b.name), || {
                            register(&client, &b)
                        })
                        .await;
                    });
                }
            }
            Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
            Ok(watcher::Event::InitDone) => {
                if let Some(set) = listed.take() {
                    players.retain(|name, _| set.contains(name));
                    nodes.retain(&set);
                }
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Err(e) => warn!(error = %e, "node watch failed; retrying"),
        }
    }
}

/// The transition time of the node's Ready=True condition if it has one, else now.
fn ready_since(node: &Node) -> Time {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()))
}

/// The kubelet of one node: Lease, status heartbeat, `volumesInUse`; nothing while the
/// node is powered off.
async fn play(
    client: Client,
    nodes: Arc<Nodes>,
    beats: Heartbeats,
    mut rx: watch::Receiver<Arc<Node>>,
) {
    let api: Api<Node> = Api::all(client.clone());
    let mut in_use_rx = nodes.in_use_changes.subscribe();
    let mut powered: Option<bool> = None;
    let mut next_lease = Instant::now();
    let mut next_status = Instant::now();
    let mut written_in_use: Option<Vec<String>> = None;
    let mut failing = false;
    loop {
        let node = rx.borrow_and_update().clone();
        let name = node.name_any();
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let on = powered_on(&node);
        if powered != Some(on) {
            match (powered, on) {
                (Some(_), true) => info!(node = %name, "node powered on: kubelet is back"),
                (_, false) => info!(node = %name, "node powered off: kubelet is dead"),
                (None, true) => {}
            }
            if on {
                next_lease = Instant::now();
                next_status = Instant::now();
                written_in_use = None;
            }
            powered = Some(on);
        }
        let mut wake_at = None;
        if on {
            let now = Instant::now();
            if now >= next_lease {
                match renew_lease(&client, &name, &uid).await {
                    Ok(()) => next_lease = now + beats.lease_renew,
                    Err(e) => {
                        if !failing {
                            warn!(node = %name, error = %e, "renewing lease failed; retrying every second");
                        }
                        failing = true;
                        next_lease = now + RETRY;
                    }
                }
            }
            let in_use = nodes.in_use(&name);
            let annotated = node
                .annotations()
                .get(CONTROLLER_MANAGED_ATTACH)
                .is_some_and(|v| v == "true");
            if now >= next_status || written_in_use.as_ref() != Some(&in_use) || !annotated {
                let since = ready_since(&node);
                let mut status = node_status(&name, &since, &Time(Timestamp::now()));
                status.volumes_in_use = Some(in_use.clone());
                let mut patch = json!({ "metadata": { "uid": uid }, "status": status });
                let res = if annotated {
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                } else {
                    // A node created by a test: claim its volumes for the attach/detach
                    // controller, keeping everything its creator set.
                    patch["metadata"]["annotations"] = json!({ CONTROLLER_MANAGED_ATTACH: "true" });
                    let meta = json!({ "metadata": patch["metadata"].clone() });
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&meta))
                        .await
                    {
                        Ok(_) => {
                            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                                .await
                        }
                        Err(e) => Err(e),
                    }
                };
                match res {
                    Ok(_) => {
                        if failing {
                            info!(node = %name, "heartbeats are getting through again");
                        }
                        failing = false;
                        debug!(node = %name, volumes_in_use = ?in_use, "posted node status");
                        written_in_use = Some(in_use);
                        next_status = now + beats.status_every;
                    }
                    Err(e) if is_not_found(&e) || api_code(&e) == Some(409) => {
                        // Deleted or replaced: the watch stops or restarts this task.
                        debug!(node = %name, error = %e, "node status write refused");
                        next_status = now + RETRY;
                    }
                    Err(e) => {
                        warn!(node = %name, error = %e, "node heartbeat failed");
                        failing = true;
                        next_status = now + RETRY;
                    }
                }
            }
            wake_at = Some(next_lease.min(next_status));
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = in_use_rx.changed(), if on => {}
            () = sleep_until(wake_at), if wake_at.is_some() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(annotations: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn power_annotation() {
        assert!(powered_on(&node(&[])));
        assert!(powered_on(&node(&[(POWER_ANNOTATION, "on")])));
        assert!(!powered_on(&node(&[(POWER_ANNOTATION, "off")])));
    }

    #[test]
    fn volumes_in_use_per_node() {
        let nodes = Nodes::default();
        nodes.set_in_use("a", "p1", vec!["v2".into(), "v1".into()]);
        nodes.set_in_use("a", "p2", vec!["v1".into()]);
        nodes.set_in_use("b", "p3", vec!["v3".into()]);
        assert_eq!(nodes.in_use("a"), vec!["v1", "v2"]);
        nodes.clear_in_use("p1");
        assert_eq!(nodes.in_use("a"), vec!["v1"]);
        assert_eq!(nodes.in_use("b"), vec!["v3"]);
    }

    #[test]
    fn scheduler_view() {
        let mut n = node(&[]);
        n.status = Some(node_status(
            "n",
            &Time(Timestamp::now()),
            &Time(Timestamp::now()),
        ));
        n.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        let s = sim_node(&n);
        assert!(s.ready);
        assert!(s.unschedulable);
        assert!(!sim_node(&node(&[])).ready);
    }
}
