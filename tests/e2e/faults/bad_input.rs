//! Fault family 4, bad input: a table of flags, values, names, namespaces, contexts,
//! kubeconfigs, credentials, an unreachable server, 403 for each verb, OnDelete,
//! partition > replicas, replicas 0, …: one clear line, the documented exit code,
//! resourceVersion unchanged.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use sts_safe::model;

use super::*;
use crate::support::{kubeconfig, Run, TestNs, PLUGIN};

/// How a case reaches the cluster.
enum Via {
    /// The admin context, in the test namespace.
    Admin,
    /// The admin context with this namespace instead.
    AdminIn(String),
    /// `sts-safe-limited`, whose Role in the namespace lacks these (verb, resource) pairs
    /// of deploy/rbac.yaml (`*` = every rule).
    Limited(&'static [(&'static str, &'static str)]),
    /// `--kubeconfig FILE` (no --context).
    Kubeconfig(PathBuf),
    /// `$KUBECONFIG` set to this (no --kubeconfig, no --context).
    Env(String),
}

struct Case {
    args: Vec<String>,
    via: Via,
    /// The StatefulSet whose resourceVersion must not change.
    target: &'static str,
    /// Acceptable exit codes (one, except for names that are invalid: 1 or 2).
    codes: &'static [i32],
    /// Substrings of the one line on stderr.
    needles: Vec<String>,
}

fn case(args: &[&str], via: Via, codes: &'static [i32], needles: &[&str]) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        via,
        target: "redis",
        codes,
        needles: needles.iter().map(|s| s.to_string()).collect(),
    }
}

fn on(mut c: Case, target: &'static str) -> Case {
    c.target = target;
    c
}

/// A small StatefulSet without volumes.
fn small_sts(name: &str, replicas: i32, strategy: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  serviceName: {name}
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  updateStrategy: {strategy}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: main, image: "redis:7.2-alpine"}}]}}
"#
    )
}

/// (group, resource, verb) of every rule of deploy/rbac.yaml's Role.
fn shipped_rules() -> Vec<(String, String, String)> {
    let doc = serde_yaml::Deserializer::from_str(include_str!("../../../deploy/rbac.yaml"))
        .next()
        .expect("the Role");
    let role: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
    let mut out = vec![];
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    out.push((
                        g.as_str().unwrap().to_string(),
                        r.as_str().unwrap().to_string(),
                        v.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out
}

async fn can(ns: &TestNs, verb: &str, group: &str, resource: &str) -> Option<bool> {
    let sar: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {
            "user": LIMITED,
            "groups": ["sts-safe:limited", "system:authenticated"],
            "resourceAttributes": {"namespace": ns.name, "verb": verb, "group": group, "resource": resource}
        }
    }))
    .unwrap();
    let api: Api<SubjectAccessReview> = Api::all(ns.client.clone());
    let r = api.create(&PostParams::default(), &sar).await.ok()?;
    Some(r.status.is_some_and(|s| s.allowed))
}

/// Sets the limited user's Role to deploy/rbac.yaml's rules minus `missing`, and waits
/// until the authorizer applies it.
async fn limit_role(ns: &TestNs, missing: &[(&str, &str)]) {
    let keep: Vec<(String, String, String)> = shipped_rules()
        .into_iter()
        .filter(|(_, r, v)| {
            !missing
                .iter()
                .any(|(mv, mr)| *mr == "*" || (mv == v && mr == r))
        })
        .collect();
    let rules: Vec<serde_json::Value> = keep
        .iter()
        .map(|(g, r, v)| serde_json::json!({"apiGroups": [g], "resources": [r], "verbs": [v]}))
        .collect();
    ns.api::<Role>()
        .patch(
            "fault-case",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"rules": rules})),
        )
        .await
        .expect("update the case Role");
    let denied: Vec<(String, String, String)> = shipped_rules()
        .into_iter()
        .filter(|t| !keep.contains(t))
        .collect();
    ns.eventually(WAIT, "the authorizer to apply the Role", || async {
        for (g, r, v) in &denied {
            if can(ns, v, g, r).await? {
                return None;
            }
        }
        if let Some((g, r, v)) = keep.first() {
            if !can(ns, v, g, r).await? {
                return None;
            }
        }
        Some(())
    })
    .await;
}

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl on PATH");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A service-account token signed with the cluster's own signing key, expired an hour ago.
fn expired_token(ns: &str) -> String {
    let key = kubeconfig().parent().unwrap().join("pki/sa.key");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": issuer, "aud": [issuer], "sub": format!("system:serviceaccount:{ns}:default"),
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": "default", "uid": "00000000-0000-0000-0000-000000000000"}}
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let sig = openssl(
        &["dgst", "-sha256", "-sign", key.to_str().unwrap()],
        Some(signing_input.as_bytes()),
    );
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A self-signed certificate and key no part of the cluster trusts.
fn stranger_cert(dir: &Path) -> (String, String) {
    let (crt, key) = (dir.join("stranger.crt"), dir.join("stranger.key"));
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=stranger",
            "-days",
            "2",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ],
        None,
    );
    (
        STANDARD.encode(std::fs::read(crt).unwrap()),
        STANDARD.encode(std::fs::read(key).unwrap()),
    )
}

