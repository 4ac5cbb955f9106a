//! Fault family 5, least privilege: every write path as `sts-safe-limited` with only
//! deploy/rbac.yaml, at -vvv, and no key, certificate or bearer token ever in the output.

use std::process::Stdio;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;

use super::*;
use crate::support::{images_of, kubeconfig, template_of, Check, Recorder, Run, TestNs, PLUGIN};

/// Strings that must never be printed: the kubeconfig users' key and certificate data,
/// whole and line by line of the decoded PEM.
fn kubeconfig_secrets() -> Vec<String> {
    let kc: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
    let mut out = vec![];
    for u in kc["users"].as_array().unwrap() {
        for field in ["client-key-data", "client-certificate-data"] {
            let Some(data) = u["user"][field].as_str() else {
                continue;
            };
            out.push(data.to_string());
            out.push(data[..40.min(data.len())].to_string());
            let pem = String::from_utf8(
                STANDARD
                    .decode(data)
                    .expect("base64 key and certificate data"),
            )
            .unwrap_or_default();
            out.extend(
                pem.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 32)
                    .map(str::to_string),
            );
        }
    }
    assert!(
        out.len() > 8,
        "client key and certificate data in the kubeconfig"
    );
    out
}

#[track_caller]
fn assert_no_secret(r: &Run, secrets: &[String], what: &str) {
    for s in secrets {
        assert!(
            !r.stderr.contains(s.as_str()) && !r.stdout.contains(s.as_str()),
            "{what}: the output contains secret material ({}…)",
            &s[..12.min(s.len())]
        );
    }
}

#[tokio::test]
async fn least_privilege_every_write_path_with_the_shipped_role_and_no_secret_in_logs() {
    let ns = TestNs::new("fault-rbac").await;
    ns.ready_redis(2).await;
    ns.grant_limited_user().await;
    let secrets = kubeconfig_secrets();
    let rec = Recorder::start(&ns).await;
    let good = template_of(&ns.sts("redis").await);
    let steps: Vec<(Vec<&str>, i32)> = vec![
        (vec!["status", "redis"], 0),
        (vec!["doctor", "redis"], 0),
        (
            vec![
                "canary",
                "redis",
                "--image",
                "redis:7.4-alpine",
                "--dry-run=server",
            ],
            0,
        ),
        (
            vec!["canary", "redis", "--image", "redis:7.4-alpine", "--yes"],
            0,
        ),
        (
            vec!["canary", "redis", "--image", "redis:7.5-crashloop", "--yes"],
            3,
        ),
        (vec!["rollback", "redis", "--dry-run=server"], 0),
        (vec!["rollback", "redis", "--yes"], 0),
        (
            vec![
                "canary",
                "redis",
                "--image",
                "redis:7.6-alpine",
                "--on-failure",
                "rollback",
                "--yes",
            ],
            0,
        ),
        (
            vec!["scale", "redis", "--replicas", "4", "--dry-run=server"],
            0,
        ),
        (vec!["scale", "redis", "--replicas", "4", "--yes"], 0),
        (vec!["scale", "redis", "--replicas", "2", "--yes"], 0),
        (vec!["prune-pvcs", "redis", "--dry-run=server"], 0),
        (vec!["prune-pvcs", "redis", "--yes"], 0),
        (vec!["status", "redis", "-o", "json"], 0),
    ];
    for (args, code) in &steps {
        let mut argv = args.clone();
        argv.push("-vvv");
        let r = plugin(&ns, LIMITED, &argv).await;
        expect_code(&r, *code, &format!("{args:?} as {LIMITED}"));
        assert!(
            r.stderr.lines().count() > 3,
            "{args:?}: -vvv logs something"
        );
        assert_no_secret(&r, &secrets, &format!("{args:?} -vvv"));
    }
    let sts = ns.wait_ready("redis", WAIT).await;
    assert_eq!(sts.spec.replicas, Some(2));
    assert_eq!(images_of(&template_of(&sts)), ["redis:7.6-alpine"]);
    // Deleted claims go once the pvc-protection finalizer lets them.
    ns.eventually(WAIT, "prune's two deletions to complete", || async {
        (ns.pvc_names().await == ["redis-data-redis-0", "redis-data-redis-1"]).then_some(())
    })
    .await;
    rec.caught_up().await;
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![
            images_of(&good),
            vec!["redis:7.4-alpine".into()],
            vec!["redis:7.6-alpine".into()],
        ],
    };
    rec.analyse(&check).assert_safe(&check, "limited user");
}

