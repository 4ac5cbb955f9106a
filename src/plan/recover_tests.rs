//! Tests of recover's decisions: what is stranded, the evidence and --min-down, the
//! method per server, the node-wide list, resumed recoveries, the re-check and --untaint.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;

fn now() -> Timestamp {
    "2026-12-07T12:00:00Z".parse().unwrap()
}

fn at(secs_ago: i64) -> String {
    Timestamp::from_second(now().as_second() - secs_ago)
        .unwrap()
        .to_string()
}

fn sts() -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "db", "namespace": "ns", "uid": "sts-uid"},
        "spec": {"replicas": 3, "serviceName": "db",
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
    }))
    .unwrap()
}

fn pod(ordinal: i32, node: &str, deleted_secs_ago: Option<i64>, ready: bool) -> Pod {
    let mut v = json!({
        "metadata": {"name": format!("db-{ordinal}"), "namespace": "ns", "uid": format!("uid-{ordinal}"),
                     "labels": {"app": "db"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "sts-uid", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "db"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-db-{ordinal}")}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
    });
    if let Some(s) = deleted_secs_ago {
        v["metadata"]["deletionTimestamp"] = json!(at(s));
    }
    serde_json::from_value(v).unwrap()
}

fn node(name: &str, ready: &str, heard_secs_ago: i64, taints: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "resourceVersion": "7"},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "NodeStatusUnknown",
                    "lastHeartbeatTime": at(heard_secs_ago), "lastTransitionTime": at(heard_secs_ago - 40)}]}
    }))
    .unwrap()
}

fn lease(name: &str, renewed_secs_ago: i64) -> Lease {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-node-lease", "resourceVersion": format!("{}", 1000 - renewed_secs_ago)},
        "spec": {"holderIdentity": name, "renewTime": format!("{}", at(renewed_secs_ago).replace('Z', ".000000Z"))}
    }))
    .unwrap()
}

fn claim(ordinal: i32) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": format!("data-db-{ordinal}"), "namespace": "ns"},
        "spec": {"volumeName": format!("pv-{ordinal}")},
        "status": {"phase": "Bound"}
    }))
    .unwrap()
}

fn attachment(ordinal: i32, node: &str) -> VolumeAttachment {
    serde_json::from_value(json!({
        "metadata": {"name": format!("csi-{ordinal}-{node}")},
        "spec": {"attacher": "sts-safe.dev/sim", "nodeName": node, "source": {"persistentVolumeName": format!("pv-{ordinal}")}},
        "status": {"attached": true}
    }))
    .unwrap()
}

fn other_pod(name: &str, node: &str, tolerates: bool) -> Pod {
    let tol = if tolerates {
        json!([{"key": "node.kubernetes.io/out-of-service", "operator": "Exists", "effect": "NoExecute"}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "web",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c"}], "tolerations": tol}
    }))
    .unwrap()
}

struct World {
    sts: StatefulSet,
    pods: Vec<Pod>,
    nodes: BTreeMap<String, Option<Node>>,
    leases: BTreeMap<String, Lease>,
    claims: Vec<PersistentVolumeClaim>,
    attachments: Vec<VolumeAttachment>,
    node_pods: Vec<Pod>,
    node_pods_readable: bool,
    named: Vec<String>,
    min_down: Duration,
    method: Method,
    server: (u32, u32),
}

/// db-0 on n0, db-1 on n1 (lost 5 minutes ago, pod Terminating), db-2 on n2.
fn world() -> World {
    let stranded = pod(1, "n1", Some(200), true);
    World {
        sts: sts(),
        pods: vec![
            pod(0, "n0", None, true),
            stranded.clone(),
            pod(2, "n2", None, true),
        ],
        nodes: BTreeMap::from([
            ("n0".into(), Some(node("n0", "True", 5, json!([])))),
            (
                "n1".into(),
                Some(node(
                    "n1",
                    "Unknown",
                    300,
                    json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
                )),
            ),
            ("n2".into(), Some(node("n2", "True", 5, json!([])))),
        ]),
        leases: BTreeMap::from([("n1".into(), lease("n1", 290))]),
        claims: (0..3).map(claim).collect(),
        attachments: vec![
            attachment(0, "n0"),
            attachment(1, "n1"),
            attachment(2, "n2"),
        ],
        node_pods: vec![
            stranded,
            other_pod("web-a", "n1", false),
            other_pod("agent", "n1", true),
        ],
        node_pods_readable: true,
        named: vec![],
        min_down: Duration::from_secs(120),
        method: Method::Auto,
        server: (1, 37),
    }
}

