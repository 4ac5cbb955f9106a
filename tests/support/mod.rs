//! Support for end-to-end tests against the local control plane (`make cluster-up`).
//! Each test gets its own namespace, deleted when the test ends (also on failure).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde::Deserialize;

mod recorder;
pub use recorder::{images_of, template_of, Check, Recorder};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-sts_safe");
pub const SEED_REDIS: &str = include_str!("../fixtures/seed-redis.yaml");

/// The kubeconfig of the local cluster, from $KUBECONFIG.
pub fn kubeconfig() -> PathBuf {
    match std::env::var("KUBECONFIG") {
        Ok(k) if !k.is_empty() => PathBuf::from(k),
        _ => panic!(
            "KUBECONFIG is not set: these tests need the local control plane. Run `make cluster-up` and \
             `eval \"$(scripts/cluster.sh env)\"`, or run `make test`."
        ),
    }
}

pub async fn client_for(context: &str) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).expect("readable kubeconfig");
    let opts = kube::config::KubeConfigOptions {
        context: Some(context.into()),
        ..Default::default()
    };
    let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .expect("context in kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// An admin client; fails the test (never skips it) when no cluster answers.
pub async fn admin() -> Client {
    let client = client_for("sts-safe-admin").await;
    if let Err(e) = client.apiserver_version().await {
        panic!("the local cluster is not reachable ({e}): run `make cluster-up` first (or `make test`)");
    }
    client
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct TestNs {
    pub name: String,
    pub client: Client,
}

impl TestNs {
    pub async fn new(prefix: &str) -> TestNs {
        let client = admin().await;
        let name = format!(
            "t-{prefix}-{}-{}",
            std::process::id() % 100000,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        ensure_storage_class(&client, "gp3-encrypted", "sts-safe.dev/sim", "Delete").await;
        TestNs { name, client }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates every document of `yaml` in this namespace (namespaced kinds get
    /// this namespace whatever the document says).
    pub async fn apply(&self, yaml: &str) {
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value = serde_json::Value::deserialize(doc).expect("valid yaml");
            if value.is_null() {
                continue;
            }
            let mut obj: DynamicObject = serde_json::from_value(value.clone()).expect("object");
            let kind = value["kind"].as_str().expect("kind").to_string();
            let ar = api_resource(value["apiVersion"].as_str().expect("apiVersion"), &kind);
            let namespaced = !matches!(
                kind.as_str(),
                "StorageClass" | "ClusterRole" | "ClusterRoleBinding" | "PersistentVolume"
            );
            let api: Api<DynamicObject> = if namespaced {
                obj.metadata.namespace = Some(self.name.clone());
                Api::namespaced_with(self.client.clone(), &self.name, &ar)
            } else {
                Api::all_with(self.client.clone(), &ar)
            };
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 && !namespaced => {}
                // Fixtures use policy/v1 (1.21+); the 1.20 floor serves only v1beta1.
                Err(kube::Error::Api(s)) if s.code == 404 && ar.api_version == "policy/v1" => {
                    let old = api_resource("policy/v1beta1", &kind);
                    let mut obj = obj.clone();
                    obj.types = Some(kube::api::TypeMeta {
                        api_version: old.api_version.clone(),
                        kind: kind.clone(),
                    });
                    Api::<DynamicObject>::namespaced_with(self.client.clone(), &self.name, &old)
                        .create(&PostParams::default(), &obj)
                        .await
                        .unwrap_or_else(|e| {
                            panic!("create {kind} {} (policy/v1beta1): {e}", obj.name_any())
                        });
                }
                Err(e) => panic!("create {kind} {}: {e}", obj.name_any()),
            }
        }
    }

    /// The seed's Redis StatefulSet + headless Service, with `replicas` and `image`.
    pub async fn seed_redis(&self, replicas: i32, image: &str) {
        let yaml = SEED_REDIS
            .replace("replicas: 3", &format!("replicas: {replicas}"))
            .replace("image: redis:7.2-alpine", &format!("image: {image}"));
        self.apply(&yaml).await;
    }

    /// The seed's Redis with its claims in StorageClass `class`, Ready.
    pub async fn ready_redis_in_class(&self, replicas: i32, class: &str) {
        let yaml = SEED_REDIS
            .replace("replicas: 3", &format!("replicas: {replicas}"))
            .replace(
                "storageClassName: gp3-encrypted",
                &format!("storageClassName: {class}"),
            );
        self.apply(&yaml).await;
        self.wait_ready("redis", Duration::from_secs(60)).await;
    }

    /// The seed's Redis, Ready.
    pub async fn ready_redis(&self, replicas: i32) {
        self.seed_redis(replicas, "redis:7.2-alpine").await;
        self.wait_ready("redis", Duration::from_secs(60)).await;
    }

    pub async fn sts(&self, name: &str) -> StatefulSet {
        self.api::<StatefulSet>()
            .get(name)
            .await
            .expect("get statefulset")
    }

    pub async fn pods(&self) -> Vec<Pod> {
        let mut pods = self
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .expect("list pods")
            .items;
        pods.sort_by_key(|p| p.name_any());
        pods
    }

    pub async fn pvcs(&self) -> Vec<PersistentVolumeClaim> {
        let mut v = self
            .api::<PersistentVolumeClaim>()
            .list(&ListParams::default())
            .await
            .expect("list pvcs")
            .items;
        v.sort_by_key(|p| p.name_any());
        v
    }

    pub async fn pvc_names(&self) -> Vec<String> {
        self.pvcs().await.iter().map(|p| p.name_any()).collect()
    }

    /// Waits until the StatefulSet is observed, all replicas Ready and on one revision.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> StatefulSet {
        let api = self.api::<StatefulSet>();
        self.eventually(timeout, &format!("statefulset {name} Ready"), || async {
            let s = api.get(name).await.ok()?;
            let st = s.status.clone()?;
            let want = s.spec.replicas.unwrap_or(1);
            let ok = st.observed_generation >= s.metadata.generation
                && st.ready_replicas.unwrap_or(0) == want
                && st.replicas == want
                && st.current_revision == st.update_revision;
            ok.then_some(s)
        })
        .await
    }

    /// Retries `f` every 100 ms until it returns Some, or fails the test after `timeout`.
    pub async fn eventually<T, F, Fut>(&self, timeout: Duration, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what} in namespace {}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn patch_sts(&self, name: &str, patch: serde_json::Value) {
        self.api::<StatefulSet>()
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("patch statefulset");
    }

    /// Runs the plugin with this namespace and the admin context.
    pub async fn plugin(&self, args: &[&str]) -> Run {
        self.plugin_as("sts-safe-admin", args).await
    }

    pub async fn plugin_as(&self, context: &str, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(PLUGIN);
        cmd.args(args)
            .args(["-n", &self.name, "--context", context])
            .env("KUBECONFIG", kubeconfig())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        Run::from(cmd.output().await.expect("run plugin"))
    }

    /// A plugin command, not yet started (for tests that interrupt or interact).
    pub fn plugin_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(PLUGIN);
        cmd.args(args)
            .args(["-n", &self.name, "--context", "sts-safe-admin"])
            .env("KUBECONFIG", kubeconfig())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    /// Binds deploy/rbac.yaml's Role (and the cluster-read ClusterRole) to the
    /// unprivileged user `sts-safe-limited` in this namespace.
    pub async fn grant_limited_user(&self) {
        self.apply(include_str!("../../deploy/rbac.yaml")).await;
        self.apply(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sts-safe-limited}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: sts-safe}
subjects: [{kind: User, name: sts-safe-limited, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sts-safe-limited-read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sts-safe-cluster-read}
subjects: [{kind: User, name: sts-safe-limited, apiGroup: rbac.authorization.k8s.io}]
"#,
        )
        .await;
    }

    pub fn kubectl(&self, args: &[&str]) -> Run {
        let out = std::process::Command::new("kubectl")
            .args(args)
            .args(["-n", &self.name, "--context", "sts-safe-admin"])
            .env("KUBECONFIG", kubeconfig())
            .output()
            .expect("kubectl on PATH");
        Run::from(out)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await; delete from a helper thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = client_for("sts-safe-admin").await;
                let _ = Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await;
            });
            Some(())
        })
        .join();
    }
}

