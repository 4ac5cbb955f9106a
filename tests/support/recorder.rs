//! The one recorder of the e2e tests: an independent watch of a namespace's pods,
//! StatefulSets and PVCs, and the safety invariants checked on what it saw.
//!
//! Events are replayed in resourceVersion order, which etcd assigns from one global
//! counter, so the order across the three watches is the order in which the writes
//! happened. Checks start after the newest resourceVersion of the first complete listing
//! (the baseline). Watch errors (an apiserver restart) are retried with backoff and
//! counted; after a re-list, objects that were not listed again are recorded as gone.
//!
//! [`Recorder::analyse`] checks, for one StatefulSet:
//! - never more pods of `[0, replicas)` unavailable at one moment than the step allows
//!   (a pod that is missing counts as unavailable);
//! - the partition is lowered from `q` to `p` only while every ordinal `>= q` is available
//!   on the update revision, and only once the controller reports an update revision (a
//!   write that also changes the template must be the freeze, partition >= replicas, or a
//!   rollback to an image list the check allows);
//! - no PVC is marked for deletion while its ordinal is live or while a pod mounts it,
//!   unless prune's hold finalizer is on it; and such a claim never goes away.
//!
//! The queries ([`Recorder::partitions`], [`Recorder::ready_order`],
//! [`Recorder::max_unavailable`], [`Recorder::partitions_after`], [`Recorder::saw_image`])
//! replay the same recording.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use sts_safe::model;
use sts_safe::plan::prune::HOLD as PRUNE_HOLD;

use super::TestNs;

/// How long [`Recorder::caught_up`] waits.
const CATCH_UP: Duration = Duration::from_secs(90);

/// The pod template of a StatefulSet, as JSON.
pub fn template_of(sts: &StatefulSet) -> serde_json::Value {
    serde_json::to_value(&sts.spec.template).unwrap()
}