fn run(w: &World) -> Result<RecoverPlan, String> {
    plan(
        &RecoverInputs {
            sts: &w.sts,
            pods: &w.pods,
            nodes: &w.nodes,
            leases: &w.leases,
            claims: &w.claims,
            attachments: &w.attachments,
            node_pods: &w.node_pods,
            node_pods_readable: w.node_pods_readable,
            named: &w.named,
            now: now(),
            min_down: w.min_down,
            method: w.method,
            server: w.server,
            delete_attachments: false,
        },
        "ns",
    )
}

#[test]
fn a_terminating_pod_on_a_silent_node_is_stranded_with_its_evidence() {
    let p = run(&world()).unwrap();
    assert_eq!(p.pods.len(), 1);
    let s = &p.pods[0];
    assert_eq!(
        (s.name.as_str(), s.node.as_str(), s.uid.as_str()),
        ("db-1", "n1", "uid-1")
    );
    assert!(s.state.starts_with("Terminating for 3m"), "{}", s.state);
    assert_eq!(s.volumes[0].volume.as_deref(), Some("pv-1"));
    assert_eq!(s.volumes[0].attachments, vec!["csi-1-n1"]);
    let n = &p.nodes[0];
    assert_eq!((n.name.as_str(), n.ready.as_str()), ("n1", "Unknown"));
    // The later of heartbeat (300s) and Lease (290s).
    assert_eq!(n.silent_seconds, Some(290));
    assert_eq!(n.taints, vec!["node.kubernetes.io/unreachable:NoExecute"]);
    assert!(p.risk.contains("split brain"), "{}", p.risk);
}

#[test]
fn auto_picks_out_of_service_on_current_servers_and_force_delete_on_old_ones() {
    let mut w = world();
    let p = run(&w).unwrap();
    assert_eq!(p.method, Method::OutOfService);
    assert_eq!(p.to_taint(), vec!["n1"]);
    assert!(p.steps[0].contains("node-wide"), "{:?}", p.steps);
    assert!(p.steps.iter().any(|s| s.contains("--untaint n1")));
    w.server = (1, 20);
    let p = run(&w).unwrap();
    assert_eq!(p.method, Method::ForceDelete);
    assert!(p.to_taint().is_empty());
    assert!(
        p.steps.iter().any(|s| s.contains("force-detach")),
        "{:?}",
        p.steps
    );
    w.method = Method::OutOfService;
    assert!(run(&w).unwrap_err().contains("needs Kubernetes 1.26"));
}

#[test]
fn the_taint_plan_lists_every_pod_on_the_node_of_every_workload() {
    let p = run(&world()).unwrap();
    let names: Vec<(&str, bool)> = p
        .node_wide
        .iter()
        .map(|n| (n.name.as_str(), n.tolerates))
        .collect();
    assert_eq!(
        names,
        vec![("db-1", false), ("agent", true), ("web-a", false)]
    );
    assert_eq!(p.node_wide[2].owner, "ReplicaSet/web-1");
}

#[test]
fn a_node_silent_for_less_than_min_down_is_refused() {
    let mut w = world();
    w.min_down = Duration::from_secs(600);
    let e = run(&w).unwrap_err();
    assert!(
        e.contains("node \"n1\"") && e.contains("--min-down is 10m"),
        "{e}"
    );
}

#[test]
fn a_named_pod_on_a_healthy_node_is_refused_and_unknown_names_too() {
    let mut w = world();
    w.named = vec!["db-0".into()];
    let e = run(&w).unwrap_err();
    assert!(
        e.contains("pod \"db-0\" is not stranded") && e.contains("is Ready"),
        "{e}"
    );
    w.named = vec!["db-9".into()];
    assert!(run(&w)
        .unwrap_err()
        .contains("not a pod of statefulset \"db\""));
    w.named = vec!["db-1".into()];
    assert_eq!(run(&w).unwrap().pods.len(), 1);
}