pub async fn ensure_storage_class(client: &Client, name: &str, provisioner: &str, reclaim: &str) {
    create_storage_class(
        client,
        serde_json::json!({
            "metadata": {"name": name}, "provisioner": provisioner, "reclaimPolicy": reclaim,
        }),
    )
    .await;
}

/// An expandable class of the simulator whose resizer takes `delay` per claim
/// (sim-kubelet's `sts-safe.dev/resize-delay`), growing online.
pub async fn ensure_slow_resize_class(client: &Client, name: &str, delay: &str) {
    create_storage_class(
        client,
        serde_json::json!({
            "metadata": {"name": name, "annotations": {
                "sts-safe.dev/expansion": "online", "sts-safe.dev/resize-delay": delay}},
            "provisioner": "sts-safe.dev/sim", "reclaimPolicy": "Delete",
            "allowVolumeExpansion": true,
        }),
    )
    .await;
}

async fn create_storage_class(client: &Client, mut obj: serde_json::Value) {
    obj["apiVersion"] = "storage.k8s.io/v1".into();
    obj["kind"] = "StorageClass".into();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ar = api_resource("storage.k8s.io/v1", "StorageClass");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create storageclass {name}: {e}"),
    }
}

fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let plural = match kind {
        "PodDisruptionBudget" => "poddisruptionbudgets".to_string(),
        "StorageClass" => "storageclasses".to_string(),
        k => format!("{}s", k.to_ascii_lowercase()),
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    }
}

