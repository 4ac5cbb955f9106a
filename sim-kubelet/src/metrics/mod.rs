//! The metrics exporter: one Prometheus page per simulated pod whose containers run
//! (`/metrics/<namespace>/<pod>`, see `server.rs`), and a Prometheus file_sd file listing
//! those pods as scrape targets.
//!
//! The pod workers tell the [`Registry`] when a pod's containers started (and with which
//! timeline and metrics behaviour) and when they are gone; the pages are computed at
//! scrape time from the time since the containers started (`series.rs`).

pub mod series;
pub mod server;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::timeline::{Plan, Stage};
pub use series::MetricsBehavior;

/// One pod whose application exports metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub node: String,
    /// The owning StatefulSet's name, if any.
    pub statefulset: Option<String>,
    pub behavior: MetricsBehavior,
    /// The pod's timeline (when its containers started, whether it is Ready).
    pub plan: Plan,
    /// When the simulated kubelet accepted the pod (its `startTime`).
    pub accepted_at: Timestamp,
}

impl Target {
    /// The target's identity in the file_sd file (what Prometheus must learn anew).
    fn labels(&self) -> (&str, &str, Option<&str>) {
        (&self.namespace, &self.pod, self.statefulset.as_deref())
    }

    fn path(&self) -> String {
        format!("/metrics/{}/{}", self.namespace, self.pod)
    }
}

/// What a pod worker knows of its pod's life when it looks at it.
#[derive(Clone, Copy, Debug)]
pub struct Life {
    pub plan: Plan,
    pub behavior: MetricsBehavior,
    /// When the simulated kubelet accepted the pod (its `startTime`).
    pub accepted_at: Timestamp,
    /// The pod's stage now.
    pub stage: Stage,
}

/// What a page request gets.
#[derive(Debug, PartialEq)]
pub enum Page {
    Metrics(String),
    /// The application cannot answer (node powered off, container crash-looping).
    Unavailable(&'static str),
    NotFound,
}

/// The pods whose applications export metrics, keyed by pod uid.
pub struct Registry {
    addr: SocketAddr,
    targets: Mutex<HashMap<String, Target>>,
    /// Bumped when the set of targets or their labels change.
    changes: watch::Sender<u64>,
}

impl Registry {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            targets: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Records the pod's state as of a pod worker's look at it: a target while its
    /// containers have started (unless its metrics behaviour is `none`), none otherwise.
    pub fn observe(&self, uid: &str, pod: &Pod, node: &str, life: Life) {
        let Life {
            plan,
            behavior,
            accepted_at,
            stage,
        } = life;
        if behavior == MetricsBehavior::None || !stage.containers_started() {
            self.remove(uid);
            return;
        }
        let target = Target {
            namespace: pod.namespace().unwrap_or_default(),
            pod: pod.name_any(),
            node: node.to_string(),
            statefulset: pod
                .owner_references()
                .iter()
                .find(|o| o.kind == "StatefulSet")
                .map(|o| o.name.clone()),
            behavior,
            plan,
            accepted_at,
        };
        let mut targets = self.targets.lock().expect("metrics lock");
        let relabelled = targets
            .get(uid)
            .is_none_or(|old| old.labels() != target.labels());
        if targets.get(uid) != Some(&target) {
            if relabelled {
                debug!(pod = %format!("{}/{}", target.namespace, target.pod),
                    behavior = %behavior.name(), "metrics target added");
            }
            targets.insert(uid.to_string(), target);
        }
        drop(targets);
        if relabelled {
            self.bump();
        }
    }

    /// The pod is gone, terminating or stopped: no target any more.
    pub fn remove(&self, uid: &str) {
        let removed = self.targets.lock().expect("metrics lock").remove(uid);
        if let Some(t) = removed {
            debug!(pod = %format!("{}/{}", t.namespace, t.pod), "metrics target removed");
            self.bump();
        }
    }