async fn run_case(ns: &TestNs, c: &Case) -> Run {
    let mut args: Vec<String> = c.args.clone();
    let mut cmd = tokio::process::Command::new(PLUGIN);
    cmd.env("NO_COLOR", "1").env("KUBECONFIG", kubeconfig());
    match &c.via {
        Via::Admin => args.extend([
            "-n".into(),
            ns.name.clone(),
            "--context".into(),
            ADMIN.into(),
        ]),
        Via::AdminIn(other) => {
            args.extend(["-n".into(), other.clone(), "--context".into(), ADMIN.into()])
        }
        Via::Limited(missing) => {
            limit_role(ns, missing).await;
            args.extend([
                "-n".into(),
                ns.name.clone(),
                "--context".into(),
                LIMITED.into(),
            ]);
        }
        Via::Kubeconfig(p) => args.extend([
            "-n".into(),
            ns.name.clone(),
            "--kubeconfig".into(),
            p.display().to_string(),
        ]),
        Via::Env(v) => {
            cmd.env("KUBECONFIG", v);
            args.extend(["-n".into(), ns.name.clone()]);
        }
    }
    cmd.args(&args).stdin(Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(120), cmd.output()).await {
        Ok(out) => Run::from(out.unwrap()),
        Err(_) => panic!("{args:?} did not finish within 120s"),
    }
}

/// Fails the test listing every failed case of a table.
#[track_caller]
fn assert_all_passed(what: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} {what} failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Runs every case; returns one description per failed expectation.
async fn run_table(ns: &TestNs, cases: &[Case]) -> Vec<String> {
    let mut failures = vec![];
    for (i, c) in cases.iter().enumerate() {
        let rv_before = get_sts(ns, c.target).await.resource_version();
        let r = run_case(ns, c).await;
        let rv_after = get_sts(ns, c.target).await.resource_version();
        let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut bad = vec![];
        if !c.codes.contains(&r.code) {
            bad.push(format!("exit {} (want {:?})", r.code, c.codes));
        }
        if lines.len() != 1 {
            bad.push(format!("{} lines on stderr", lines.len()));
        }
        let line = lines.first().copied().unwrap_or("");
        let is_error = line.starts_with("error: ");
        if (r.code != 0) != is_error {
            bad.push(
                "the line must start with \"error: \" exactly when the exit code is not 0".into(),
            );
        }
        for n in &c.needles {
            if !line.contains(n.as_str()) {
                bad.push(format!("line lacks {n:?}"));
            }
        }
        if r.stderr.contains("panicked") {
            bad.push("panicked".into());
        }
        if rv_before != rv_after {
            bad.push(format!(
                "statefulset {} changed: resourceVersion {rv_before:?} → {rv_after:?}",
                c.target
            ));
        }
        if !bad.is_empty() {
            failures.push(format!(
                "case {i} {:?}: {}\n    stderr: {}",
                c.args,
                bad.join("; "),
                r.stderr.trim_end().replace('\n', "\n            ")
            ));
        }
    }
    failures
}