/// A finished process: exit code and captured output.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts stderr is exactly one line that starts with `error:` and contains `needle`.
    #[track_caller]
    /// Exactly one `error:` line, naming `needle` (progress lines may come before it).
    pub fn expect_error_line(&self, needle: &str) -> &Self {
        let errors: Vec<_> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "expected one error line, got:\n{}",
            self.stderr
        );
        assert!(
            errors[0].contains(needle),
            "{:?} does not contain {needle:?}",
            errors[0]
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }

    pub fn expect_one_error_line(&self, needle: &str) -> &Self {
        let lines: Vec<_> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one error line, got:\n{}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        assert!(
            lines[0].contains(needle),
            "{:?} does not contain {needle:?}",
            lines[0]
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

pub fn pod_names(sts: &str, n: i32) -> Vec<String> {
    (0..n).map(|i| format!("{sts}-{i}")).collect()
}

/// The plugin on a pseudo-terminal (via util-linux `script`), so prompts are asked
/// and answered as a person would.
pub struct Pty {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Pty {
    pub fn spawn(ns: &TestNs, args: &[&str]) -> Pty {
        use tokio::io::AsyncReadExt;
        let mut line = vec![PLUGIN.to_string()];
        line.extend(args.iter().map(|a| a.to_string()));
        line.extend([
            "-n".into(),
            ns.name.clone(),
            "--context".into(),
            "sts-safe-admin".into(),
        ]);
        let quoted: Vec<String> = line
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        let mut child = tokio::process::Command::new("script")
            .args(["-qfec", &quoted.join(" "), "/dev/null"])
            .env("KUBECONFIG", kubeconfig())
            .env("NO_COLOR", "1")
            .env("TERM", "xterm")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("util-linux `script` on PATH");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = output.clone();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Pty {
            child,
            stdin,
            output,
            reader,
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the screen shows `text` (after `from` bytes of output).
    pub async fn expect(&self, text: &str, timeout: Duration) -> usize {
        let start = Instant::now();
        loop {
            let out = self.output();
            if let Some(i) = out.find(text) {
                // Let the prompt switch the terminal to raw mode before answering.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return i;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {text:?}; screen so far:\n{out}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn send(&mut self, keys: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(keys.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    pub async fn wait(mut self) -> (i32, String) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the plugin finished")
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
        (status.code().unwrap_or(-1), self.output())
    }
}

/// Every completed request the API server's audit log recorded whose object reference's
/// namespace is `namespace` (null: cluster-scoped objects).
fn audit_where(namespace: &serde_json::Value) -> Vec<serde_json::Value> {
    let path = kubeconfig()
        .parent()
        .expect("state dir")
        .join("logs/audit.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete" && e["objectRef"]["namespace"] == *namespace)
        .collect()
}

/// A small StatefulSet without volumes, `replicas` pods of `redis:7.2-alpine`.
pub fn small_sts(name: &str, replicas: i32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  serviceName: {name}
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: main, image: "redis:7.2-alpine"}}]}}
"#
    )
}

/// The JSON documents of a stream (`--watch -o json` prints one after another), as far
/// as they are complete.
pub fn json_documents(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .collect()
}

/// Every request about objects in `namespace`, by anyone, as the API server's audit log
/// recorded them (scripts/audit-policy.yaml; one event per request, at ResponseComplete).
pub fn audit_events(namespace: &str) -> Vec<serde_json::Value> {
    audit_where(&serde_json::Value::from(namespace))
}

/// Every request about cluster-scoped objects (nodes, VolumeAttachments), by anyone.
pub fn audit_cluster_events() -> Vec<serde_json::Value> {
    audit_where(&serde_json::Value::Null)
}

/// The plugin's requests about objects in `namespace` ([`audit_events`]): told apart
/// from the control plane's by its user agent, since all components share the admin
/// identity.
pub fn plugin_audit_events(namespace: &str) -> Vec<serde_json::Value> {
    audit_events(namespace)
        .into_iter()
        .filter(by_plugin)
        .collect()
}

/// Whether the audited request came from the plugin (its user agent).
pub fn by_plugin(e: &serde_json::Value) -> bool {
    e["userAgent"]
        .as_str()
        .is_some_and(|u| u.starts_with("kubectl-sts-safe/"))
}

/// Pod deletes (by anyone: the plugin, the StatefulSet controller, the garbage
/// collector) and evictions in `namespace` that the API server carried out.
pub fn pod_deletes(namespace: &str) -> Vec<String> {
    audit_events(namespace)
        .into_iter()
        .filter(|e| {
            let pods = e["objectRef"]["resource"] == "pods";
            let evict = e["objectRef"]["subresource"] == "eviction" && e["verb"] == "create";
            let delete = e["verb"] == "delete" && e["objectRef"]["subresource"].is_null();
            pods && (evict || delete) && e["responseStatus"]["code"].as_i64().unwrap_or(0) < 300
        })
        .map(|e| {
            format!(
                "{} {} by {}",
                e["verb"].as_str().unwrap_or_default(),
                e["objectRef"]["name"].as_str().unwrap_or_default(),
                e["userAgent"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// When the API server received the audited request.
pub fn audit_received(e: &serde_json::Value) -> Option<k8s_openapi::jiff::Timestamp> {
    e["requestReceivedTimestamp"].as_str()?.parse().ok()
}

/// Whether the audited request wrote (create, update, patch, delete).
pub fn audit_is_write(e: &serde_json::Value) -> bool {
    matches!(
        e["verb"].as_str(),
        Some("create" | "update" | "patch" | "delete")
    )
}

/// The seed's Redis, Ready with `from` replicas, then scaled to `to` with kubectl.
pub async fn redis_scaled(prefix: &str, from: i32, to: i32) -> TestNs {
    let ns = TestNs::new(prefix).await;
    ns.ready_redis(from).await;
    ns.kubectl(&["scale", "statefulset", "redis", &format!("--replicas={to}")])
        .expect_code(0);
    ns.eventually(
        Duration::from_secs(60),
        &format!("redis down to {to} pods"),
        || async { (ns.pods().await.len() == to as usize).then_some(()) },
    )
    .await;
    ns.wait_ready("redis", Duration::from_secs(60)).await;
    ns
}