/// resize-pvcs's write paths as `sts-safe-limited` with only deploy/rbac.yaml: the
/// server dry run, the resize with its re-create (configmap, delete, create) and the pod
/// restarts through evictions, at -vvv, with no secret in the output.
#[tokio::test]
async fn least_privilege_resize_pvcs_with_the_shipped_role() {
    let ns = TestNs::new("fault-rbac-resize").await;
    ns.ready_redis_in_class(2, "sim-offline").await;
    ns.grant_limited_user().await;
    let secrets = kubeconfig_secrets();
    let steps: Vec<(Vec<&str>, i32)> = vec![
        (
            vec!["resize-pvcs", "redis", "--size", "20Gi", "--dry-run=server"],
            0,
        ),
        (vec!["resize-pvcs", "redis", "--size", "20Gi", "--yes"], 0),
        (
            vec![
                "resize-pvcs",
                "redis",
                "--size",
                "20Gi",
                "--restart-pods",
                "--yes",
            ],
            0,
        ),
    ];
    for (args, code) in &steps {
        let mut argv = args.clone();
        argv.push("-vvv");
        let r = plugin(&ns, LIMITED, &argv).await;
        expect_code(&r, *code, &format!("{args:?} as {LIMITED}"));
        assert_no_secret(&r, &secrets, &format!("{args:?} -vvv"));
    }
    for p in ns.pvcs().await {
        assert_eq!(sts_safe::model::pvc_capacity(&p).as_deref(), Some("20Gi"));
    }
}

/// recover as `sts-safe-limited` with deploy/rbac.yaml in the namespace and
/// deploy/rbac-recover.yaml's ClusterRole and kube-node-lease Role bound: the plan, the
/// out-of-service taint (or, on the floor, the force delete) and the wait, at -vvv, with
/// no secret in the output; without the detach ClusterRole, `--delete-attachments` is
/// refused before anything is written.
#[tokio::test]
async fn least_privilege_recover_with_the_shipped_roles() {
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
    use kube::api::{Api, DeleteParams, PostParams};
    let ns = TestNs::new("fault-rbac-recover").await;
    ns.grant_limited_user().await;
    ns.apply(include_str!("../../../deploy/rbac-recover.yaml"))
        .await;
    let binding = format!("{}-recover", ns.name);
    let crb: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "sts-safe-recover"},
        "subjects": [{"kind": "User", "name": LIMITED, "apiGroup": "rbac.authorization.k8s.io"}]
    }))
    .unwrap();
    let crbs: Api<ClusterRoleBinding> = Api::all(ns.client.clone());
    crbs.create(&PostParams::default(), &crb)
        .await
        .expect("clusterrolebinding");
    // The node Lease Role, in kube-node-lease (apply puts namespaced kinds in the test's).
    let leases_ns = "kube-node-lease";
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": binding, "namespace": leases_ns},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]
    }))
    .unwrap();
    let roles: Api<k8s_openapi::api::rbac::v1::Role> =
        Api::namespaced(ns.client.clone(), leases_ns);
    roles
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let rb: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": binding, "namespace": leases_ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": binding},
        "subjects": [{"kind": "User", "name": LIMITED, "apiGroup": "rbac.authorization.k8s.io"}]
    }))
    .unwrap();
    let rbs: Api<RoleBinding> = Api::namespaced(ns.client.clone(), leases_ns);
    rbs.create(&PostParams::default(), &rb)
        .await
        .expect("rolebinding");
    let t = crate::recover::TestNodes::new(&ns, 2).await;
    ns.apply(&t.statefulset("redis", 1, "OrderedReady")).await;
    ns.wait_ready("redis", WAIT).await;
    let (lost, _) = crate::recover::strand(&ns, &t, "redis-0").await;
    let secrets = kubeconfig_secrets();
    let refused = plugin(
        &ns,
        LIMITED,
        &[
            "recover",
            "redis",
            "--method",
            "force-delete",
            "--delete-attachments",
            "--min-down",
            "5s",
            "--yes",
            "--fence-cmd",
            "true",
        ],
    )
    .await;
    expect_code(
        &refused,
        1,
        "--delete-attachments without sts-safe-recover-detach",
    );
    assert!(
        refused.stderr.contains("cannot delete volumeattachments"),
        "{}",
        refused.stderr
    );
    // The out-of-service taint where the server has it; on the floor, force-delete with
    // --delete-attachments (its ClusterRole bound now), so the test does not sit out the
    // controller's 6-minute force detach.
    let v = ns.client.apiserver_version().await.unwrap();
    let current = v.minor.trim_end_matches('+').parse::<u32>().unwrap_or(0) >= 26;
    let detach = format!("{binding}-detach");
    if !current {
        let crb: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": detach},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "sts-safe-recover-detach"},
            "subjects": [{"kind": "User", "name": LIMITED, "apiGroup": "rbac.authorization.k8s.io"}]
        }))
        .unwrap();
        crbs.create(&PostParams::default(), &crb)
            .await
            .expect("clusterrolebinding");
    }
    let mut args = vec![
        "recover",
        "redis",
        "--min-down",
        "5s",
        "--yes",
        "--fence-cmd",
        "true",
        "--timeout",
        "4m",
        "-vvv",
    ];
    if !current {
        args.extend(["--method", "force-delete", "--delete-attachments"]);
    }
    let r = plugin(&ns, LIMITED, &args).await;
    expect_code(&r, 0, &format!("recover as {LIMITED}"));
    assert_no_secret(&r, &secrets, "recover -vvv");
    let back = crate::recover::pod(&ns, "redis-0").await.unwrap();
    assert!(sts_safe::model::is_ready(&back));
    assert_ne!(sts_safe::model::node(&back), Some(lost.as_str()));
    t.power(&lost, true).await;
    let _ = crbs.delete(&binding, &DeleteParams::default()).await;
    let _ = crbs.delete(&detach, &DeleteParams::default()).await;
    let _ = rbs.delete(&binding, &DeleteParams::default()).await;
    let _ = roles.delete(&binding, &DeleteParams::default()).await;
}