/// The namespace of the bad-input cases: `redis` (2 replicas after a scale-down, so
/// redis-data-redis-2 is an orphan; a PDB with minAvailable 2), `ondel` (OnDelete),
/// `parted` (a pending rollout frozen at partition 5 > 1 replica), `zero` (0 replicas),
/// and the Role `fault-case` bound to the limited user.
async fn bad_input_namespace(prefix: &str) -> TestNs {
    let ns = TestNs::new(prefix).await;
    ns.ready_redis(3).await;
    scale_with_kubectl(&ns, 2).await;
    ns.apply(&small_sts("ondel", 1, "{type: OnDelete}")).await;
    ns.apply(&small_sts(
        "parted",
        1,
        "{type: RollingUpdate, rollingUpdate: {partition: 5}}",
    ))
    .await;
    ns.apply(&small_sts("zero", 0, "{type: RollingUpdate}"))
        .await;
    for s in ["ondel", "parted", "zero"] {
        ns.wait_ready(s, WAIT).await;
    }
    // A template change the controller must report as pending (partition 5 > replicas).
    // Rarely (seen once in ~60 runs, right after an API-server restart) the controller's
    // status write races the patch and it never reports the new revision; a further
    // template change makes it sync again, so nudge it rather than wait on one event.
    let mut pending = false;
    for image in [
        "redis:7.4-alpine",
        "redis:7.4.1-alpine",
        "redis:7.4.2-alpine",
    ] {
        ns.patch_sts(
            "parted",
            serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let s = ns.api::<StatefulSet>().get("parted").await.ok();
            if s.is_some_and(|s| model::observed(&s) && model::rollout_pending(&s)) {
                pending = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if pending {
            break;
        }
    }
    assert!(
        pending,
        "parted never reported a pending rollout in namespace {}",
        ns.name
    );
    ns.apply(
        r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: redis}
spec: {minAvailable: 2, selector: {matchLabels: {app: redis}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: fault-case}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: fault-case}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: fault-case}
subjects: [{kind: User, name: sts-safe-limited, apiGroup: rbac.authorization.k8s.io}]
"#,
    )
    .await;
    ns
}