/// The container images of a pod template (as returned by [`template_of`]).
pub fn images_of(template: &serde_json::Value) -> Vec<String> {
    template["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["image"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Pod,
    Sts,
    Pvc,
}

#[derive(Debug, Clone)]
struct PodState {
    available: bool,
    revision: Option<String>,
    claims: Vec<String>,
}

#[derive(Debug, Clone)]
struct StsState {
    partition: i32,
    replicas: i32,
    template: serde_json::Value,
    update: Option<String>,
    /// Names of the volumeClaimTemplates.
    claims: Vec<String>,
}

#[derive(Debug, Clone)]
enum State {
    Pod(PodState),
    Sts(Box<StsState>),
    Pvc { deleting: bool, held: bool },
}

/// A claim as the analysis follows it: marked for deletion, and why it was in use when
/// it was marked under prune's hold.
#[derive(Debug, Clone)]
struct PvcTrack {
    deleting: bool,
    marked_in_use: Option<String>,
}

#[derive(Debug, Clone)]
struct Ev {
    rv: u64,
    seq: u64,
    kind: Kind,
    name: String,
    /// None: the object is gone.
    state: Option<State>,
}

#[derive(Default)]
struct Log {
    events: Vec<Ev>,
    seq: u64,
    live: HashSet<(Kind, String)>,
    /// Names listed since the current re-list began, and their highest resourceVersion.
    relist: HashMap<Kind, (HashSet<String>, u64)>,
    max_rv: HashMap<Kind, u64>,
    synced: HashSet<Kind>,
    /// The newest resourceVersion of the first complete listing; checks start after it.
    baseline: u64,
    watch_errors: usize,
}

impl Log {
    fn push(&mut self, kind: Kind, name: String, rv: u64, state: Option<State>) {
        self.seq += 1;
        if state.is_some() {
            self.live.insert((kind, name.clone()));
        } else {
            self.live.remove(&(kind, name.clone()));
        }
        let m = self.max_rv.entry(kind).or_default();
        *m = (*m).max(rv);
        self.events.push(Ev {
            rv,
            seq: self.seq,
            kind,
            name,
            state,
        });
    }

    fn handle<K: kube::Resource>(
        &mut self,
        kind: Kind,
        ev: watcher::Event<K>,
        conv: fn(&K) -> State,
    ) {
        let rv_of = |o: &K| {
            o.meta()
                .resource_version
                .as_deref()
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match ev {
            watcher::Event::Apply(o) => self.push(kind, o.name_any(), rv_of(&o), Some(conv(&o))),
            watcher::Event::Delete(o) => self.push(kind, o.name_any(), rv_of(&o), None),
            watcher::Event::Init => {
                self.relist.insert(kind, (HashSet::new(), 0));
            }
            watcher::Event::InitApply(o) => {
                let rv = rv_of(&o);
                if let Some((names, max)) = self.relist.get_mut(&kind) {
                    names.insert(o.name_any());
                    *max = (*max).max(rv);
                }
                self.push(kind, o.name_any(), rv, Some(conv(&o)));
            }
            watcher::Event::InitDone => {
                // After a re-list (e.g. an apiserver restart), objects not listed again were
                // deleted while the watch was away: record them as gone.
                if let Some((names, max)) = self.relist.remove(&kind) {
                    let rv = max.max(self.max_rv.get(&kind).copied().unwrap_or(0));
                    let vanished: Vec<String> = self
                        .live
                        .iter()
                        .filter(|(k, n)| *k == kind && !names.contains(n))
                        .map(|(_, n)| n.clone())
                        .collect();
                    for n in vanished {
                        self.push(kind, n, rv, None);
                    }
                }
                self.synced.insert(kind);
            }
        }
    }
}

fn pod_state(p: &Pod) -> State {
    State::Pod(PodState {
        available: model::is_available(p),
        revision: model::revision(p).map(str::to_string),
        claims: model::mounted_claims(p).map(str::to_string).collect(),
    })
}

fn sts_state(s: &StatefulSet) -> State {
    State::Sts(Box::new(StsState {
        partition: model::partition(s),
        replicas: model::replicas(s),
        template: template_of(s),
        update: model::update_revision(s).map(str::to_string),
        claims: model::claim_templates(s),
    }))
}

fn pvc_state(p: &PersistentVolumeClaim) -> State {
    State::Pvc {
        deleting: p.metadata.deletion_timestamp.is_some(),
        held: p.finalizers().iter().any(|f| f == PRUNE_HOLD),
    }
}

enum Raw {
    Pod(watcher::Event<Pod>),
    Sts(watcher::Event<StatefulSet>),
    Pvc(watcher::Event<PersistentVolumeClaim>),
}

/// What the invariants are checked against.
pub struct Check<'a> {
    pub sts: &'a str,
    /// Pods that may be unavailable at once.
    pub step: usize,
    /// Image lists a write may restore while lowering the partition (rollbacks).
    pub rollback_to: Vec<Vec<String>>,
}

#[derive(Debug, Default)]
pub struct Findings {
    pub max_unavailable: usize,
    pub worst: String,
    pub violations: Vec<String>,
    /// Distinct partition values of the checked StatefulSet, in order (the first one is
    /// the value listed at the start).
    pub partitions: Vec<i32>,
    /// Watch errors (e.g. while the apiserver restarted) the recording retried.
    pub watch_errors: usize,
}

impl Findings {
    #[track_caller]
    pub fn assert_safe(&self, check: &Check<'_>, what: &str) {
        assert!(
            self.violations.is_empty(),
            "{what}: safety invariants violated:\n  {}\npartitions seen: {:?}",
            self.violations.join("\n  "),
            self.partitions
        );
        assert!(
            self.max_unavailable <= check.step,
            "{what}: {} pods unavailable at once (allowed {}): {}",
            self.max_unavailable,
            check.step,
            self.worst
        );
    }
}

/// An independent watch of one namespace's pods, StatefulSets and PVCs.
pub struct Recorder {
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
    namespace: String,
    pods: Api<Pod>,
    sets: Api<StatefulSet>,
    pvcs: Api<PersistentVolumeClaim>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Starts recording; returns once pods, StatefulSets and PVCs are listed (fails the
    /// test if that takes more than 30 s).
    pub async fn start(ns: &TestNs) -> Recorder {
        let (pods_api, sets_api, pvcs_api) = (
            ns.api::<Pod>(),
            ns.api::<StatefulSet>(),
            ns.api::<PersistentVolumeClaim>(),
        );
        let cfg = watcher::Config::default();
        let pods = watcher(pods_api.clone(), cfg.clone())
            .default_backoff()
            .map(|r| r.map(Raw::Pod));
        let sets = watcher(sets_api.clone(), cfg.clone())
            .default_backoff()
            .map(|r| r.map(Raw::Sts));
        let pvcs = watcher(pvcs_api.clone(), cfg)
            .default_backoff()
            .map(|r| r.map(Raw::Pvc));
        let mut stream = futures::stream::select_all([pods.boxed(), sets.boxed(), pvcs.boxed()]);
        let log = Arc::new(Mutex::new(Log::default()));
        let sink = log.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut tx = Some(tx);
        let task = tokio::spawn(async move {
            // Watch errors (an apiserver restart) are retried with backoff; keep recording.
            while let Some(item) = stream.next().await {
                let mut l = sink.lock().unwrap();
                match item {
                    Err(_) => l.watch_errors += 1,
                    Ok(Raw::Pod(ev)) => l.handle(Kind::Pod, ev, pod_state),
                    Ok(Raw::Sts(ev)) => l.handle(Kind::Sts, ev, sts_state),
                    Ok(Raw::Pvc(ev)) => l.handle(Kind::Pvc, ev, pvc_state),
                }
                if l.synced.len() == 3 && l.baseline == 0 {
                    l.baseline = l.max_rv.values().copied().max().unwrap_or(0).max(1);
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("the recording watch listed pods, StatefulSets and PVCs within 30s")
            .expect("recording task alive");
        Recorder {
            log,
            task,
            namespace: ns.name.clone(),
            pods: pods_api,
            sets: sets_api,
            pvcs: pvcs_api,
        }
    }

    /// Waits until the watch has delivered the newest version of every object listed now.
    /// Call it before a query or [`Recorder::analyse`] once the run under test is over.
    pub async fn caught_up(&self) {
        let start = Instant::now();
        loop {
            if self.is_caught_up().await == Some(true) {
                return;
            }
            if start.elapsed() > CATCH_UP {
                panic!(
                    "timed out after {CATCH_UP:?} waiting for the recording watch to catch up in namespace {}",
                    self.namespace
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn is_caught_up(&self) -> Option<bool> {
        let lp = ListParams::default();
        let max = |rvs: Vec<Option<String>>| {
            rvs.into_iter()
                .filter_map(|r| r?.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        };
        let pods = self.pods.list(&lp).await.ok()?;
        let sets = self.sets.list(&lp).await.ok()?;
        let pvcs = self.pvcs.list(&lp).await.ok()?;
        let want = [
            (
                Kind::Pod,
                max(pods.items.iter().map(|o| o.resource_version()).collect()),
            ),
            (
                Kind::Sts,
                max(sets.items.iter().map(|o| o.resource_version()).collect()),
            ),
            (
                Kind::Pvc,
                max(pvcs.items.iter().map(|o| o.resource_version()).collect()),
            ),
        ];
        let l = self.log.lock().unwrap();
        Some(
            want.iter()
                .all(|(k, rv)| l.max_rv.get(k).copied().unwrap_or(0) >= *rv),
        )
    }

    /// Did any recorded version of StatefulSet `sts` carry a container with `image`?
    pub fn saw_image(&self, sts: &str, image: &str) -> bool {
        self.log.lock().unwrap().saw_image(sts, image)
    }

    /// Distinct partition values of `sts` in the order they were written, starting with
    /// the one listed when the recording started.
    pub fn partitions(&self, sts: &str) -> Vec<i32> {
        self.log.lock().unwrap().partitions(sts)
    }

    /// Partition values of `sts` written after resourceVersion `rv`.
    pub fn partitions_after(&self, sts: &str, rv: u64) -> Vec<i32> {
        self.log.lock().unwrap().partitions_after(sts, rv)
    }

    /// Pod names in the order they first became available on `revision`.
    pub fn ready_order(&self, revision: &str) -> Vec<String> {
        self.log.lock().unwrap().ready_order(revision)
    }

    /// The most pods of `names` unavailable at any one moment after the baseline (a pod
    /// that does not exist counts as unavailable).
    pub fn max_unavailable(&self, names: &[String]) -> usize {
        self.log.lock().unwrap().max_unavailable(names)
    }

    /// Replays the recording in resourceVersion order and checks the invariants.
    pub fn analyse(&self, c: &Check<'_>) -> Findings {
        self.log.lock().unwrap().analyse(c)
    }
}

/// The queries and checks, on the recording (see [`Recorder`]).
impl Log {
    /// The recording in resourceVersion order.
    fn replay(&self) -> Vec<Ev> {
        let mut evs = self.events.clone();
        evs.sort_by_key(|e| (e.rv, e.seq));
        evs
    }

    /// Did any recorded version of StatefulSet `sts` carry a container with `image`?
    fn saw_image(&self, sts: &str, image: &str) -> bool {
        self.events.iter().any(|e| {
            e.kind == Kind::Sts
                && e.name == sts
                && matches!(&e.state, Some(State::Sts(s)) if images_of(&s.template).iter().any(|i| i == image))
        })
    }

    /// Distinct partition values of `sts` in the order they were written, starting with
    /// the one listed when the recording started.
    fn partitions(&self, sts: &str) -> Vec<i32> {
        let mut out: Vec<i32> = vec![];
        for e in self.replay() {
            if let (Kind::Sts, Some(State::Sts(s))) = (e.kind, &e.state) {
                if e.name == sts && out.last() != Some(&s.partition) {
                    out.push(s.partition);
                }
            }
        }
        out
    }

    /// Partition values of `sts` written after resourceVersion `rv`.
    fn partitions_after(&self, sts: &str, rv: u64) -> Vec<i32> {
        self.replay()
            .iter()
            .filter(|e| e.kind == Kind::Sts && e.name == sts && e.rv > rv)
            .filter_map(|e| match &e.state {
                Some(State::Sts(s)) => Some(s.partition),
                _ => None,
            })
            .collect()
    }

    /// Pod names in the order they first became available on `revision`.
    fn ready_order(&self, revision: &str) -> Vec<String> {
        let mut order: Vec<String> = vec![];
        for e in self.replay() {
            if let (Kind::Pod, Some(State::Pod(p))) = (e.kind, &e.state) {
                if p.available
                    && p.revision.as_deref() == Some(revision)
                    && !order.contains(&e.name)
                {
                    order.push(e.name);
                }
            }
        }
        order
    }

    /// The most pods of `names` unavailable at any one moment after the baseline (a pod
    /// that does not exist counts as unavailable).
    fn max_unavailable(&self, names: &[String]) -> usize {
        let (evs, baseline) = (self.replay(), self.baseline);
        let mut available: HashMap<String, bool> = HashMap::new();
        let mut worst = 0;
        for e in evs {
            if e.kind == Kind::Pod {
                let a = matches!(&e.state, Some(State::Pod(p)) if p.available);
                available.insert(e.name, a);
            }
            if e.rv > baseline {
                let down = names
                    .iter()
                    .filter(|n| !available.get(*n).copied().unwrap_or(false))
                    .count();
                worst = worst.max(down);
            }
        }
        worst
    }

    /// Replays the recording in resourceVersion order and checks the invariants.
    fn analyse(&self, c: &Check<'_>) -> Findings {
        let (evs, baseline, watch_errors) = (self.replay(), self.baseline, self.watch_errors);
        let mut pods: BTreeMap<String, PodState> = BTreeMap::new();
        let mut sets: HashMap<String, StsState> = HashMap::new();
        let mut pvcs: HashMap<String, PvcTrack> = HashMap::new();
        let mut f = Findings {
            watch_errors,
            ..Default::default()
        };
        for e in evs {
            let checked = e.rv > baseline;
            match e.kind {
                Kind::Pvc => {
                    // The deletion is decided at the mark (deletionTimestamp). A mark while
                    // the claim is in use is allowed only under prune's hold, and such a
                    // claim must never then go away (the hold keeps its volume).
                    let prev = pvcs.get(&e.name).cloned();
                    let (deleting, held) = match &e.state {
                        Some(State::Pvc { deleting, held }) => (*deleting, *held),
                        _ => (true, false),
                    };
                    let marked_now = matches!(&prev, Some(p) if !p.deleting) && deleting;
                    let mut marked_in_use = prev.as_ref().and_then(|p| p.marked_in_use.clone());
                    if checked && marked_now {
                        if let Some(why) = pvc_in_use(&e.name, c, &sets, &pods) {
                            if held && e.state.is_some() {
                                marked_in_use = Some(why);
                            } else {
                                f.violations.push(format!(
                                    "rv {}: PVC {} deleted while {why}",
                                    e.rv, e.name
                                ));
                            }
                        }
                    }
                    match e.state {
                        Some(State::Pvc { .. }) => {
                            pvcs.insert(
                                e.name,
                                PvcTrack {
                                    deleting,
                                    marked_in_use,
                                },
                            );
                        }
                        _ => {
                            if let (true, Some(why)) = (checked, marked_in_use) {
                                f.violations.push(format!(
                                    "rv {}: PVC {} went away after being marked while {why}",
                                    e.rv, e.name
                                ));
                            }
                            pvcs.remove(&e.name);
                        }
                    }
                }
                Kind::Pod => match e.state {
                    Some(State::Pod(p)) => {
                        pods.insert(e.name, p);
                    }
                    _ => {
                        pods.remove(&e.name);
                    }
                },
                Kind::Sts => match e.state {
                    Some(State::Sts(new)) => {
                        if e.name == c.sts {
                            if let (true, Some(prev)) = (checked, sets.get(&e.name)) {
                                check_partition(e.rv, prev, &new, &pods, c, &mut f.violations);
                            }
                            if f.partitions.last() != Some(&new.partition) {
                                f.partitions.push(new.partition);
                            }
                        }
                        sets.insert(e.name, *new);
                    }
                    _ => {
                        sets.remove(&e.name);
                    }
                },
            }
            if let (true, Some(s)) = (checked, sets.get(c.sts)) {
                let down: Vec<String> = (0..s.replicas)
                    .map(|o| model::pod_name(c.sts, o))
                    .filter(|n| !pods.get(n).is_some_and(|p| p.available))
                    .collect();
                if down.len() > f.max_unavailable {
                    f.max_unavailable = down.len();
                    f.worst = format!("at rv {}: {}", e.rv, down.join(", "));
                }
            }
        }
        f
    }
}

fn check_partition(
    rv: u64,
    prev: &StsState,
    new: &StsState,
    pods: &BTreeMap<String, PodState>,
    c: &Check<'_>,
    violations: &mut Vec<String>,
) {
    if new.partition >= prev.partition {
        return;
    }
    if new.template != prev.template {
        let restores = c.rollback_to.contains(&images_of(&new.template));
        if new.partition < new.replicas && !restores {
            violations.push(format!(
                "rv {rv}: the template changed to {:?} and the partition went {} → {} in the same write",
                images_of(&new.template),
                prev.partition,
                new.partition
            ));
        }
        return;
    }
    let Some(update) = new.update.as_deref() else {
        violations.push(format!(
            "rv {rv}: partition lowered {} → {} before the controller reported an update revision",
            prev.partition, new.partition
        ));
        return;
    };
    for o in prev.partition.max(0)..new.replicas {
        let name = model::pod_name(c.sts, o);
        let state = match pods.get(&name) {
            Some(p) if p.available && p.revision.as_deref() == Some(update) => continue,
            Some(p) if p.available => format!("on revision {:?}, not {update}", p.revision),
            Some(_) => "not available".to_string(),
            None => "missing".to_string(),
        };
        violations.push(format!(
            "rv {rv}: partition lowered {} → {} while {name} was {state}",
            prev.partition, new.partition
        ));
    }
}

/// Why deleting `pvc` now is unsafe: its ordinal (for any of the StatefulSet's claim
/// templates) is live, or a pod mounts it.
fn pvc_in_use(
    pvc: &str,
    c: &Check<'_>,
    sets: &HashMap<String, StsState>,
    pods: &BTreeMap<String, PodState>,
) -> Option<String> {
    if let Some(s) = sets.get(c.sts) {
        let ordinal = s
            .claims
            .iter()
            .find_map(|t| model::claim_ordinal(pvc, t, c.sts));
        if let Some(o) = ordinal.filter(|o| *o < s.replicas) {
            return Some(format!(
                "ordinal {o} of {} was live (replicas {})",
                c.sts, s.replicas
            ));
        }
    }
    pods.iter()
        .find(|(_, p)| p.claims.iter().any(|x| x == pvc))
        .map(|(n, _)| format!("pod {n} mounted it"))
}

mod tests;
