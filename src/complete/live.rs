//! Live names for completion, read from the cluster the line points at (its
//! --kubeconfig, --context and -n), all under one deadline.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use super::words::{Candidate, Line, Scope, Want};
use crate::cli::{GlobalArgs, Output};
use crate::context::{kubeconfig_contexts, Ctx};

/// The taint `recover` puts on a lost node: those nodes come first for --untaint.
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// The names `line.want` asks for; none when the cluster does not answer in time.
pub fn names(line: &Line, deadline: Duration) -> Vec<Candidate> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime.block_on(async {
        tokio::time::timeout(deadline, lookup(line, deadline))
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    })
}

/// The kubeconfig's contexts (no cluster needed).
pub fn contexts(scope: &Scope) -> Vec<Candidate> {
    kubeconfig_contexts(scope.kubeconfig.as_deref())
        .into_iter()
        .map(|n| Candidate::new(n, None))
        .collect()
}

async fn lookup(line: &Line, deadline: Duration) -> Option<Vec<Candidate>> {
    let global = GlobalArgs {
        kubeconfig: line.scope.kubeconfig.clone(),
        context: line.scope.context.clone(),
        namespace: line.scope.namespace.clone(),
        output: Output::Text,
        request_timeout: Some(deadline),
        verbose: 0,
        no_color: true,
    };
    let ctx = Ctx::from_args(&global).await.ok()?;
    let client = ctx.client.clone();
    let all = ListParams::default();
    let names = match &line.want {
        Want::StatefulSets => ctx
            .api::<StatefulSet>()
            .list_metadata(&all)
            .await
            .ok()?
            .items
            .iter()
            .map(|s| s.name_any())
            .collect(),
        Want::Namespaces => Api::<Namespace>::all(client)
            .list_metadata(&all)
            .await
            .ok()?
            .items
            .iter()
            .map(|n| n.name_any())
            .collect(),
        Want::Pods(sts) => ctx
            .api::<Pod>()
            .list_metadata(&all)
            .await
            .ok()?
            .items
            .iter()
            .filter(|p| {
                p.owner_references()
                    .iter()
                    .any(|o| o.kind == "StatefulSet" && &o.name == sts)
            })
            .map(|p| p.name_any())
            .collect(),
        Want::Containers(sts) => ctx
            .api::<StatefulSet>()
            .get(sts)
            .await
            .ok()?
            .spec
            .template
            .spec
            .map(|p| p.containers.into_iter().map(|c| format!("{}=", c.name)))
            .into_iter()
            .flatten()
            .collect(),
        Want::Nodes => nodes(Api::<Node>::all(client).list(&all).await.ok()?.items),
        _ => Vec::new(),
    };
    Some(names.into_iter().map(|n| Candidate::new(n, None)).collect())
}

/// Nodes carrying the out-of-service taint (what --untaint is for); every node when none does.
fn nodes(nodes: Vec<Node>) -> Vec<String> {
    let tainted = |n: &Node| {
        n.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == OUT_OF_SERVICE))
    };
    let marked: Vec<String> = nodes
        .iter()
        .filter(|n| tainted(n))
        .map(|n| n.name_any())
        .collect();
    if marked.is_empty() {
        nodes.iter().map(|n| n.name_any()).collect()
    } else {
        marked
    }
}
