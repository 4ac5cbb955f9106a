//! Watch-driven view of one StatefulSet and its pods. Waiters wake on every event,
//! so a pod becoming Ready is seen within milliseconds, without polling.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::interrupt::Interrupt;
use super::read::selector_string;
use crate::context::Ctx;
use crate::error::Result;
use crate::model;

pub struct Tracker {
    name: String,
    sts: Store<StatefulSet>,
    pods: Store<Pod>,
    /// With [`Tracker::start_with_claims`]: the namespace's claims and their Events.
    claims: Option<(Store<PersistentVolumeClaim>, Store<Event>)>,
    /// With [`Tracker::start_with_attachments`]: every VolumeAttachment (cluster-wide).
    attachments: Option<Store<VolumeAttachment>>,
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
        Tracker::begin(ctx, sts, false, false).await
    }

    /// Like [`Tracker::start`], and also the namespace's PersistentVolumeClaims and the
    /// Events about claims (resize-pvcs).
    pub async fn start_with_claims(ctx: &Ctx, sts: &StatefulSet) -> Result<Tracker> {
        Tracker::begin(ctx, sts, true, false).await
    }

    /// Like [`Tracker::start`], and also every VolumeAttachment (recover).
    pub async fn start_with_attachments(ctx: &Ctx, sts: &StatefulSet) -> Result<Tracker> {
        Tracker::begin(ctx, sts, false, true).await
    }

    async fn begin(
        ctx: &Ctx,
        sts: &StatefulSet,
        with_claims: bool,
        with_attachments: bool,
    ) -> Result<Tracker> {
        let name = sts.name_any();
        let cfg = watcher::Config::default().timeout(ctx.watch_timeout_secs());
        let cfg_all = cfg.clone();
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
        let mut tasks = vec![
            drive(sts_stream, tx.clone(), last_error.clone()),
            drive(pod_stream, tx.clone(), last_error.clone()),
        ];
        let claims = with_claims.then(|| {
            let (claim_store, claim_writer) = reflector::store();
            let (event_store, event_writer) = reflector::store();
            let claim_stream = reflector::reflector(
                claim_writer,
                watcher(ctx.api::<PersistentVolumeClaim>(), cfg_all.clone()).default_backoff(),
            );
            let event_stream = reflector::reflector(
                event_writer,
                watcher(
                    ctx.api::<Event>(),
                    cfg_all
                        .clone()
                        .fields("involvedObject.kind=PersistentVolumeClaim"),
                )
                .default_backoff(),
            );
            tasks.push(drive(claim_stream, tx.clone(), last_error.clone()));
            tasks.push(drive(event_stream, tx.clone(), last_error.clone()));
            (claim_store, event_store)
        });
        let attachments = with_attachments.then(|| {
            let (store, writer) = reflector::store();
            let stream = reflector::reflector(
                writer,
                watcher(
                    kube::Api::<VolumeAttachment>::all(ctx.client.clone()),
                    cfg_all.clone(),
                )
                .default_backoff(),
            );
            tasks.push(drive(stream, tx.clone(), last_error.clone()));
            store
        });
        let tracker = Tracker {
            name,
            sts: sts_store,
            pods: pod_store,
            claims,
            attachments,
            changes: rx,
            last_error,
            tasks,
        };
        let ready = async {
            let _ = tracker.sts.wait_until_ready().await;
            let _ = tracker.pods.wait_until_ready().await;
            if let Some((c, e)) = &tracker.claims {
                let _ = c.wait_until_ready().await;
                let _ = e.wait_until_ready().await;
            }
            if let Some(a) = &tracker.attachments {
                let _ = a.wait_until_ready().await;
            }
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

    /// The claim named `name` (with [`Tracker::start_with_claims`]).
    pub fn claim(&self, name: &str) -> Option<PersistentVolumeClaim> {
        let (claims, _) = self.claims.as_ref()?;
        claims
            .state()
            .into_iter()
            .find(|c| c.name_any() == name)
            .map(|c| (*c).clone())
    }

    /// The Events about the claim with uid `uid` (with [`Tracker::start_with_claims`]).
    pub fn claim_events(&self, uid: &str) -> Vec<Event> {
        let Some((_, events)) = self.claims.as_ref() else {
            return vec![];
        };
        events
            .state()
            .into_iter()
            .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
            .map(|e| (*e).clone())
            .collect()
    }

    /// Every VolumeAttachment (with [`Tracker::start_with_attachments`]).
    pub fn attachments(&self) -> Vec<VolumeAttachment> {
        self.attachments
            .as_ref()
            .map(|a| a.state().into_iter().map(|v| (*v).clone()).collect())
            .unwrap_or_default()
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
