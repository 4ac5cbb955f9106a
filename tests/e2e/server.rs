//! Which server this run tests. `make test` starts each version of the local cluster and
//! sets `STS_SAFE_EXPECT_SERVER` to the version it started, so a silent fallback to
//! another server (a stale cluster left running, a wrong KUBECONFIG) fails the run.

use crate::support::TestNs;

/// The versions `scripts/cluster.sh` can start (K8S_VERSION).
const SUPPORTED: &[&str] = &["v1.37.2", "v1.20.2"];

#[tokio::test]
async fn the_server_is_the_expected_version() {
    let ns = TestNs::new("server-version").await;
    let info = ns.client.apiserver_version().await.expect("GET /version");
    let version = info.git_version;
    match std::env::var("STS_SAFE_EXPECT_SERVER") {
        Ok(want) if !want.is_empty() => assert_eq!(
            version, want,
            "the tests ran against {version}, but make test started {want}"
        ),
        _ => assert!(
            SUPPORTED.contains(&version.as_str()),
            "server {version} is none of the local cluster's versions {SUPPORTED:?}"
        ),
    }
    // The nodes are sim-kubelet's, on every version: its own `sim-node-*`, and the nodes
    // tests create for themselves (recover), which carry its label too.
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(ns.client.clone());
    let list = nodes.list(&Default::default()).await.expect("list nodes");
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(names.iter().any(|n| n == "sim-node-0"), "{names:?}");
    assert!(
        list.items.iter().all(|n| n
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get("sim.sts-safe.dev/node").map(String::as_str) == Some("true"))),
        "every node is played by sim-kubelet: {names:?}"
    );
}
