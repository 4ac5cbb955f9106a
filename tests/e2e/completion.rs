//! `kubectl sts-safe <TAB>` names live objects, through the real kubectl: the
//! StatefulSets of the namespace the line points at (-n, --context, --kubeconfig given
//! earlier on the line), a StatefulSet's containers for --image, its pods for recover,
//! the namespaces for -n, the kubeconfig's contexts for --context.

#[path = "../support/complete.rs"]
mod complete_support;

use std::path::Path;

use complete_support::{complete, kubectls};

use crate::support::{kubeconfig, TestNs};

/// cobra's NoFileComp, and NoSpace|NoFileComp (a container name continues with its image).
const NO_FILES: u32 = 4;
const NO_SPACE_NO_FILES: u32 = 6;

const SECOND: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: queue}
spec:
  serviceName: queue
  replicas: 1
  selector: {matchLabels: {app: queue}}
  template:
    metadata: {labels: {app: queue}}
    spec:
      containers:
      - {name: broker, image: "rabbitmq:3.13"}
      - {name: exporter, image: "kbudde/rabbitmq-exporter:1.0"}
"#;

#[tokio::test]
async fn names_come_from_the_cluster_the_line_points_at() {
    let ns = TestNs::new("complete").await;
    ns.ready_redis(2).await;
    ns.apply(SECOND).await;
    let kc = kubeconfig();
    let kc = kc.to_str().unwrap();
    let env = [("KUBECONFIG", kc)];
    let n = ns.name.as_str();

    // Every kubectl minor finds the StatefulSets of the namespace given on the line.
    for (version, kubectl) in kubectls() {
        let a = complete(&kubectl, &env, &["canary", "-n", n, ""]);
        assert_eq!(a.values, ["queue", "redis"], "kubectl {version}: {a:?}");
        assert_eq!(a.directive, Some(NO_FILES), "kubectl {version}");
    }
    let kubectl = Path::new("kubectl");
    // A prefix, the flag after the command, and every command's NAME.
    for cmd in [
        "status",
        "doctor",
        "rollback",
        "scale",
        "prune-pvcs",
        "resize-pvcs",
    ] {
        let a = complete(kubectl, &env, &[cmd, "--namespace", n, "r"]);
        assert_eq!(a.values, ["redis"], "{cmd}: {a:?}");
    }
    // --kubeconfig and --context on the line, no $KUBECONFIG.
    let a = complete(
        kubectl,
        &[("KUBECONFIG", "/nonexistent")],
        &[
            "--kubeconfig",
            kc,
            "--context",
            "sts-safe-admin",
            "scale",
            "-n",
            n,
            "",
        ],
    );
    assert_eq!(a.values, ["queue", "redis"], "{a:?}");
    // Another namespace has other names: none here.
    let a = complete(kubectl, &env, &["status", "-n", "kube-public", ""]);
    assert!(a.values.is_empty(), "{a:?}");

    // --image: CONTAINER= of the StatefulSet named on the line, no space after it.
    let a = complete(kubectl, &env, &["canary", "queue", "-n", n, "--image", ""]);
    assert_eq!(a.values, ["broker=", "exporter="], "{a:?}");
    assert_eq!(a.directive, Some(NO_SPACE_NO_FILES));
    let a = complete(
        kubectl,
        &env,
        &["canary", "-n", n, "redis", "--image", "re"],
    );
    assert_eq!(a.values, ["redis="], "{a:?}");

    // recover: the StatefulSet's pods, not the other one's.
    let a = complete(kubectl, &env, &["recover", "redis", "-n", n, ""]);
    assert_eq!(a.values, ["redis-0", "redis-1"], "{a:?}");

    // -n: namespaces, filtered by what is typed.
    let a = complete(kubectl, &env, &["status", "-n", "t-complete"]);
    assert!(a.values.iter().any(|v| v == n), "{a:?}");
    assert!(
        a.values.iter().all(|v| v.starts_with("t-complete")),
        "{a:?}"
    );

    // --context: the kubeconfig's contexts.
    let a = complete(kubectl, &env, &["status", "--context", "sts-safe-"]);
    assert!(a.values.iter().any(|v| v == "sts-safe-admin"), "{a:?}");

    // An identity that may not list StatefulSets there gets no names, and no error.
    let a = complete(
        kubectl,
        &env,
        &["status", "--context", "sts-safe-limited", "-n", n, ""],
    );
    assert!(a.values.is_empty(), "{a:?}");
}