#[test]
fn nothing_stranded_is_a_noop_and_pods_in_their_grace_period_wait() {
    let mut w = world();
    w.pods[1] = pod(1, "n1", Some(-20), true); // grace period not over
    w.attachments.retain(|a| a.spec.node_name != "n1");
    let p = run(&w).unwrap();
    assert!(p.is_noop(), "{p:?}");
    let mut w = world();
    w.pods[1] = pod(1, "n1", None, true); // Running on a NotReady node
    let p = run(&w).unwrap();
    assert!(p.pods[0].state.contains("on a node that is not Ready"));
}

#[test]
fn two_pods_on_the_lost_node_are_both_recovered() {
    let mut w = world();
    w.pods[2] = pod(2, "n1", Some(100), true);
    let p = run(&w).unwrap();
    let names: Vec<&str> = p.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["db-1", "db-2"]);
    assert_eq!(p.lost_nodes(), vec!["n1"]);
}

#[test]
fn a_rerun_after_the_delete_sees_the_recovery_under_way() {
    let mut w = world();
    // The old pod is gone; its replacement waits on n2 for the volume still on n1.
    w.pods[1] = pod(1, "n2", None, false);
    let p = run(&w).unwrap();
    assert!(p.pods.is_empty());
    assert_eq!(p.pending.len(), 1);
    assert_eq!(
        (
            p.pending[0].name.as_str(),
            p.pending[0].node.as_str(),
            p.pending[0].volume.as_str()
        ),
        ("db-1", "n1", "pv-1")
    );
    assert!(!p.is_noop());
    // Once the volume is detached there is nothing left to do.
    w.attachments.retain(|a| a.spec.node_name != "n1");
    assert!(run(&w).unwrap().is_noop());
}

#[test]
fn the_recheck_stops_when_the_node_came_back() {
    let w = world();
    let p = run(&w).unwrap();
    let before = &p.nodes[0];
    let n1 = w.nodes["n1"].clone().unwrap();
    assert!(still_silent(before, Some(&n1), Some(&w.leases["n1"])).is_ok());
    let renewed = lease("n1", 1);
    let e = still_silent(before, Some(&n1), Some(&renewed)).unwrap_err();
    assert!(e.contains("Lease of node \"n1\" changed"), "{e}");
    // Any write to the Lease counts, even one within the same second (a renewal whose
    // time would compare equal or "earlier" as text).
    let mut same_second = w.leases["n1"].clone();
    same_second.metadata.resource_version = Some("999999".into());
    assert!(still_silent(before, Some(&n1), Some(&same_second)).is_err());
    // A Lease gone since the plan is a change too.
    assert!(still_silent(before, Some(&n1), None).is_err());
    let back = node("n1", "True", 1, json!([]));
    assert!(still_silent(before, Some(&back), None)
        .unwrap_err()
        .contains("Ready again"));
    assert!(still_silent(before, None, None)
        .unwrap_err()
        .contains("deleted"));
}

#[test]
fn untaint_is_refused_while_the_node_is_silent() {
    let oos = json!([{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]);
    let down = node("n1", "Unknown", 300, oos.clone());
    let why = untaint_refusal("n1", &down, None, now()).unwrap();
    assert!(why.contains("not back"), "{why}");
    let back = node("n1", "True", 3, oos);
    assert_eq!(
        untaint_refusal("n1", &back, Some(&lease("n1", 2)), now()),
        None
    );
}

#[test]
fn doctor_and_status_see_the_same_stranded_pods() {
    let w = world();
    let nodes: BTreeMap<String, Node> = w
        .nodes
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
        .collect();
    let s = stranded_pods(&w.pods, &nodes, now());
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].0.as_str(), s[0].1.as_str()), ("db-1", "n1"));
}

#[test]
fn a_pending_recovery_needs_the_same_silence_and_the_taint_needs_the_node_wide_list() {
    let mut w = world();
    w.pods[1] = pod(1, "n2", None, false);
    w.min_down = Duration::from_secs(600);
    let e = run(&w).unwrap_err();
    assert!(
        e.contains("still attached to node \"n1\"") && e.contains("--min-down is 10m"),
        "{e}"
    );
    let mut w = world();
    w.node_pods_readable = false;
    let e = run(&w).unwrap_err();
    assert!(
        e.contains("node-wide") && e.contains("--method force-delete"),
        "{e}"
    );
    w.method = Method::ForceDelete;
    assert_eq!(run(&w).unwrap().pods.len(), 1);
}
