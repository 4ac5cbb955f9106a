//! `recover` against the real control plane: the node lifecycle controller marks a node
//! whose sim-kubelet was powered off Unknown and evicts its pods (Terminating forever);
//! the attach/detach controller keeps its volumes attached (VolumeAttachments of the
//! simulator's CSI driver). Each test gets its own nodes (label, taint and zone of its
//! own), so powering one off never touches another test's pods.
//! Tests under `current::` need the out-of-service taint (1.26+): `make test` runs them
//! on the current server only.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use sts_safe::model;
use sts_safe::model::node as nodes;

use crate::support::{
    audit_cluster_events, audit_is_write, by_plugin, plugin_audit_events, TestNs,
};

/// Nodes played by sim-kubelet that only this test's pods tolerate.
pub struct TestNodes {
    pub names: Vec<String>,
    pub zone: String,
    api: Api<Node>,
}

impl TestNodes {
    pub async fn new(ns: &TestNs, count: usize) -> TestNodes {
        let api: Api<Node> = Api::all(ns.client.clone());
        let zone = ns.name.clone();
        let mut names = vec![];
        for i in 0..count {
            let name = format!("{}-n{i}", ns.name);
            let node: Node = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {
                    "sim.sts-safe.dev/node": "true",
                    "kubernetes.io/hostname": name,
                    "topology.kubernetes.io/zone": zone,
                }},
                "spec": {"taints": [{"key": "sts-safe.dev/test", "value": zone, "effect": "NoSchedule"}]}
            }))
            .unwrap();
            api.create(&PostParams::default(), &node)
                .await
                .expect("create node");
            names.push(name);
        }
        let t = TestNodes { names, zone, api };
        for n in &t.names {
            ns.eventually(
                Duration::from_secs(30),
                &format!("node {n} Ready"),
                || async { t.api.get(n).await.ok().filter(nodes::is_ready).map(|_| ()) },
            )
            .await;
        }
        t
    }

    /// A StatefulSet spread over these nodes, with a claim per pod.
    pub fn statefulset(&self, name: &str, replicas: i32, policy: &str) -> String {
        format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  serviceName: {name}
  replicas: {replicas}
  podManagementPolicy: {policy}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeSelector: {{topology.kubernetes.io/zone: {zone}}}
      terminationGracePeriodSeconds: 3
      tolerations: [{{key: sts-safe.dev/test, operator: Exists, effect: NoSchedule}}]
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm: {{topologyKey: kubernetes.io/hostname, labelSelector: {{matchLabels: {{app: {name}}}}}}}
      containers: [{{name: db, image: "postgres:16"}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"#,
            zone = self.zone
        )
    }

    pub async fn power(&self, node: &str, on: bool) {
        let patch = serde_json::json!({"metadata": {"annotations": {"sim.sts-safe.dev/power": if on {"on"} else {"off"}}}});
        self.api
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("power annotation");
    }

    pub async fn node(&self, name: &str) -> Node {
        self.api.get(name).await.expect("node")
    }
}

