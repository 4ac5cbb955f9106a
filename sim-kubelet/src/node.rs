//! Node registration and heartbeats (node status every 20 s, Lease every 10 s), so the
//! node lifecycle controller never marks our nodes NotReady.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::scheduling::SimNode;
use crate::util::{api_code, is_not_found};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const NODE_IP: &str = "127.0.0.1";
/// The version the nodes report as kubelet and kube-proxy: the API server's own, set once
/// at start ([`set_version`]); v1.20.2 until then.
static KUBELET_VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn set_version(v: String) {
    let _ = KUBELET_VERSION.set(v);
}

fn kubelet_version() -> &'static str {
    KUBELET_VERSION.get().map_or("v1.20.2", String::as_str)
}
const LEASE_RENEW: Duration = Duration::from_secs(10);
const STATUS_EVERY: Duration = Duration::from_secs(20);
const RETRY: Duration = Duration::from_secs(1);
const LEASE_DURATION_SECONDS: i32 = 40;

/// The nodes this process plays, named `sim-node-0..count-1`.
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
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            SimNode { name, labels }
        })
        .collect()
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

fn node_object(node: &SimNode, since: &Time) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(node.labels.clone()),
            annotations: Some(
                [("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(&node.name, since, since)),
    }
}

async fn patch_node_status(api: &Api<Node>, name: &str, since: &Time) -> kube::Result<()> {
    let status = node_status(name, since, &Time(Timestamp::now()));
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
}

/// Creates (or updates) the node and its status; returns the node's uid.
pub async fn register(client: &Client, node: &SimNode, since: &Time) -> anyhow::Result<String> {
    let api: Api<Node> = Api::all(client.clone());
    let obj = node_object(node, since);
    let created = match api.create(&PostParams::default(), &obj).await {
        Ok(n) => n,
        Err(e) if api_code(&e) == Some(409) => {
            let patch = json!({ "metadata": {
                "labels": node.labels,
                "annotations": obj.metadata.annotations,
            }});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("updating node {}", node.name))?
        }
        Err(e) => return Err(e).with_context(|| format!("creating node {}", node.name)),
    };
    patch_node_status(&api, &node.name, since)
        .await
        .with_context(|| format!("updating status of node {}", node.name))?;
    let uid = created.metadata.uid.unwrap_or_default();
    renew_lease(client, &node.name, &uid)
        .await
        .with_context(|| format!("creating lease of node {}", node.name))?;
    Ok(uid)
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

/// Renews the Lease every 10 s and the node's Ready heartbeat every 20 s, forever. After
/// a failure (API server unreachable) it retries every second, and posts the node status
/// as soon as the API server answers again.
pub async fn heartbeat(client: Client, node: SimNode, node_uid: String, since: Time) {
    let api: Api<Node> = Api::all(client.clone());
    let mut node_uid = node_uid;
    let mut last_status = Instant::now();
    let mut failing = false;
    loop {
        tokio::time::sleep(if failing { RETRY } else { LEASE_RENEW }).await;
        match renew_lease(&client, &node.name, &node_uid).await {
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    warn!(node = %node.name, error = %e, "renewing lease failed; retrying every second");
                }
                failing = true;
                continue;
            }
        }
        if !failing && last_status.elapsed() < STATUS_EVERY {
            continue;
        }
        match patch_node_status(&api, &node.name, &since).await {
            Ok(()) => {
                if failing {
                    info!(node = %node.name, "heartbeats are getting through again");
                }
                failing = false;
                last_status = Instant::now();
            }
            Err(e) if is_not_found(&e) => {
                info!(node = %node.name, "node was deleted; registering it again");
                match register(&client, &node, &since).await {
                    Ok(uid) => {
                        node_uid = uid;
                        failing = false;
                        last_status = Instant::now();
                    }
                    Err(e) => {
                        warn!(node = %node.name, error = %format!("{e:#}"), "re-registering node failed");
                        failing = true;
                    }
                }
            }
            Err(e) => {
                warn!(node = %node.name, error = %e, "node heartbeat failed");
                failing = true;
            }
        }
    }
}
