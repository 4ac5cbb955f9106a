//! Watch-driven view of one StatefulSet and its pods. Waiters wake on every event,
//! so a pod becoming Ready is seen within milliseconds, without polling.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::k8s::selector_string;
use crate::model;

pub struct Tracker {
    name: String,
    sts: Store<StatefulSet>,
    pods: Store<Pod>,
    changes: watch::Receiver<u64>,
    last_error: Arc<Mutex<Option<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

fn drive<K>(
    stream: impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    tx: watch::Sender<u64>,
    last_error: Arc<Mutex<Option<String>>>,
) -> JoinHandle<()>
where
    K: Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => {
                    *last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    tx.send_modify(|v| *v += 1);
                }
                Err(e) => {
                    tracing::debug!("watch error (retrying with backoff): {e}");
                    *last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    tx.send_modify(|v| *v += 1);
                }
            }
        }
    })
}

impl Tracker {
    /// Starts watching `sts` and its pods; returns once both initial lists arrived.
    pub async fn start(ctx: &Ctx, sts: &StatefulSet) -> Result<Tracker> {
        let name = sts.name_any();
        let cfg = watcher::Config::default().timeout(ctx.watch_timeout_secs());
        let (sts_store, sts_writer) = reflector::store();
        let (pod_store, pod_writer) = reflector::store();
        let (tx, rx) = watch::channel(0u64);
        let last_error = Arc::new(Mutex::new(None));
        let sts_stream = reflector::reflector(
            sts_writer,
            watcher(
                ctx.api::<StatefulSet>(),
                cfg.clone().fields(&format!("metadata.name={name}")),
            )
            .default_backoff(),
        );
        let selector = selector_string(sts);
        let pod_cfg = if selector.is_empty() {
            cfg
        } else {
            cfg.labels(&selector)
        };
        let pod_stream = reflector::reflector(
            pod_writer,
            watcher(ctx.api::<Pod>(), pod_cfg).default_backoff(),
        );
        let tasks = vec![
            drive(sts_stream, tx.clone(), last_error.clone()),
            drive(pod_stream, tx, last_error.clone()),
        ];
        let tracker = Tracker {
            name,
            sts: sts_store,
            pods: pod_store,
            changes: rx,
            last_error,
            tasks,
        };
        let ready = async {
            let _ = tracker.sts.wait_until_ready().await;
            let _ = tracker.pods.wait_until_ready().await;
        };
        if tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .is_err()
        {
            let why = tracker.watch_error().unwrap_or_else(|| "no answer".into());
            return Err(ctx.err("watch", "pods", None, kube::Error::Service(why.into())));
        }
        Ok(tracker)
    }

    pub fn statefulset(&self) -> Option<StatefulSet> {
        self.sts
            .state()
            .into_iter()
            .find(|s| s.name_any() == self.name)
            .map(|s| (*s).clone())
    }

    /// The StatefulSet's pods by ordinal.
    pub fn pods(&self) -> BTreeMap<i32, Pod> {
        self.pods
            .state()
            .into_iter()
            .filter_map(|p| Some((model::ordinal_of(&self.name, &p.name_any())?, (*p).clone())))
            .collect()
    }

    pub fn watch_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for the next watch event, at most until `until`.
    pub async fn changed(&mut self, until: Instant) {
        let _ = tokio::time::timeout_at(until.into(), self.changes.changed()).await;
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Set once Ctrl-C or SIGTERM arrives. Long operations check it between writes and
/// wake on it while waiting.
#[derive(Clone)]
pub struct Interrupt {
    rx: watch::Receiver<bool>,
}

impl Interrupt {
    pub fn install() -> Interrupt {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                            let _ = tx.send(true);
                            return;
                        }
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(true);
        });
        Interrupt { rx }
    }

    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

/// What a wait loop's evaluation says.
pub enum Poll<T> {
    Done(T),
    /// Not yet; re-evaluate on the next event or after this long at the latest.
    Pending(Option<Duration>),
}

/// Why a wait ended without its condition.
#[derive(Debug)]
pub enum WaitEnd {
    Timeout,
    Interrupted,
}

impl Tracker {
    /// Re-evaluates `eval` on every watch event (and at the times it asks for) until
    /// it is done, `deadline` passes or an interrupt arrives.
    pub async fn wait_for<T>(
        &mut self,
        deadline: Instant,
        interrupt: &mut Interrupt,
        mut eval: impl FnMut(&Tracker) -> Poll<T>,
    ) -> std::result::Result<T, WaitEnd> {
        loop {
            if interrupt.is_set() {
                return Err(WaitEnd::Interrupted);
            }
            let wake = match eval(self) {
                Poll::Done(v) => return Ok(v),
                Poll::Pending(after) => after,
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitEnd::Timeout);
            }
            let until = wake.map(|d| (now + d).min(deadline)).unwrap_or(deadline);
            tokio::select! {
                _ = self.changed(until) => {}
                _ = interrupt.wait() => return Err(WaitEnd::Interrupted),
            }
        }
    }
}

/// How long a guarded write keeps retrying while the API server cannot be reached
/// (e.g. restarting). Retrying is safe: every attempt carries a resourceVersion.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(30);