    /// The page of pod `namespace/pod` now; `powered_on` tells whether a node is.
    pub fn page(&self, namespace: &str, pod: &str, powered_on: impl Fn(&str) -> bool) -> Page {
        let target = {
            let targets = self.targets.lock().expect("metrics lock");
            // Two uids under one name only for a moment (a pod replaced under its
            // name): the later start wins.
            targets
                .values()
                .filter(|t| t.namespace == namespace && t.pod == pod)
                .max_by_key(|t| t.accepted_at)
                .cloned()
        };
        let Some(t) = target else {
            return Page::NotFound;
        };
        if !powered_on(&t.node) {
            return Page::Unavailable("the pod's node is powered off");
        }
        let elapsed = elapsed_since(t.accepted_at);
        match t.plan.stage_at(elapsed) {
            Stage::Running { ready } => {
                let since_start = elapsed.saturating_sub(t.plan.ready_delay);
                Page::Metrics(series::render(
                    series::counts_at(t.behavior, since_start),
                    ready,
                ))
            }
            Stage::CrashLoop { .. } => Page::Unavailable("the container is crash-looping"),
            _ => Page::Unavailable("the container is not running"),
        }
    }

    /// The paths of all pages (the server's index).
    pub fn paths(&self) -> Vec<String> {
        let targets = self.targets.lock().expect("metrics lock");
        let mut v: Vec<String> = targets.values().map(Target::path).collect();
        v.sort();
        v
    }

    /// The file_sd document: one entry per target, sorted by namespace and pod.
    pub fn sd_document(&self) -> String {
        let targets = self.targets.lock().expect("metrics lock");
        let mut list: Vec<&Target> = targets.values().collect();
        list.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
        list.dedup_by(|a, b| a.namespace == b.namespace && a.pod == b.pod);
        let entries: Vec<serde_json::Value> = list
            .iter()
            .map(|t| {
                let mut labels = BTreeMap::new();
                labels.insert("__metrics_path__", t.path());
                labels.insert("namespace", t.namespace.clone());
                labels.insert("pod", t.pod.clone());
                if let Some(s) = &t.statefulset {
                    labels.insert("statefulset", s.clone());
                }
                json!({ "targets": [self.addr.to_string()], "labels": labels })
            })
            .collect();
        let mut s = serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into());
        s.push('\n');
        s
    }
}

fn elapsed_since(t: Timestamp) -> Duration {
    Duration::try_from(Timestamp::now().duration_since(t)).unwrap_or(Duration::ZERO)
}