impl Drop for TestNodes {
    fn drop(&mut self) {
        let names = self.names.clone();
        // Drop cannot await; delete from a helper thread with its own runtime and its own
        // client (the test's client lives on the test's runtime, blocked right here).
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let api: Api<Node> = Api::all(crate::support::admin().await);
                for n in names {
                    let _ = api.delete(&n, &DeleteParams::default()).await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// A 3-replica StatefulSet on 3 nodes of its own, Ready, one pod per node.
pub async fn spread(ns: &TestNs, policy: &str) -> TestNodes {
    let t = TestNodes::new(ns, 3).await;
    ns.apply(&t.statefulset("db", 3, policy)).await;
    ns.wait_ready("db", Duration::from_secs(90)).await;
    t
}

pub async fn pod(ns: &TestNs, name: &str) -> Option<Pod> {
    ns.api::<Pod>().get_opt(name).await.expect("get pod")
}

/// Powers off the node of `pod_name` and waits until the pod is stranded: its node
/// Unknown, the pod Terminating (evicted) past its grace period (3 s here) — and still
/// not replaced 5 s later.
pub async fn strand(ns: &TestNs, t: &TestNodes, pod_name: &str) -> (String, String) {
    let p = pod(ns, pod_name).await.expect("pod");
    let node = model::node(&p).expect("bound").to_string();
    let uid = p.uid().unwrap();
    t.power(&node, false).await;
    ns.eventually(
        Duration::from_secs(90),
        "the pod Terminating on an Unknown node",
        || async {
            let n = t.node(&node).await;
            let p = pod(ns, pod_name).await?;
            (!nodes::is_ready(&n) && past_grace(&p)).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = pod(ns, pod_name)
        .await
        .expect("the StatefulSet does not replace it");
    assert_eq!(still.uid().as_deref(), Some(uid.as_str()), "not replaced");
    assert!(model::is_terminating(&still));
    (node, uid)
}

/// Terminating, and its grace period is over.
pub fn past_grace(p: &Pod) -> bool {
    p.metadata
        .deletion_timestamp
        .as_ref()
        .is_some_and(|t| t.0 < k8s_openapi::jiff::Timestamp::now())
}

/// VolumeAttachments of `pv`, by node.
pub async fn attachments_of(ns: &TestNs, pv: &str) -> Vec<(String, bool)> {
    let api: Api<VolumeAttachment> = Api::all(ns.client.clone());
    api.list(&ListParams::default())
        .await
        .expect("list volumeattachments")
        .items
        .iter()
        .filter(|va| nodes::attachment_volume(va) == Some(pv))
        .map(|va| (va.spec.node_name.clone(), nodes::is_attached(va)))
        .collect()
}

pub async fn volume_of(ns: &TestNs, claim: &str) -> String {
    let c = ns
        .api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>()
        .get(claim)
        .await
        .expect("claim");
    model::pvc_volume(&c).expect("bound").to_string()
}

/// Names of the VolumeAttachments of `pv` now.
pub async fn attachment_names(ns: &TestNs, pv: &str) -> Vec<String> {
    let api: Api<VolumeAttachment> = Api::all(ns.client.clone());
    api.list(&ListParams::default())
        .await
        .expect("list volumeattachments")
        .items
        .iter()
        .filter(|va| nodes::attachment_volume(va) == Some(pv))
        .map(|va| va.name_any())
        .collect()
}

/// The plugin wrote nothing but its lock's bookkeeping (the Lease, and the verdict
/// annotation on the StatefulSet once it held the lock): no pod, Event, claim or
/// attachment in the namespace, and nothing on a node.
pub fn nothing_written(ns: &TestNs, t: &TestNodes) {
    let writes: Vec<String> = plugin_audit_events(&ns.name)
        .iter()
        .filter(|e| audit_is_write(e) && !e["requestURI"].as_str().unwrap_or("").contains("dryRun"))
        .filter(|e| {
            let r = &e["objectRef"]["resource"];
            !(r == "leases" || (r == "statefulsets" && e["verb"] == "patch"))
        })
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(writes.is_empty(), "nothing may be written: {writes:?}");
    no_node_written(t);
}

/// The plugin wrote nothing on the test's nodes (its attachments: see the callers, which
/// check their volume is still attached; other tests may delete theirs meanwhile).
pub fn no_node_written(t: &TestNodes) {
    let writes: Vec<String> = audit_cluster_events()
        .into_iter()
        .filter(audit_is_write)
        .filter(|e| {
            let r = &e["objectRef"]["resource"];
            r == "nodes" && t.names.iter().any(|n| e["objectRef"]["name"] == *n)
        })
        .filter(by_plugin)
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(
        writes.is_empty(),
        "no node or attachment written: {writes:?}"
    );
}

/// Watches the VolumeAttachments of one volume for as long as it lives and remembers
/// the most nodes it was ever attached to at once (RWO: must stay 1).
pub struct AttachWatch {
    max: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl AttachWatch {
    pub async fn start(ns: &TestNs, pv: &str) -> AttachWatch {
        use futures::StreamExt;
        use kube::runtime::watcher;
        let api: Api<VolumeAttachment> = Api::all(ns.client.clone());
        let max = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (m, pv) = (max.clone(), pv.to_string());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut state: std::collections::BTreeMap<String, bool> = Default::default();
            let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                match ev {
                    watcher::Event::Apply(va) | watcher::Event::InitApply(va) => {
                        if nodes::attachment_volume(&va) == Some(pv.as_str()) {
                            state.insert(va.name_any(), nodes::is_attached(&va));
                        }
                    }
                    watcher::Event::Delete(va) => {
                        state.remove(&va.name_any());
                    }
                    watcher::Event::Init => state.clear(),
                    watcher::Event::InitDone => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                let now = state.values().filter(|a| **a).count();
                m.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(30), ready_rx).await;
        AttachWatch { max, task }
    }

    /// Most nodes the volume was attached to at the same moment, so far.
    pub fn max_attached(&self) -> usize {
        self.max.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for AttachWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Two pods of one identity never ran at once: pod names are unique in the API, so the
/// other half is the volume: `watch` saw it attached to one node at a time, and it is
/// attached now only where the replacement runs.
pub async fn same_identity_never_twice(
    ns: &TestNs,
    name: &str,
    old_uid: &str,
    watch: &AttachWatch,
) {
    let p = pod(ns, name).await.expect("replacement");
    assert_ne!(p.uid().as_deref(), Some(old_uid));
    assert_eq!(
        watch.max_attached(),
        1,
        "the volume was attached to one node at a time"
    );
    let pv = volume_of(ns, &format!("data-{name}")).await;
    let atts = attachments_of(ns, &pv).await;
    assert_eq!(atts.len(), 1, "attached to exactly one node: {atts:?}");
    assert_eq!(
        Some(atts[0].0.as_str()),
        model::node(&p),
        "attached where it runs"
    );
}

#[tokio::test]
async fn recover_refuses_without_fencing_and_without_enough_silence() {
    let ns = TestNs::new("recover-refuse").await;
    let t = spread(&ns, "OrderedReady").await;
    // A healthy pod named explicitly: exit 3 with the reason.
    ns.plugin(&["recover", "db", "db-0", "--min-down", "0s", "--yes"])
        .await
        .expect_code(3)
        .expect_error_line("is Ready: a pod on a healthy node is never recovered");
    // Nothing stranded: exit 0.
    let r = ns.plugin(&["recover", "db", "--min-down", "0s"]).await;
    r.expect_code(0);
    assert!(r.stderr.contains("nothing to recover"), "{}", r.stderr);
    let (node, uid) = strand(&ns, &t, "db-1").await;
    // Silent for less than --min-down.
    ns.plugin(&[
        "recover",
        "db",
        "--min-down",
        "1h",
        "--yes",
        "--fence-cmd",
        "true",
    ])
    .await
    .expect_code(3)
    .expect_error_line("--min-down is 60m");
    // No terminal, no fence command: --yes alone is not enough.
    ns.plugin(&["recover", "db", "--min-down", "5s", "--yes"])
        .await
        .expect_code(3)
        .expect_error_line("--yes alone is never enough");
    // A fence command that fails.
    let r = ns
        .plugin(&[
            "recover",
            "db",
            "--min-down",
            "5s",
            "--yes",
            "--fence-cmd",
            "echo \"BMC of $NODE_NAME unreachable\"; exit 7",
        ])
        .await;
    r.expect_code(3);
    assert!(r.stderr.contains("--fence-cmd exited 7"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("BMC of {node} unreachable")),
        "{}",
        r.stderr
    );
    // The plan shows the evidence, the risk and the steps.
    let r = ns
        .plugin(&["recover", "db", "--min-down", "5s", "--dry-run"])
        .await;
    r.expect_code(0);
    for needle in [
        "Evidence",
        &node,
        "Ready=Unknown",
        "split brain",
        "db-1",
        "Steps:",
    ] {
        assert!(r.stdout.contains(needle), "{needle} missing:\n{}", r.stdout);
    }
    let j = ns
        .plugin(&[
            "recover",
            "db",
            "--min-down",
            "5s",
            "--dry-run",
            "-o",
            "json",
        ])
        .await;
    let j = j.expect_code(0).json();
    assert_eq!(j["kind"], "RecoverPlan");
    // auto picks the method the server has.
    let v = ns.client.apiserver_version().await.unwrap();
    let minor: u32 = v.minor.trim_end_matches('+').parse().unwrap();
    let expected = if minor >= 26 {
        "out-of-service"
    } else {
        "force-delete"
    };
    assert_eq!(j["method"], expected, "auto on {}", v.git_version);
    assert_eq!(j["pods"][0]["name"], "db-1");
    assert_eq!(j["pods"][0]["uid"], uid.as_str());
    assert_eq!(j["nodes"][0]["name"], node.as_str());
    assert!(j["nodes"][0]["silentSeconds"].as_i64().unwrap() >= 5);
    // doctor and status point at it.
    let d = ns.plugin(&["doctor", "db", "-o", "json"]).await;
    assert!(d.stdout.contains("pod-stranded"), "{}", d.stdout);
    let s = ns.plugin(&["status", "db"]).await;
    assert!(s.stdout.contains("stranded"), "{}", s.stdout);
    nothing_written(&ns, &t);
    let still = pod(&ns, "db-1").await.unwrap();
    assert_eq!(still.uid().as_deref(), Some(uid.as_str()));
    let pv = volume_of(&ns, "data-db-1").await;
    assert_eq!(
        attachments_of(&ns, &pv).await,
        vec![(node.clone(), true)],
        "still attached"
    );
    t.power(&node, true).await;
}

#[tokio::test]
async fn recover_refuses_when_the_node_comes_back_between_plan_and_act() {
    let ns = TestNs::new("recover-race").await;
    let t = spread(&ns, "OrderedReady").await;
    let (node, _uid) = strand(&ns, &t, "db-1").await;
    // The fence command revives the node (the worst case: it was not off after all),
    // and waits until its Lease is renewed; the re-check must see it.
    let fence = format!(
        "kubectl --kubeconfig {kc} --context sts-safe-admin annotate node \"$NODE_NAME\" sim.sts-safe.dev/power=on --overwrite >/dev/null && \
         for i in $(seq 50); do kubectl --kubeconfig {kc} --context sts-safe-admin get node \"$NODE_NAME\" -o jsonpath='{{.status.conditions[?(@.type==\"Ready\")].status}}' | grep -q True && exit 0; sleep 0.2; done; exit 0",
        kc = crate::support::kubeconfig().display()
    );
    let r = ns
        .plugin(&[
            "recover",
            "db",
            "--min-down",
            "5s",
            "--yes",
            "--fence-cmd",
            &fence,
        ])
        .await;
    r.expect_code(3);
    assert!(
        r.stderr.contains("came back between the plan and now"),
        "{}",
        r.stderr
    );
    // Nothing written but the lock and its verdict (the run took the lock before fencing).
    let writes: BTreeSet<String> = plugin_audit_events(&ns.name)
        .iter()
        .filter(|e| audit_is_write(e))
        .map(|e| {
            e["objectRef"]["resource"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        writes.iter().all(|r| r == "leases" || r == "statefulsets"),
        "{writes:?}"
    );
    assert!(
        !plugin_audit_events(&ns.name)
            .iter()
            .any(|e| e["objectRef"]["resource"] == "pods" && audit_is_write(e)),
        "no pod written"
    );
    no_node_written(&t);
    // (The revived kubelet itself then finishes the eviction: the pod's replacement is the
    // StatefulSet controller's doing, not the plugin's.)
    let _ = node;
}

pub mod current {
    //! The out-of-service path (1.26+).
    use super::*;

    #[tokio::test]
    async fn recover_with_the_out_of_service_taint_brings_the_pod_back_on_a_live_node() {
        let ns = TestNs::new("recover-oos").await;
        let t = spread(&ns, "OrderedReady").await;
        let before: Vec<(String, String)> = ["db-0", "db-2"]
            .iter()
            .map(|n| (n.to_string(), String::new()))
            .collect();
        let mut uids = vec![];
        for (n, _) in &before {
            uids.push(pod(&ns, n).await.unwrap().uid().unwrap());
        }
        // A second workload's pod on the same node, which the taint affects too.
        let p1 = pod(&ns, "db-1").await.unwrap();
        let lost = model::node(&p1).unwrap().to_string();
        ns.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: bystander}}
spec:
  nodeName: {lost}
  tolerations: [{{key: sts-safe.dev/test, operator: Exists}}]
  containers: [{{name: c, image: "busybox:1"}}]
"#
        ))
        .await;
        ns.eventually(Duration::from_secs(30), "bystander Ready", || async {
            pod(&ns, "bystander")
                .await
                .filter(model::is_ready)
                .map(|_| ())
        })
        .await;
        let pv = volume_of(&ns, "data-db-1").await;
        let watch = AttachWatch::start(&ns, &pv).await;
        let (node, uid) = strand(&ns, &t, "db-1").await;
        assert_eq!(node, lost);
        assert_eq!(attachments_of(&ns, &pv).await, vec![(lost.clone(), true)]);
        let fence = "test -n \"$NODE_NAME\" && echo \"powered off $NODE_NAME\"";
        let r = ns
            .plugin(&[
                "recover",
                "db",
                "--min-down",
                "5s",
                "--yes",
                "--fence-cmd",
                fence,
                "--timeout",
                "2m",
            ])
            .await;
        r.expect_code(0);
        assert!(
            r.stdout.contains("bystander"),
            "the plan lists the other workload's pod:\n{}",
            r.stdout
        );
        assert!(
            r.stderr.contains(&format!("powered off {lost}")),
            "{}",
            r.stderr
        );
        assert!(r.stdout.contains("recover --untaint"), "{}", r.stdout);
        // The node carries the taint; db-1 runs elsewhere with the same claim and volume.
        let n = t.node(&lost).await;
        assert!(nodes::out_of_service(&n));
        let back = pod(&ns, "db-1").await.unwrap();
        assert!(model::is_ready(&back));
        assert_ne!(model::node(&back), Some(lost.as_str()));
        assert_eq!(
            volume_of(&ns, "data-db-1").await,
            pv,
            "same claim, same volume"
        );
        same_identity_never_twice(&ns, "db-1", &uid, &watch).await;
        // The other pods were not touched.
        for ((n, _), u) in before.iter().zip(&uids) {
            assert_eq!(
                pod(&ns, n).await.unwrap().uid().as_deref(),
                Some(u.as_str())
            );
        }
        // The control plane, not the plugin, deletes the bystander.
        ns.eventually(
            Duration::from_secs(60),
            "the control plane deletes the bystander",
            || async { pod(&ns, "bystander").await.is_none().then_some(()) },
        )
        .await;
        let plugin_deleted: Vec<String> = plugin_audit_events(&ns.name)
            .iter()
            .filter(|e| e["verb"] == "delete" && e["objectRef"]["resource"] == "pods")
            .map(|e| e["objectRef"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            plugin_deleted,
            vec!["db-1"],
            "the plugin deleted only its own stranded pod"
        );
        // The Event on the StatefulSet names who, which node, which method.
        let events = ns
            .api::<k8s_openapi::api::core::v1::Event>()
            .list(&ListParams::default().fields("involvedObject.kind=StatefulSet"))
            .await
            .unwrap();
        let rec = events
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("Recovering"))
            .expect("Recovering event");
        let msg = rec.message.as_deref().unwrap_or("");
        assert!(
            msg.contains(&lost) && msg.contains("out-of-service") && msg.contains("--fence-cmd"),
            "{msg}"
        );
        // --untaint is refused while the node is down, accepted once it is back.
        ns.plugin(&["recover", "--untaint", &lost, "--yes"])
            .await
            .expect_code(3)
            .expect_error_line("is not back");
        t.power(&lost, true).await;
        ns.eventually(Duration::from_secs(30), "the node Ready again", || async {
            nodes::is_ready(&t.node(&lost).await).then_some(())
        })
        .await;
        ns.plugin(&["recover", "--untaint", &lost, "--yes"])
            .await
            .expect_code(0);
        assert!(!nodes::out_of_service(&t.node(&lost).await));
    }

    #[tokio::test]
    async fn recover_brings_back_two_pods_of_a_parallel_statefulset_on_one_lost_node() {
        let ns = TestNs::new("recover-par").await;
        let t = TestNodes::new(&ns, 2).await;
        ns.apply(&t.statefulset("db", 4, "Parallel")).await;
        ns.wait_ready("db", Duration::from_secs(90)).await;
        let pods = ns.pods().await;
        let lost = model::node(&pods[0]).unwrap().to_string();
        let on_lost: Vec<String> = pods
            .iter()
            .filter(|p| model::node(p) == Some(lost.as_str()))
            .map(|p| p.name_any())
            .collect();
        assert!(on_lost.len() >= 2, "two pods on one node: {on_lost:?}");
        t.power(&lost, false).await;
        ns.eventually(Duration::from_secs(90), "both Terminating", || async {
            let mut all = true;
            for n in &on_lost {
                all &= pod(&ns, n).await.is_some_and(|p| past_grace(&p));
            }
            all.then_some(())
        })
        .await;
        // Only the other node is left: the replacements go there.
        let r = ns
            .plugin(&[
                "recover",
                "db",
                "--min-down",
                "5s",
                "--yes",
                "--fence-cmd",
                "true",
                "--timeout",
                "2m",
                "-o",
                "json",
            ])
            .await;
        let j = r.expect_code(0).json();
        assert_eq!(j["kind"], "RecoverReport");
        let recovered: BTreeSet<String> = j["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(recovered, on_lost.iter().cloned().collect());
        for n in &on_lost {
            let p = pod(&ns, n).await.unwrap();
            assert!(model::is_ready(&p));
            assert_ne!(model::node(&p), Some(lost.as_str()));
        }
        t.power(&lost, true).await;
    }
}

pub mod floor {
    //! The force-delete path as on servers without the out-of-service taint: `make test`
    //! runs this module on the 1.20 floor only (the controller's wait is 6 minutes).
    use std::time::Instant;

    use super::*;

    /// A 3-replica StatefulSet on nodes of its own with db-1 stranded, its volume watched.
    struct Stranded {
        ns: TestNs,
        t: TestNodes,
        pv: String,
        watch: AttachWatch,
        lost: String,
        uid: String,
        /// This test's attachments (other tests on the cluster have their own).
        ours: Vec<String>,
    }

    /// db-1 is Ready again on another node than `lost`, with the same volume, which was
    /// never attached to two nodes at once.
    async fn expect_back(ns: &TestNs, lost: &str, pv: &str, uid: &str, watch: &AttachWatch) {
        let back = pod(ns, "db-1").await.unwrap();
        assert!(model::is_ready(&back));
        assert_ne!(model::node(&back), Some(lost));
        assert_eq!(volume_of(ns, "data-db-1").await, pv);
        same_identity_never_twice(ns, "db-1", uid, watch).await;
    }

    /// The plugin's deletes of the attachments named in `ours` (by name).
    fn plugin_attachment_deletes(ours: &[String]) -> Vec<String> {
        audit_cluster_events()
            .iter()
            .filter(|e| e["objectRef"]["resource"] == "volumeattachments" && e["verb"] == "delete")
            .filter(|e| ours.iter().any(|n| e["objectRef"]["name"] == *n))
            .filter(|e| by_plugin(e))
            .map(|e| e["objectRef"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    async fn stranded_db1(prefix: &str) -> Stranded {
        let ns = TestNs::new(prefix).await;
        let t = spread(&ns, "OrderedReady").await;
        let pv = volume_of(&ns, "data-db-1").await;
        let watch = AttachWatch::start(&ns, &pv).await;
        let (lost, uid) = strand(&ns, &t, "db-1").await;
        let ours = attachment_names(&ns, &pv).await;
        Stranded {
            ns,
            t,
            pv,
            watch,
            lost,
            uid,
            ours,
        }
    }

    #[tokio::test]
    async fn recover_force_delete_waits_for_the_controllers_force_detach() {
        let Stranded {
            ns,
            t,
            pv,
            watch,
            lost,
            uid,
            ours,
        } = stranded_db1("recover-fd").await;
        let started = Instant::now();
        let r = ns
            .plugin(&[
                "recover",
                "db",
                "--method",
                "force-delete",
                "--min-down",
                "5s",
                "--yes",
                "--fence-cmd",
                "true",
                "--timeout",
                "9m",
            ])
            .await;
        r.expect_code(0);
        let took = started.elapsed();
        // The attach/detach controller detached the volume only after its timeout, and
        // the plugin said so while it waited.
        assert!(
            took >= Duration::from_secs(5 * 60),
            "took {took:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("force-detaches it in about 5m"),
            "a countdown: {}",
            r.stderr
        );
        expect_back(&ns, &lost, &pv, &uid, &watch).await;
        // The plugin never deleted this test's attachment: the controller detached it.
        let by_plugin = plugin_attachment_deletes(&ours);
        assert!(by_plugin.is_empty(), "{by_plugin:?}");
        t.power(&lost, true).await;
    }

    #[tokio::test]
    async fn recover_force_delete_with_delete_attachments_does_not_wait_for_the_timeout() {
        let Stranded {
            ns,
            t,
            pv,
            watch,
            lost,
            uid,
            ours,
        } = stranded_db1("recover-va").await;
        let started = Instant::now();
        let r = ns
            .plugin(&[
                "recover",
                "db",
                "--method",
                "force-delete",
                "--delete-attachments",
                "--min-down",
                "5s",
                "--yes",
                "--fence-cmd",
                "true",
                "--timeout",
                "4m",
            ])
            .await;
        r.expect_code(0);
        assert!(started.elapsed() < Duration::from_secs(5 * 60));
        assert!(
            r.stdout.contains("--delete-attachments"),
            "the plan warns: {}",
            r.stdout
        );
        let deleted = plugin_attachment_deletes(&ours);
        assert_eq!(deleted.len(), 1, "{deleted:?}");
        expect_back(&ns, &lost, &pv, &uid, &watch).await;
        t.power(&lost, true).await;
    }
}