/// A bearer-token user (a ServiceAccount bound to deploy/rbac.yaml's Role) against the
/// same server and CA: the token never appears at -vvv, whether the requests succeed or
/// the token is refused.
#[tokio::test]
async fn bearer_token_never_appears_in_verbose_logs() {
    let ns = TestNs::new("fault-token").await;
    ns.ready_redis(2).await;
    ns.apply(include_str!("../../../deploy/rbac.yaml")).await;
    ns.apply(&format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: fault-sa}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: fault-sa}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: sts-safe}}
subjects: [{{kind: ServiceAccount, name: fault-sa, namespace: {}}}]
"#,
        ns.name
    ))
    .await;
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    });
    let answer: serde_json::Value = ns
        .api::<ServiceAccount>()
        .create_subresource("token", "fault-sa", &PostParams::default(), &request)
        .await
        .expect("a token for fault-sa");
    let token = answer["status"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let signature = token.rsplit('.').next().unwrap().to_string();
    let secrets = vec![
        token.clone(),
        signature,
        token[token.len() - 40..].to_string(),
    ];
    let dir = temp_dir(&ns);
    let (server, ca) = cluster_entry();
    let good = write_kubeconfig(
        &dir,
        "token",
        &server,
        Some(&ca),
        &format!("{{token: \"{token}\"}}"),
    );
    // The same token with one signature character changed: well-formed, but refused.
    let at = token.len() - 20;
    let swapped = if &token[at..at + 1] == "A" { "B" } else { "A" };
    let wrong_token = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    let bad = write_kubeconfig(
        &dir,
        "bad-token",
        &server,
        Some(&ca),
        &format!("{{token: \"{wrong_token}\"}}"),
    );
    let mut secrets_bad = secrets.clone();
    secrets_bad.push(wrong_token.clone());
    // The API server's authorizer learns of the new RoleBinding through its own watch:
    // under load that takes a moment. Wait until the token may read the StatefulSet.
    ns.eventually(
        Duration::from_secs(30),
        "the RoleBinding to take effect",
        || {
            let good = good.clone();
            let ns_name = ns.name.clone();
            async move {
                let out = tokio::process::Command::new(PLUGIN)
                    .args(["status", "redis", "-n", &ns_name, "--kubeconfig"])
                    .arg(&good)
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .ok()?;
                out.status.success().then_some(())
            }
        },
    )
    .await;

    for (args, code) in [
        (vec!["status", "redis"], 0),
        (vec!["scale", "redis", "--replicas", "3", "--yes"], 0),
        (
            vec!["canary", "redis", "--image", "redis:7.4-alpine", "--yes"],
            0,
        ),
        (vec!["status", "redis", "-w", "--request-timeout", "1s"], -1),
    ] {
        let mut cmd = tokio::process::Command::new(PLUGIN);
        cmd.args(&args)
            .args([
                "-n",
                &ns.name,
                "--kubeconfig",
                good.to_str().unwrap(),
                "-vvv",
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let r = if code == -1 {
            // --watch runs until stopped: let it watch for a moment, then stop it.
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            let child = cmd.spawn().unwrap();
            let pid = child.id().unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            finish(child, &args).await
        } else {
            Run::from(cmd.output().await.unwrap())
        };
        if code >= 0 {
            expect_code(&r, code, &format!("{args:?} with a bearer token"));
        }
        assert!(
            r.stderr.lines().count() > 3,
            "{args:?}: -vvv logs something"
        );
        assert_no_secret(
            &r,
            &secrets,
            &format!("{args:?} with a bearer token at -vvv"),
        );
    }
    let r = Run::from(
        tokio::process::Command::new(PLUGIN)
            .args([
                "status",
                "redis",
                "-n",
                &ns.name,
                "--kubeconfig",
                bad.to_str().unwrap(),
                "-vvv",
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap(),
    );
    expect_code(&r, 1, "a refused bearer token");
    assert!(
        last_line(&r.stderr).contains("authentication failed"),
        "{}",
        r.stderr
    );
    assert_no_secret(&r, &secrets_bad, "a refused bearer token at -vvv");
}