/// Patches the StatefulSet only if its spec is still the one this run last saw:
/// `expected_generation` must match, and the write carries the resourceVersion it
/// was computed from. Status-only updates in between are retried; a spec change by
/// anyone else stops the operation. `applied` recognises our own write when only its
/// response was lost (connection dropped after the server committed it).
pub async fn guarded_patch(
    ctx: &Ctx,
    name: &str,
    expected_generation: i64,
    latest: Option<StatefulSet>,
    dry_run: bool,
    applied: impl Fn(&StatefulSet) -> bool,
    make_patch: impl Fn(&str) -> kube::api::Patch<serde_json::Value>,
) -> Result<StatefulSet> {
    let api = ctx.api::<StatefulSet>();
    let give_up = Instant::now() + UNREACHABLE_RETRY;
    let mut backoff = Duration::from_millis(200);
    // Set once an attempt got no answer (connection lost): only then may a newer
    // generation that looks like our change be taken as ours.
    let mut unanswered = false;
    let mut current = latest;
    let mut conflicts = 0;
    loop {
        let cur = match current.take() {
            Some(s) => s,
            None => match api.get(name).await {
                Ok(s) => s,
                Err(e) if transient(&e) && Instant::now() < give_up => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                Err(e) => return Err(ctx.err("get", "statefulsets", Some(name), e)),
            },
        };
        let generation = cur.metadata.generation.unwrap_or(0);
        if generation < expected_generation {
            continue; // a cached copy older than our own last write: read the real one
        }
        if generation != expected_generation {
            if unanswered && !dry_run && generation == expected_generation + 1 && applied(&cur) {
                return Ok(cur); // our write went through; only its answer was lost
            }
            return Err(Error::Conflict {
                object: format!("statefulset \"{name}\""),
                detail: format!(
                    "its spec moved from generation {expected_generation} to {generation}"
                ),
            });
        }
        let rv = cur.resource_version().unwrap_or_default();
        let pp = kube::api::PatchParams {
            dry_run,
            ..Default::default()
        };
        match api.patch(name, &pp, &make_patch(&rv)).await {
            Ok(s) => return Ok(s),
            Err(kube::Error::Api(s)) if s.code == 422 => {
                // A failed generation test answers 422 with no detail: re-read to tell a
                // concurrent spec change (generation moved) from a genuinely invalid patch.
                let now = api
                    .get(name)
                    .await
                    .map_err(|e| ctx.err("get", "statefulsets", Some(name), e))?;
                if now.metadata.generation.unwrap_or(0) == expected_generation {
                    return Err(ctx.err("patch", "statefulsets", Some(name), kube::Error::Api(s)));
                }
                current = Some(now);
            }
            Err(kube::Error::Api(s)) if s.code == 409 && conflicts < 5 => {
                // This attempt was not applied; an earlier unanswered one may have been,
                // so `unanswered` keeps its value.
                conflicts += 1;
                tracing::debug!("resourceVersion {rv} of statefulset {name} is stale; re-reading");
            }
            Err(e) if transient(&e) && Instant::now() < give_up => {
                // A 5xx is an answer too, but after a connection error we cannot know.
                unanswered |= !matches!(e, kube::Error::Api(_));
                tracing::debug!("patch of statefulset {name} failed ({e}); retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Err(Error::Conflict {
                    object: format!("statefulset \"{name}\""),
                    detail: "it kept changing while the patch was retried".into(),
                })
            }
            Err(e) => return Err(ctx.err("patch", "statefulsets", Some(name), e)),
        }
    }
}

/// Errors worth retrying: no connection, or the server briefly unavailable.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A JSON Patch that applies `ops` only while the StatefulSet's spec is at
/// `generation`. The test is evaluated atomically by the API server, which retries
/// status-only races internally — unlike a resourceVersion precondition, which the
/// controller's status writes (made at the very moment a pod turns Ready) would break.
pub fn generation_guarded(
    generation: i64,
    ops: serde_json::Value,
) -> kube::api::Patch<serde_json::Value> {
    let mut all = vec![
        serde_json::json!({"op": "test", "path": "/metadata/generation", "value": generation}),
    ];
    all.extend(ops.as_array().cloned().unwrap_or_default());
    let patch =
        serde_json::from_value(serde_json::Value::Array(all)).expect("well-formed JSON Patch");
    kube::api::Patch::Json(patch)
}

/// Sets the partition, keeping the rest of the update strategy (e.g. maxUnavailable).
pub fn partition_patch(
    sts: &StatefulSet,
    generation: i64,
    partition: i32,
) -> kube::api::Patch<serde_json::Value> {
    let mut strategy = serde_json::to_value(&sts.spec.update_strategy).unwrap_or_default();
    if !strategy.is_object() {
        strategy = serde_json::json!({});
    }
    strategy["type"] = "RollingUpdate".into();
    if !strategy["rollingUpdate"].is_object() {
        strategy["rollingUpdate"] = serde_json::json!({});
    }
    strategy["rollingUpdate"]["partition"] = partition.into();
    generation_guarded(
        generation,
        serde_json::json!([{"op": "add", "path": "/spec/updateStrategy", "value": strategy}]),
    )
}