#[tokio::test]
async fn bad_input_table() {
    let ns = bad_input_namespace("fault-input").await;
    let dir = temp_dir(&ns);
    let (server, ca) = cluster_entry();
    let patch = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let malformed_patch = patch("malformed.yaml", "spec: [containers: {\n");
    let list_patch = patch("list.yaml", "- spec: {}\n");
    let invalid_patch = patch(
        "invalid.yaml",
        "spec: {containers: [{name: redis, resources: {limits: {cpu: lots}}}]}\n",
    );
    let malformed_kc = dir.join("malformed-kubeconfig");
    std::fs::write(
        &malformed_kc,
        "apiVersion: v1\nclusters: [this is: not valid\n",
    )
    .unwrap();
    let no_current = dir.join("no-current-context");
    std::fs::write(
        &no_current,
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"}}}}]\nusers: [{{name: u, user: {{token: x}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n"),
    )
    .unwrap();
    let no_cluster = dir.join("no-cluster");
    std::fs::write(
        &no_cluster,
        "apiVersion: v1\nkind: Config\nclusters: []\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: ghost, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let no_user = write_kubeconfig(&dir, "no-user", &server, Some(&ca), "{}");
    let invalid_token = write_kubeconfig(
        &dir,
        "invalid-token",
        &server,
        Some(&ca),
        "{token: sts-safe-not-a-token}",
    );
    let expired = write_kubeconfig(
        &dir,
        "expired-token",
        &server,
        Some(&ca),
        &format!("{{token: \"{}\"}}", expired_token(&ns.name)),
    );
    let (stranger_crt, stranger_key) = stranger_cert(&dir);
    let unknown_cert = write_kubeconfig(
        &dir,
        "unknown-client-cert",
        &server,
        Some(&ca),
        &format!(
            "{{client-certificate-data: \"{stranger_crt}\", client-key-data: \"{stranger_key}\"}}"
        ),
    );
    let unreachable = write_kubeconfig(
        &dir,
        "unreachable",
        "https://127.0.0.1:1",
        Some(&ca),
        "{token: x}",
    );
    let kc = |p: &PathBuf| Via::Kubeconfig(p.clone());
    let long = "a".repeat(300);
    let long_ns = "n".repeat(300);
    let img = "redis:7.4-alpine";
    const E: &[i32] = &[1];
    const U: &[i32] = &[2];
    const S: &[i32] = &[3];
    const OK: &[i32] = &[0];
    const NAME: &[i32] = &[1, 2];

    let cases = vec![
        // usage errors (2)
        case(&["recover", "redis", "--method", "out-of-service", "--delete-attachments", "--yes"], Via::Admin, U, &["--delete-attachments goes with --method force-delete"]),
        case(&["recover", "redis", "--min-down", "soon"], Via::Admin, U, &["--min-down"]),
        case(&["recover", "redis", "--method", "sideways"], Via::Admin, U, &["sideways"]),
        case(&["recover", "redis", "--untaint", "node-1"], Via::Admin, U, &["cannot be used with"]),
        case(&["canary", "redis", "--yes"], Via::Admin, U, &["say what to roll out"]),
        case(&["canary", "redis", "--image", img, "--resume"], Via::Admin, U, &["cannot be used with"]),
        case(&["canary", "redis", "--image", "nope=redis:7", "--yes"], Via::Admin, U, &["has no container \"nope\""]),
        case(&["canary", "redis", "--image", "", "--yes"], Via::Admin, U, &["empty or contains spaces"]),
        case(&["canary", "redis", "--image", "redis 7", "--yes"], Via::Admin, U, &["empty or contains spaces"]),
        case(&["canary", "redis", "--image", img, "--steps", "0", "--yes"], Via::Admin, U, &["a count must be at least 1"]),
        case(&["canary", "redis", "--image", img, "--steps", "150%", "--yes"], Via::Admin, U, &["between 1% and 100%"]),
        case(&["canary", "redis", "--image", img, "--steps", "half", "--yes"], Via::Admin, U, &["\"half\" is not a pod count"]),
        case(&["canary", "redis", "--image", img, "--soak", "soon", "--yes"], Via::Admin, U, &["--soak"]),
        case(&["canary", "redis", "--image", img, "--step-timeout=-5s", "--yes"], Via::Admin, U, &["--step-timeout"]),
        case(&["canary", "redis", "--image", img, "--on-failure", "explode", "--yes"], Via::Admin, U, &["possible values: pause, rollback"]),
        case(&["canary", "redis", "--patch", "/nonexistent/patch.yaml", "--yes"], Via::Admin, U, &["--patch \"/nonexistent/patch.yaml\""]),
        case(&["canary", "redis", "--patch", &malformed_patch, "--yes"], Via::Admin, U, &["is not YAML or JSON"]),
        case(&["canary", "redis", "--patch", &list_patch, "--yes"], Via::Admin, U, &["must be a mapping"]),
        case(&["canary", "redis", "--patch", &invalid_patch, "--yes"], Via::Admin, U, &["was rejected"]),
        case(&["scale", "redis", "--replicas", "-3", "--yes"], Via::Admin, U, &["negative"]),
        case(&["scale", "redis", "--replicas", "many", "--yes"], Via::Admin, U, &["not a whole number"]),
        case(&["scale", "redis", "--replicas", "99999999999", "--yes"], Via::Admin, U, &["too large"]),
        case(&["scale", "redis", "--replicas", "3", "--step", "0", "--yes"], Via::Admin, U, &["--step"]),
        case(&["status", "redis", "-o", "xml"], Via::Admin, U, &["possible values: text, json, yaml"]),
        case(&["status", "redis", "--request-timeout", "fast"], Via::Admin, U, &["--request-timeout"]),
        case(&["frobnicate"], Via::Admin, U, &["unrecognized subcommand"]),
        case(&["prune-pvcs", "redis", "-A", "--yes"], Via::Admin, U, &["cannot be combined with -A"]),
        case(&["status", "redis", "-A"], Via::Admin, U, &["cannot be retrieved by name across all namespaces"]),
        case(&["doctor", "redis", "-A"], Via::Admin, U, &["cannot be retrieved by name across all namespaces"]),
        case(&["prune-pvcs", "redis", "-l", "", "--yes"], Via::Admin, U, &["-l/--selector is empty"]),
        // names and namespaces (1; an invalid name may also be a usage error)
        case(&["status", "nope"], Via::Admin, E, &["statefulset \"nope\" not found in namespace"]),
        case(&["canary", "rédis", "--image", img, "--yes"], Via::Admin, NAME, &["rédis"]),
        case(&["scale", &long, "--replicas", "3", "--yes"], Via::Admin, NAME, &[&long[..40]]),
        case(&["scale", "Redis", "--replicas", "3", "--yes"], Via::Admin, NAME, &["\"Redis\""]),
        case(&["status", "redis"], Via::AdminIn("no-such-namespace-xyz".into()), E, &["namespace \"no-such-namespace-xyz\" not found"]),
        case(&["canary", "redis", "--image", img, "--yes"], Via::AdminIn("Bad_NS".into()), NAME, &["Bad_NS"]),
        case(&["status", "redis"], Via::AdminIn(long_ns.clone()), NAME, &[&long_ns[..40]]),
        // contexts, kubeconfigs, credentials, servers (1)
        case(&["status", "redis", "--context", "prod"], Via::Env(kubeconfig().display().to_string()), E, &["context \"prod\" does not exist (known contexts: sts-safe-admin, sts-safe-limited)"]),
        case(&["status", "redis", "--context", ""], Via::Env(kubeconfig().display().to_string()), E, &["context \"\" does not exist"]),
        case(&["status", "redis"], kc(&PathBuf::from("/nonexistent/kubeconfig")), E, &["kubeconfig: cannot load \"/nonexistent/kubeconfig\""]),
        case(&["scale", "redis", "--replicas", "3", "--yes"], kc(&malformed_kc), E, &["kubeconfig: cannot load", "malformed-kubeconfig"]),
        case(&["status", "redis"], Via::Env("/nonexistent/a:/nonexistent/b".into()), E, &["none of the files in $KUBECONFIG"]),
        case(&["status", "redis"], kc(&no_current), E, &["no current-context is set"]),
        case(&["status", "redis"], kc(&no_cluster), E, &["kubeconfig: context \"x\""]),
        case(&["status", "redis"], kc(&no_user), E, &["user \"system:anonymous\" cannot get statefulsets"]),
        case(&["canary", "redis", "--image", img, "--yes"], kc(&invalid_token), E, &["authentication failed against", &server]),
        case(&["scale", "redis", "--replicas", "3", "--yes"], kc(&expired), E, &["authentication failed against", "invalid or expired"]),
        case(&["rollback", "redis", "--yes"], kc(&unknown_cert), E, &["authentication failed against"]),
        case(&["canary", "redis", "--image", img, "--yes"], kc(&unreachable), E, &["cannot reach the Kubernetes API server at https://127.0.0.1:1"]),
        // 403 for each verb the plugin needs (1), as the limited user
        case(&["status", "redis"], Via::Limited(&[("*", "*")]), E, &["user \"sts-safe-limited\" cannot get statefulsets"]),
        case(&["status", "redis"], Via::Limited(&[("list", "pods")]), E, &["cannot list pods"]),
        case(&["canary", "redis", "--image", img, "--yes"], Via::Limited(&[("get", "statefulsets")]), E, &["cannot get statefulsets"]),
        case(&["canary", "redis", "--image", img, "--yes"], Via::Limited(&[("patch", "statefulsets")]), E, &["cannot patch statefulsets"]),
        case(&["canary", "redis", "--image", img, "--yes"], Via::Limited(&[("watch", "statefulsets")]), E, &["cannot watch statefulsets"]),
        case(&["canary", "redis", "--image", img, "--yes"], Via::Limited(&[("watch", "pods")]), E, &["cannot watch pods"]),
        case(&["canary", "redis", "--image", img, "--yes"], Via::Limited(&[("delete", "pods")]), E, &["cannot delete pods"]),
        case(&["canary", "redis", "--image", img, "--yes"], Via::Limited(&[("get", "controllerrevisions")]), E, &["cannot get controllerrevisions"]),
        on(case(&["rollback", "parted", "--yes"], Via::Limited(&[("get", "controllerrevisions")]), E, &["cannot get controllerrevisions"]), "parted"),
        on(case(&["rollback", "parted", "--yes"], Via::Limited(&[("patch", "statefulsets")]), E, &["cannot patch statefulsets"]), "parted"),
        case(&["scale", "redis", "--replicas", "3", "--yes"], Via::Limited(&[("patch", "statefulsets")]), E, &["cannot patch statefulsets"]),
        case(&["scale", "redis", "--replicas", "3", "--yes"], Via::Limited(&[("list", "persistentvolumeclaims")]), E, &["cannot list persistentvolumeclaims"]),
        case(&["prune-pvcs", "redis", "--yes"], Via::Limited(&[("list", "persistentvolumeclaims")]), E, &["cannot list persistentvolumeclaims"]),
        case(&["prune-pvcs", "redis", "--yes"], Via::Limited(&[("delete", "persistentvolumeclaims")]), E, &["cannot delete persistentvolumeclaims"]),
        case(&["prune-pvcs", "redis", "--yes"], Via::Limited(&[("patch", "persistentvolumeclaims")]), E, &["cannot patch persistentvolumeclaims"]),
        case(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"], Via::Limited(&[("delete", "statefulsets")]), E, &["cannot delete statefulsets"]),
        case(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"], Via::Limited(&[("create", "statefulsets")]), E, &["cannot create statefulsets"]),
        case(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"], Via::Limited(&[("create", "configmaps")]), E, &["cannot create configmaps"]),
        case(&["resize-pvcs", "redis", "--size", "20Gi", "--yes"], Via::Limited(&[("patch", "persistentvolumeclaims")]), E, &["cannot patch persistentvolumeclaims"]),
        case(&["resize-pvcs", "redis", "--size", "20Gi", "--restart-pods", "--yes"], Via::Limited(&[("create", "pods/eviction")]), E, &["cannot create pods/eviction"]),
        case(&["doctor"], Via::Limited(&[("list", "statefulsets")]), E, &["cannot list statefulsets"]),
        case(&["status"], Via::Limited(&[("list", "statefulsets")]), E, &["cannot list statefulsets"]),
        // -A lists in every namespace: the namespace's Role is not enough.
        case(&["status", "-A"], Via::Limited(&[]), E, &["cannot list statefulsets across all namespaces"]),
        case(&["doctor", "-A"], Via::Limited(&[]), E, &["cannot list statefulsets across all namespaces"]),
        // recover reads cluster-scoped evidence: the namespace's Role alone is not enough.
        case(&["recover", "redis", "--yes"], Via::Limited(&[]), E, &["cannot list volumeattachments"]),
        // gates, safety checks, refusals (3)
        on(case(&["canary", "ondel", "--image", img, "--order", "primary-last", "--yes"], Via::Admin, U, &["--order primary-last needs the primary", "--primary-selector LABEL=VALUE or --role-cmd CMD"]), "ondel"),
        on(case(&["canary", "ondel", "--image", img, "--order", "primary-last", "--primary-selector", "role", "--yes"], Via::Admin, U, &["--primary-selector \"role\" must be LABEL=VALUE"]), "ondel"),
        on(case(&["canary", "ondel", "--image", img, "--order", "primary-last", "--primary-selector", "role=primary", "--yes"], Via::Admin, S, &["no pod of statefulset \"ondel\" is the primary by label role=primary"]), "ondel"),
        on(case(&["canary", "ondel", "--image", img, "--steps", "1,100%", "--yes"], Via::Admin, U, &["--steps does not apply when pods are replaced one at a time"]), "ondel"),
        on(case(&["canary", "parted", "--image", "redis:7.5-alpine", "--yes"], Via::Admin, S, &["already has a rollout pending", "partition 5", "--resume", "sts-safe rollback parted"]), "parted"),
        on(case(&["canary", "parted", "--image", "redis:7.5-alpine", "--dry-run"], Via::Admin, S, &["already has a rollout pending"]), "parted"),
        case(&["canary", "redis", "--image", img], Via::Admin, S, &["no terminal to ask"]),
        case(&["scale", "redis", "--replicas", "3"], Via::Admin, S, &["--yes"]),
        case(&["scale", "redis", "--replicas", "0", "--yes"], Via::Admin, S, &["needs both --yes and --allow-zero"]),
        case(&["scale", "redis", "--replicas", "1", "--yes"], Via::Admin, S, &["requires minAvailable 2"]),
        case(&["rollback", "redis"], Via::Admin, OK, &["nothing to roll back"]),
        // nothing to do (0, one note)
        case(&["canary", "redis", "--image", "redis:7.2-alpine", "--yes"], Via::Admin, OK, &["nothing to roll out"]),
        case(&["canary", "redis", "--resume", "--yes"], Via::Admin, OK, &["nothing to resume"]),
        on(case(&["scale", "zero", "--replicas", "0", "--yes"], Via::Admin, OK, &["already at 0 replicas"]), "zero"),
        on(case(&["rollback", "zero", "--yes"], Via::Admin, OK, &["nothing to roll back"]), "zero"),
    ];
    assert!(cases.len() >= 30);
    let failures = run_table(&ns, &cases).await;
    // The orphan PVC survived the refused delete.
    assert!(ns
        .pvc_names()
        .await
        .contains(&"redis-data-redis-2".to_string()));
    assert_all_passed("bad-input cases", cases.len(), &failures);
}

/// A missing required argument is named on the one line (clap puts it on the next line of
/// its rendered error).
#[tokio::test]
async fn bad_input_a_missing_argument_is_named() {
    let ns = TestNs::new("fault-missing").await;
    ns.ready_redis(1).await;
    let cases = vec![
        case(&["rollback"], Via::Admin, &[2], &["<NAME>"]),
        case(
            &["scale", "redis", "--yes"],
            Via::Admin,
            &[2],
            &["--replicas"],
        ),
        case(&["completion"], Via::Admin, &[2], &["<SHELL>"]),
    ];
    let failures = run_table(&ns, &cases).await;
    assert_all_passed("cases", cases.len(), &failures);
}

/// Names go into request paths: a name with `/`, `?` or `#` must be refused (or not be
/// found), never resolve to another URL such as the status subresource of `redis`.
#[tokio::test]
async fn bad_input_names_never_reach_other_api_paths() {
    let ns = TestNs::new("fault-names").await;
    ns.ready_redis(2).await;
    const NAME: &[i32] = &[1, 2];
    let cases = vec![
        case(&["status", "redis?x=1"], Via::Admin, NAME, &["redis?x=1"]),
        case(&["status", "redis#frag"], Via::Admin, NAME, &["redis#frag"]),
        case(
            &["scale", "redis/status", "--replicas", "3", "--yes"],
            Via::Admin,
            NAME,
            &["redis/status"],
        ),
        case(
            &[
                "canary",
                "redis/status",
                "--image",
                "redis:7.4-alpine",
                "--yes",
            ],
            Via::Admin,
            NAME,
            &["redis/status"],
        ),
        case(
            &["rollback", "redis/scale", "--yes"],
            Via::Admin,
            NAME,
            &["redis/scale"],
        ),
    ];
    let failures = run_table(&ns, &cases).await;
    assert_all_passed("name cases", cases.len(), &failures);
}

/// A server certificate that the kubeconfig's CA does not sign is a client-side TLS
/// failure: the line must name the server and the context, not claim "the server
/// rejected" a request.
#[tokio::test]
async fn bad_input_untrusted_server_certificate() {
    let ns = TestNs::new("fault-tls").await;
    ns.ready_redis(1).await;
    let dir = temp_dir(&ns);
    let (server, _) = cluster_entry();
    let (stranger_crt, _) = stranger_cert(&dir);
    let p = write_kubeconfig(
        &dir,
        "untrusted-ca",
        &server,
        Some(&stranger_crt),
        "{token: x}",
    );
    let cases = vec![case(
        &["canary", "redis", "--image", "redis:7.4-alpine", "--yes"],
        Via::Kubeconfig(p),
        &[1],
        &[&server, "context \"faults\""],
    )];
    let failures = run_table(&ns, &cases).await;
    assert_all_passed("cases", cases.len(), &failures);
}