/// Writes `content` to `path` atomically (a temporary file in the same directory, then
/// a rename), so that Prometheus never reads half a file.
fn write_atomically(path: &Path, content: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let file_name = path
        .file_name()
        .map_or_else(|| "targets".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir
        .unwrap_or_else(|| Path::new("."))
        .join(format!(".{file_name}.tmp"));
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

/// Keeps the file_sd file at `path` in step with the registry until the process ends.
pub async fn write_sd_file(registry: std::sync::Arc<Registry>, path: PathBuf) {
    let mut changes = registry.changes.subscribe();
    let mut written: Option<String> = None;
    let mut failures = 0u32;
    loop {
        changes.borrow_and_update();
        let doc = registry.sd_document();
        if written.as_deref() != Some(doc.as_str()) {
            match write_atomically(&path, &doc) {
                Ok(()) => {
                    if written.is_none() {
                        info!(path = %path.display(), "wrote the Prometheus file_sd file");
                    }
                    written = Some(doc);
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    warn!(path = %path.display(), error = %e, "writing the file_sd file failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10))))
                        .await;
                    continue;
                }
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::Behavior;

    fn pod(ns: &str, name: &str, sts: Option<&str>) -> Pod {
        let owners = sts.map(|s| {
            json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": s,
                    "uid": "u", "controller": true}])
        });
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "ownerReferences": owners}
        }))
        .unwrap()
    }

    fn plan(behavior: Behavior) -> Plan {
        Plan {
            behavior,
            ready_delay: Duration::from_millis(300),
            crash_interval: Duration::from_secs(2),
        }
    }

    fn ago(secs: i64) -> Timestamp {
        Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(secs)
    }

    fn life(plan: Plan, behavior: MetricsBehavior, accepted_at: Timestamp, stage: Stage) -> Life {
        Life {
            plan,
            behavior,
            accepted_at,
            stage,
        }
    }

    const RUNNING: Stage = Stage::Running { ready: true };

    #[test]
    fn targets_follow_the_pods() {
        let r = Registry::new("127.0.0.1:9999".parse().unwrap());
        let p = plan(Behavior::Healthy);
        let healthy = MetricsBehavior::Healthy;
        r.observe(
            "a",
            &pod("ns", "web-0", Some("web")),
            "n0",
            life(p, healthy, ago(10), RUNNING),
        );
        r.observe(
            "b",
            &pod("ns", "solo", None),
            "n0",
            life(p, healthy, ago(10), RUNNING),
        );
        r.observe(
            "c",
            &pod("ns", "quiet-0", None),
            "n0",
            life(p, MetricsBehavior::None, ago(10), RUNNING),
        );
        r.observe(
            "d",
            &pod("ns", "new-0", None),
            "n0",
            life(p, healthy, ago(0), Stage::Creating),
        );
        let doc: serde_json::Value = serde_json::from_str(&r.sd_document()).unwrap();
        assert_eq!(
            doc,
            json!([
                {"targets": ["127.0.0.1:9999"], "labels": {"__metrics_path__": "/metrics/ns/solo",
                    "namespace": "ns", "pod": "solo"}},
                {"targets": ["127.0.0.1:9999"], "labels": {"__metrics_path__": "/metrics/ns/web-0",
                    "namespace": "ns", "pod": "web-0", "statefulset": "web"}},
            ])
        );
        assert_eq!(r.page("ns", "quiet-0", |_| true), Page::NotFound);
        assert_eq!(r.page("ns", "new-0", |_| true), Page::NotFound);
        r.remove("b");
        assert_eq!(r.paths(), ["/metrics/ns/web-0"]);
        assert_eq!(r.page("ns", "solo", |_| true), Page::NotFound);
    }

    #[test]
    fn pages_count_from_the_container_start() {
        let r = Registry::new("127.0.0.1:9999".parse().unwrap());
        let errors = MetricsBehavior::Errors(0.5);
        r.observe(
            "a",
            &pod("ns", "web-0", None),
            "n0",
            life(plan(Behavior::Healthy), errors, ago(10), RUNNING),
        );
        let Page::Metrics(page) = r.page("ns", "web-0", |_| true) else {
            panic!("no page");
        };
        // 10 s accepted, 0.3 s ready delay: 9.7 s of 20 requests/s, half of them failing.
        let value = |series: &str| -> u64 {
            let line = page.lines().find(|l| l.starts_with(series)).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let (ok, err) = (
            value("http_requests_total{code=\"200\"}"),
            value("http_requests_total{code=\"500\"}"),
        );
        assert!((96..=100).contains(&ok), "{ok}");
        assert!((96..=100).contains(&err), "{err}");
        assert_eq!(value("sim_pod_ready"), 1);
        assert_eq!(
            r.page("ns", "web-0", |n| n != "n0"),
            Page::Unavailable("the pod's node is powered off")
        );
        let crash = life(
            plan(Behavior::CrashLoop),
            MetricsBehavior::Healthy,
            ago(10),
            Stage::CrashLoop { restarts: 1 },
        );
        r.observe("b", &pod("ns", "crash-0", None), "n0", crash);
        assert!(matches!(
            r.page("ns", "crash-0", |_| true),
            Page::Unavailable(_)
        ));
        let unready = life(
            plan(Behavior::NeverReady),
            MetricsBehavior::Healthy,
            ago(10),
            Stage::Running { ready: false },
        );
        r.observe("c", &pod("ns", "slow-0", None), "n0", unready);
        let Page::Metrics(page) = r.page("ns", "slow-0", |_| true) else {
            panic!("no page");
        };
        assert!(page.contains("\nsim_pod_ready 0\n"));
    }

    #[test]
    fn the_file_is_replaced_atomically() {
        let dir = std::env::temp_dir().join(format!("sim-kubelet-sd-{}", std::process::id()));
        let path = dir.join("targets.json");
        write_atomically(&path, "[]\n").unwrap();
        write_atomically(&path, "[1]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1]\n");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["targets.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
