//! Fault injection against the local control plane. `make test` runs the short version;
//! `make faults` runs the long one (`STS_SAFE_FAULT_TRIALS=50`, one test at a time).
//!
//! Every scenario checks the safety invariants on a timeline recorded by an independent
//! watch ([`Timeline`]: the namespace's pods, StatefulSets and PVCs). Events are ordered by
//! resourceVersion, which etcd assigns from one global counter, so the order across the
//! three watches is the order in which the writes happened:
//! - never more pods of `[0, replicas)` unavailable at one moment than the step allows;
//! - the partition is lowered from `q` to `p` only while every ordinal `>= q` is available
//!   on the update revision (a write that also changes the template must be the freeze,
//!   partition >= replicas, or a rollback to the template recorded before the run);
//! - no PVC is deleted while its ordinal is live or while a pod mounts it;
//! - no lost update: the final template is the one asked for, and changes made by other
//!   clients survive.
//!
//! Scenarios and trial counts (`N` = `STS_SAFE_FAULT_TRIALS`, default 5):
//! 1. `kill -9` of `canary` at random points (before/after the freeze patch, during a step):
//!    N trials, then `canary --resume` (or the same command) completes; `kill -9` of
//!    `rollback`: ceil(N/2) trials, then `rollback` again; plus the exact state a kill between
//!    rollback's write and its stuck-pod delete leaves.
//! 2. kube-apiserver restarts (`scripts/cluster.sh restart-apiserver`) mid-canary and
//!    mid-scale: 3 by default, 20 with N=50 (`restart_trials`).
//! 3. races with other clients: template, replicas, a pod deleted, two copies of the plugin,
//!    a scale-up between prune's plan and its deletes (ceil(N/5) concurrent trials + one
//!    through the prompt).
//! 4. a table of bad input (flags, values, names, namespaces, contexts, kubeconfigs,
//!    credentials, an unreachable server, 403 for each verb, OnDelete, partition > replicas,
//!    replicas 0, …): one clear line, the documented exit code, resourceVersion unchanged.
//! 5. least privilege: every write path as `sts-safe-limited` with only deploy/rbac.yaml,
//!    at -vvv, and no key, certificate or bearer token ever in the output.
//!
//! Random kill points and restart times come from a seed printed by each test; set
//! `STS_SAFE_FAULT_SEED` to replay them.
//!
//! Isolation of the apiserver restarts: a restart breaks every request in flight, so the
//! restart test first waits until no other test namespace (`t-*`, Active, younger than 30
//! minutes, from this or any other test process) exists and no plugin process it did not
//! start runs (a benchmark, a demo) for 3 s, and checks again before each restart; restart
//! tests of different processes take a file lock. In `make faults` (`--test-threads 1`) it
//! never waits; in `make test` it waits for the rest of the e2e binary to finish (libtest
//! starts no new test once its queue is empty), then runs the short version alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sts_safe::model;

use crate::support::{kubeconfig, Pty, Run, TestNs, PLUGIN};

const ADMIN: &str = "sts-safe-admin";
const LIMITED: &str = "sts-safe-limited";
const WAIT: Duration = Duration::from_secs(90);
const CLAIM: &str = "redis-data";

// ---- configuration -----------------------------------------------------------------------

/// `STS_SAFE_FAULT_TRIALS` (default 5): kill trials per scenario.
fn fault_trials() -> usize {
    match std::env::var("STS_SAFE_FAULT_TRIALS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("STS_SAFE_FAULT_TRIALS={v:?} is not a whole number"))
            .max(1),
        _ => 5,
    }
}

/// Apiserver restarts: 20 for N=50, 3 for the default N=5 (about 2N/5, at least min(N, 3)).
fn restart_trials() -> usize {
    let n = fault_trials();
    ((2 * n).div_ceil(5)).max(n.min(3))
}

fn seeded(test: &str, trials: usize) -> StdRng {
    let seed = std::env::var("STS_SAFE_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: {trials} trial(s), seed {seed} (STS_SAFE_FAULT_SEED={seed} replays it)");
    StdRng::seed_from_u64(seed)
}

// ---- running the plugin --------------------------------------------------------------------

fn plugin_cmd(ns: &TestNs, context: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(PLUGIN);
    cmd.args(args)
        .args(["-n", &ns.name, "--context", context])
        .env("KUBECONFIG", kubeconfig())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(child: tokio::process::Child, what: &[&str]) -> Run {
    match tokio::time::timeout(Duration::from_secs(300), child.wait_with_output()).await {
        Ok(out) => Run::from(out.expect("plugin output")),
        Err(_) => panic!("the plugin ({what:?}) did not finish within 300s"),
    }
}

async fn plugin(ns: &TestNs, context: &str, args: &[&str]) -> Run {
    let child = plugin_cmd(ns, context, args)
        .spawn()
        .expect("start the plugin");
    finish(child, args).await
}

#[track_caller]
fn expect_code(r: &Run, code: i32, what: &str) {
    assert_eq!(
        r.code, code,
        "{what}: unexpected exit code\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

// ---- reading the cluster (tolerant of an apiserver that just restarted) --------------------

async fn get_sts(ns: &TestNs, name: &str) -> StatefulSet {
    let api = ns.api::<StatefulSet>();
    ns.eventually(WAIT, &format!("get statefulset {name}"), || async {
        api.get(name).await.ok()
    })
    .await
}

async fn list_pods(ns: &TestNs) -> Vec<Pod> {
    let api = ns.api::<Pod>();
    ns.eventually(WAIT, "list pods", || async {
        api.list(&ListParams::default()).await.ok().map(|l| l.items)
    })
    .await
}

fn template_of(sts: &StatefulSet) -> serde_json::Value {
    serde_json::to_value(&sts.spec.template).unwrap()
}

fn images_of(template: &serde_json::Value) -> Vec<String> {
    template["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["image"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn with_image(template: &serde_json::Value, image: &str) -> serde_json::Value {
    let mut t = template.clone();
    t["spec"]["containers"][0]["image"] = image.into();
    t
}

/// Waits until every pod of `redis` is available on the update revision, the revision is
/// promoted and the partition is 0, then checks the template is exactly `template`.
async fn expect_converged(ns: &TestNs, template: &serde_json::Value, what: &str) -> StatefulSet {
    let sts = ns.wait_ready("redis", WAIT).await;
    assert_eq!(model::partition(&sts), 0, "{what}: partition back to 0");
    assert!(!model::rollout_pending(&sts), "{what}: nothing pending");
    assert_eq!(
        &template_of(&sts),
        template,
        "{what}: the template is exactly the one asked for (no lost update)"
    );
    let update = model::update_revision(&sts).unwrap_or_default().to_string();
    let want = images_of(template);
    for p in list_pods(ns).await {
        assert!(
            model::is_available(&p),
            "{what}: {} available",
            p.name_any()
        );
        assert_eq!(
            model::revision(&p),
            Some(update.as_str()),
            "{what}: {}",
            p.name_any()
        );
        assert_eq!(model::images(&p), want, "{what}: {} image", p.name_any());
    }
    sts
}

// ---- the independent recording watch -------------------------------------------------------

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
}

#[derive(Debug, Clone)]
enum State {
    Pod(PodState),
    Sts(Box<StsState>),
    Pvc { deleting: bool },
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
    }))
}

fn pvc_state(p: &PersistentVolumeClaim) -> State {
    State::Pvc {
        deleting: p.metadata.deletion_timestamp.is_some(),
    }
}

enum Raw {
    Pod(watcher::Event<Pod>),
    Sts(watcher::Event<StatefulSet>),
    Pvc(watcher::Event<PersistentVolumeClaim>),
}

/// What the invariants are checked against.
struct Check<'a> {
    sts: &'a str,
    /// Pods that may be unavailable at once.
    step: usize,
    /// Image lists a write may restore while lowering the partition (rollbacks).
    rollback_to: Vec<Vec<String>>,
}

#[derive(Debug, Default)]
struct Findings {
    max_unavailable: usize,
    worst: String,
    violations: Vec<String>,
    partitions: Vec<i32>,
    watch_errors: usize,
}

impl Findings {
    #[track_caller]
    fn assert_safe(&self, check: &Check<'_>, what: &str) {
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
struct Timeline {
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Timeline {
    async fn start(ns: &TestNs) -> Timeline {
        let cfg = watcher::Config::default();
        let pods = watcher(ns.api::<Pod>(), cfg.clone())
            .default_backoff()
            .map(|r| r.map(Raw::Pod));
        let sets = watcher(ns.api::<StatefulSet>(), cfg.clone())
            .default_backoff()
            .map(|r| r.map(Raw::Sts));
        let pvcs = watcher(ns.api::<PersistentVolumeClaim>(), cfg)
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
        Timeline { log, task }
    }

    /// Waits until the watch has delivered the newest version of every object listed now.
    async fn caught_up(&self, ns: &TestNs) {
        let log = self.log.clone();
        ns.eventually(WAIT, "the recording watch to catch up", || {
            let log = log.clone();
            async move {
                let lp = ListParams::default();
                let max = |rvs: Vec<Option<String>>| {
                    rvs.into_iter()
                        .filter_map(|r| r?.parse::<u64>().ok())
                        .max()
                        .unwrap_or(0)
                };
                let pods = ns.api::<Pod>().list(&lp).await.ok()?;
                let sets = ns.api::<StatefulSet>().list(&lp).await.ok()?;
                let pvcs = ns.api::<PersistentVolumeClaim>().list(&lp).await.ok()?;
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
                let l = log.lock().unwrap();
                want.iter()
                    .all(|(k, rv)| l.max_rv.get(k).copied().unwrap_or(0) >= *rv)
                    .then_some(())
            }
        })
        .await;
    }

    /// Did any recorded version of StatefulSet `sts` carry a container with `image`?
    fn saw_image(&self, sts: &str, image: &str) -> bool {
        self.log.lock().unwrap().events.iter().any(|e| {
            e.kind == Kind::Sts
                && e.name == sts
                && matches!(&e.state, Some(State::Sts(s)) if images_of(&s.template).iter().any(|i| i == image))
        })
    }

    /// Partition values written after resourceVersion `rv`.
    fn partitions_after(&self, sts: &str, rv: u64) -> Vec<i32> {
        let mut evs = self.log.lock().unwrap().events.clone();
        evs.sort_by_key(|e| (e.rv, e.seq));
        evs.iter()
            .filter(|e| e.kind == Kind::Sts && e.name == sts && e.rv > rv)
            .filter_map(|e| match &e.state {
                Some(State::Sts(s)) => Some(s.partition),
                _ => None,
            })
            .collect()
    }

    /// Replays the recording in resourceVersion order and checks the invariants.
    fn analyse(&self, c: &Check<'_>) -> Findings {
        let (mut evs, baseline, watch_errors) = {
            let l = self.log.lock().unwrap();
            (l.events.clone(), l.baseline, l.watch_errors)
        };
        evs.sort_by_key(|e| (e.rv, e.seq));
        let mut pods: BTreeMap<String, PodState> = BTreeMap::new();
        let mut sets: HashMap<String, StsState> = HashMap::new();
        let mut pvcs: HashMap<String, bool> = HashMap::new();
        let mut f = Findings {
            watch_errors,
            ..Default::default()
        };
        for e in evs {
            let checked = e.rv > baseline;
            match e.kind {
                Kind::Pvc => {
                    let deleting_now = match &e.state {
                        Some(State::Pvc { deleting }) => *deleting,
                        _ => true,
                    };
                    if checked && deleting_now && pvcs.get(&e.name) == Some(&false) {
                        if let Some(why) = pvc_in_use(&e.name, c, &sets, &pods) {
                            f.violations
                                .push(format!("rv {}: PVC {} deleted while {why}", e.rv, e.name));
                        }
                    }
                    match e.state {
                        Some(State::Pvc { deleting }) => {
                            pvcs.insert(e.name, deleting);
                        }
                        _ => {
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

fn pvc_in_use(
    pvc: &str,
    c: &Check<'_>,
    sets: &HashMap<String, StsState>,
    pods: &BTreeMap<String, PodState>,
) -> Option<String> {
    if let (Some(s), Some(o)) = (sets.get(c.sts), model::claim_ordinal(pvc, CLAIM, c.sts)) {
        if o < s.replicas {
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

// ---- 1. kill -9 at random points -----------------------------------------------------------

/// Where a kill landed, judged from the StatefulSet right after it.
fn kill_point(finished: bool, sts: &StatefulSet, image: &str) -> String {
    if finished {
        return "after the run finished".into();
    }
    let (p, r) = (model::partition(sts), model::replicas(sts));
    if images_of(&template_of(sts)) != [image] {
        "before the freeze patch".into()
    } else if p >= r {
        "after the freeze patch, before step 1".into()
    } else {
        format!("during step {} of {r} (partition {p})", r - p)
    }
}

/// Re-runs the canary until the plugin reports it done: `--resume` when a rollout is
/// pending (or the same `--image` command when `resume` is false), the same command when
/// nothing was written yet. Returns every run (the last one failed if its code is not 0).
async fn complete_canary(ns: &TestNs, image: &str, resume: bool) -> Vec<Run> {
    let mut runs: Vec<Run> = vec![];
    let started = Instant::now();
    while started.elapsed() < WAIT {
        let sts = get_sts(ns, "redis").await;
        let on_new = images_of(&template_of(&sts)) == [image];
        let pending = model::rollout_pending(&sts);
        if on_new && !pending && model::partition(&sts) == 0 && model::observed(&sts) {
            return runs;
        }
        let args: Vec<&str> = if on_new && pending && resume {
            vec!["canary", "redis", "--resume", "--yes"]
        } else if !on_new || pending {
            vec!["canary", "redis", "--image", image, "--yes"]
        } else {
            // The freeze is written but the controller has not reported the new revision.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let r = plugin(ns, ADMIN, &args).await;
        let failed = r.code != 0;
        runs.push(r);
        if failed || runs.len() >= 3 {
            return runs;
        }
    }
    runs
}

#[track_caller]
fn expect_all_ok(runs: &[Run], what: &str) {
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(
            r.code,
            0,
            "{what}: re-run {} failed\nstdout:\n{}\nstderr:\n{}",
            i + 1,
            r.stdout,
            r.stderr
        );
    }
}

#[tokio::test]
async fn kill_9_at_random_points_of_a_canary_then_resume_completes() {
    let trials = fault_trials();
    let mut rng = seeded("kill -9 canary", trials);
    let ns = TestNs::new("fault-kill").await;
    ns.ready_redis(3).await;
    let mut points: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..trials {
        let before = get_sts(&ns, "redis").await;
        let image = format!("redis:k{i}-ready-after-1s");
        let want = with_image(&template_of(&before), &image);
        let rec = Timeline::start(&ns).await;
        // Spread the kills: right at the start (before/around the freeze), around the
        // freeze and the first step, and anywhere in the ~5 s of steps.
        let delay = match i % 5 {
            0 => rng.random_range(0..200),
            1 => rng.random_range(150..700),
            _ => rng.random_range(500..4200),
        };
        let args = ["canary", "redis", "--image", &image, "--yes"];
        let mut child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
        let finished = tokio::time::timeout(Duration::from_millis(delay), child.wait())
            .await
            .is_ok();
        child.start_kill().ok();
        let out = finish(child, &args).await;
        let at = kill_point(finished, &get_sts(&ns, "redis").await, &image);
        *points.entry(at.clone()).or_default() += 1;
        eprintln!("kill trial {i}: SIGKILL after {delay} ms: {at}");
        if finished {
            expect_code(&out, 0, "a canary that finished before the kill");
        }

        let what = format!("kill trial {i} ({at}, {delay} ms)");
        let runs = complete_canary(&ns, &image, i % 2 == 0).await;
        expect_all_ok(&runs, &what);
        expect_converged(&ns, &want, &what).await;
        rec.caught_up(&ns).await;
        let check = Check {
            sts: "redis",
            step: 1,
            rollback_to: vec![],
        };
        rec.analyse(&check).assert_safe(&check, &what);
    }
    eprintln!("kill points over {trials} trial(s): {points:?}");
}

/// Pods of `redis` on a revision other than the update revision and not Ready: the pods
/// `rollback` must delete because the controller never replaces them (kubernetes#67250).
fn stuck_pods(sts: &StatefulSet, pods: &[Pod]) -> Vec<String> {
    let update = model::update_revision(sts).unwrap_or_default();
    pods.iter()
        .filter(|p| model::revision(p) != Some(update) && !model::is_ready(p))
        .filter(|p| !model::is_terminating(p))
        .map(|p| p.name_any())
        .collect()
}

/// Waits until all pods run `template` again; on timeout fails naming the stuck pods and
/// what the re-run printed.
async fn expect_rolled_back(ns: &TestNs, template: &serde_json::Value, what: &str, rerun: &str) {
    let api = ns.api::<StatefulSet>();
    let start = Instant::now();
    loop {
        if let Ok(sts) = api.get("redis").await {
            let pods = list_pods(ns).await;
            let update = model::update_revision(&sts).unwrap_or_default().to_string();
            let done = !model::rollout_pending(&sts)
                && model::observed(&sts)
                && pods.len() as i32 == model::replicas(&sts)
                && pods
                    .iter()
                    .all(|p| model::is_available(p) && model::revision(p) == Some(update.as_str()));
            if done {
                expect_converged(ns, template, what).await;
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!(
                    "{what}: 30 s after re-running the rollback, pods are still not all Ready on one revision; \
                     stuck on another revision: {:?}; rollout pending: {}; the re-run printed:\n{rerun}",
                    stuck_pods(&sts, &pods),
                    model::rollout_pending(&sts)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kill_9_during_rollback_then_rerun_completes() {
    let trials = fault_trials().div_ceil(2);
    let mut rng = seeded("kill -9 rollback", trials);
    let ns = TestNs::new("fault-killrb").await;
    ns.ready_redis(3).await;
    let good = template_of(&get_sts(&ns, "redis").await);
    for i in 0..trials {
        let rec = Timeline::start(&ns).await;
        let bad = format!("redis:b{i}-crashloop");
        let canary = plugin(&ns, ADMIN, &["canary", "redis", "--image", &bad, "--yes"]).await;
        expect_code(&canary, 3, "a crash-looping canary stops at its first pod");

        let stuck_uid = ns
            .api::<Pod>()
            .get("redis-2")
            .await
            .ok()
            .and_then(|p| p.uid());
        // A rollback of one stuck pod takes about 1 s.
        let delay = if i % 3 == 0 {
            rng.random_range(0..200) // around its write
        } else {
            rng.random_range(150..900)
        };
        let args = ["rollback", "redis", "--yes"];
        let mut child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
        let finished = tokio::time::timeout(Duration::from_millis(delay), child.wait())
            .await
            .is_ok();
        child.start_kill().ok();
        let out = finish(child, &args).await;
        if finished {
            expect_code(&out, 0, "a rollback that finished before the kill");
        }
        let sts = get_sts(&ns, "redis").await;
        let stuck_left = ns
            .api::<Pod>()
            .get("redis-2")
            .await
            .ok()
            .is_some_and(|p| p.uid() == stuck_uid && !model::is_terminating(&p));
        let at = if finished {
            "after the rollback finished"
        } else if images_of(&template_of(&sts)) != images_of(&good) {
            "before its write"
        } else if stuck_left {
            "after its write, before its stuck-pod delete"
        } else {
            "after its write and its stuck-pod delete"
        };
        eprintln!("rollback kill trial {i}: SIGKILL after {delay} ms, {at}");

        // The operator's next step: run the rollback again.
        let rerun = plugin(&ns, ADMIN, &["rollback", "redis", "--yes"]).await;
        let what = format!("rollback kill trial {i} ({at}, {delay} ms)");
        expect_code(&rerun, 0, &what);
        expect_rolled_back(&ns, &good, &what, &rerun.stderr).await;
        rec.caught_up(&ns).await;
        let check = Check {
            sts: "redis",
            step: 1,
            rollback_to: vec![images_of(&good)],
        };
        rec.analyse(&check).assert_safe(&check, &what);
    }
}

/// A `kill -9` that lands between rollback's first write (old template, partition 0) and
/// its delete of the pod stuck on the bad revision leaves exactly this state; the window
/// is a few milliseconds, so the test makes the same write itself (src/commands/rollback.rs
/// `execute`: the template of currentRevision and partition 0, guarded by resourceVersion)
/// and then runs `rollback` again, as an operator would.
#[tokio::test]
async fn rollback_killed_between_its_write_and_the_stuck_pod_delete_can_be_finished() {
    let ns = TestNs::new("fault-rbwin").await;
    ns.ready_redis(3).await;
    let good = template_of(&ns.sts("redis").await);
    let canary = ns
        .plugin(&["canary", "redis", "--image", "redis:7.4-crashloop", "--yes"])
        .await;
    canary.expect_code(3);
    let sts = ns.sts("redis").await;
    let current = model::current_revision(&sts).unwrap().to_string();
    let cr = ns
        .api::<ControllerRevision>()
        .get(&current)
        .await
        .expect("current controller revision");
    // The template the revision holds (what `rollback` restores), written the way
    // `rollback` writes it: template and partition 0 in one write guarded by resourceVersion.
    let mut template = serde_json::to_value(&cr).unwrap()["data"]["spec"]["template"].clone();
    template
        .as_object_mut()
        .expect("the controller revision holds a template")
        .remove("$patch");
    assert_eq!(images_of(&template), images_of(&good));
    let rv = sts.resource_version().unwrap();
    ns.api::<StatefulSet>()
        .patch(
            "redis",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"resourceVersion": rv},
                "spec": {
                    "template": template,
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
                }
            })),
        )
        .await
        .expect("rollback's first write");
    ns.eventually(
        WAIT,
        "the controller to observe the rollback write",
        || async {
            let s = ns.api::<StatefulSet>().get("redis").await.ok()?;
            model::observed(&s).then_some(())
        },
    )
    .await;
    let rerun = ns.plugin(&["rollback", "redis", "--yes"]).await;
    rerun.expect_code(0);
    expect_rolled_back(
        &ns,
        &good,
        "re-running rollback after a kill between its write and its stuck-pod delete",
        &rerun.stderr,
    )
    .await;
}

// ---- 2. kube-apiserver restarts ------------------------------------------------------------

/// Serialises restart tests of different test processes on this machine.
async fn restart_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("sts-safe-fault-apiserver-restart.lock");
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.lock().expect("lock the restart lock file");
        f
    })
    .await
    .unwrap()
}

/// Other tests' namespaces that are in use now (see the module comment).
async fn busy_namespaces(ns: &TestNs) -> Vec<String> {
    let api: Api<Namespace> = Api::all(ns.client.clone());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return vec!["(cannot list namespaces)".into()];
    };
    let now = SystemTime::now();
    list.items
        .into_iter()
        .filter(|n| {
            let name = n.name_any();
            let active = n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active");
            let young = n.creation_timestamp().is_some_and(|t| {
                let created = UNIX_EPOCH + Duration::from_secs(t.0.as_second().max(0) as u64);
                now.duration_since(created).unwrap_or_default() < Duration::from_secs(1800)
            });
            name.starts_with("t-")
                && !name.starts_with("t-fault-restart-")
                && name != ns.name
                && active
                && young
        })
        .map(|n| n.name_any())
        .collect()
}

/// Plugin processes (`kubectl-sts_safe`, e.g. a benchmark or a demo) that this test
/// process did not start. Only reads /proc.
fn foreign_plugin_processes() -> Vec<String> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv0 = cmdline.split(|b| *b == 0).next()?;
            let exe = String::from_utf8_lossy(argv0);
            if Path::new(exe.as_ref()).file_name()? != "kubectl-sts_safe" {
                return None;
            }
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid != me).then(|| format!("pid {pid} ({exe})"))
        })
        .collect()
}

/// Waits until no other test has a namespace, and no plugin process this test did not
/// start runs, for `quiet` in a row.
async fn wait_until_alone(ns: &TestNs, quiet: Duration) {
    let start = Instant::now();
    let mut quiet_since: Option<Instant> = None;
    let mut said = false;
    loop {
        let mut busy = busy_namespaces(ns).await;
        busy.extend(foreign_plugin_processes());
        if busy.is_empty() {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= quiet {
                if said {
                    eprintln!(
                        "apiserver restarts: alone after {:.0}s",
                        start.elapsed().as_secs_f64()
                    );
                }
                return;
            }
        } else {
            quiet_since = None;
            if !said {
                eprintln!("apiserver restarts: waiting for other tests to finish first: {busy:?}");
                said = true;
            }
            if start.elapsed() > Duration::from_secs(1800) {
                panic!("other tests kept running for 30 min ({busy:?}); the apiserver restarts need the cluster to themselves");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn restart_apiserver() -> Duration {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = kubeconfig()
        .parent()
        .expect("kubeconfig in the cluster state dir")
        .to_path_buf();
    let started = Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg(root.join("scripts/cluster.sh"))
        .arg("restart-apiserver")
        .env("STS_SAFE_CLUSTER_DIR", &state)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run scripts/cluster.sh");
    assert!(
        out.status.success(),
        "scripts/cluster.sh restart-apiserver failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Numbers that follow "partition " in `line`.
fn partitions_named(line: &str) -> Vec<i32> {
    line.match_indices("partition ")
        .filter_map(|(i, m)| {
            let rest = &line[i + m.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Judges how a run interrupted by an apiserver restart ended; returns problems.
fn judge_restart_exit(r: &Run, hint: &str, sts: &StatefulSet) -> Vec<String> {
    if r.code == 0 {
        return vec![];
    }
    let last = last_line(&r.stderr);
    let mut problems = vec![];
    if !last.starts_with("error: ") {
        problems.push(format!("exit {} without an error line: {last:?}", r.code));
    }
    if !last.contains(hint) {
        problems.push(format!(
            "exit {} without the command to continue ({hint:?}): {last}",
            r.code
        ));
    }
    let actual = model::partition(sts);
    for p in partitions_named(last) {
        if p != actual {
            problems.push(format!(
                "the message names partition {p} but the StatefulSet has partition {actual}: {last}"
            ));
        }
    }
    problems
}

#[tokio::test]
async fn apiserver_restarts_mid_canary_and_mid_scale() {
    let _lock = restart_lock().await;
    let ns = TestNs::new("fault-restart").await;
    wait_until_alone(&ns, Duration::from_secs(3)).await;
    let mut rng = seeded("apiserver restarts", restart_trials());
    ns.ready_redis(3).await;
    let total = restart_trials();
    let mut problems: Vec<String> = vec![];
    let mut outcomes: Vec<String> = vec![];
    let mut hit = 0;
    for i in 0..total {
        let rec = Timeline::start(&ns).await;
        let before = get_sts(&ns, "redis").await;
        let scale = i % 3 == 2;
        let (args, want_template, hint): (Vec<String>, serde_json::Value, &str) = if scale {
            let to = if model::replicas(&before) == 3 { 5 } else { 3 };
            let args = [
                "scale",
                "redis",
                "--replicas",
                &to.to_string(),
                "--soak",
                "1s",
                "--yes",
            ];
            (
                args.iter().map(|s| s.to_string()).collect(),
                template_of(&before),
                "sts-safe scale redis",
            )
        } else {
            // Even trials soak (a step can pass, and write, while the apiserver is away);
            // odd ones wait for pods that become Ready 1 s after they start.
            let image = if i % 2 == 0 {
                format!("redis:r{i}-alpine")
            } else {
                format!("redis:r{i}-ready-after-1s")
            };
            let mut args = vec![
                "canary".to_string(),
                "redis".into(),
                "--image".into(),
                image.clone(),
                "--yes".into(),
            ];
            if i % 2 == 0 {
                args.extend(["--soak".to_string(), "2s".into()]);
            }
            (args, with_image(&template_of(&before), &image), "--resume")
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = plugin_cmd(&ns, ADMIN, &argv).spawn().unwrap();
        let delay = if scale {
            rng.random_range(200..2500)
        } else {
            rng.random_range(300..4000)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        wait_until_alone(&ns, Duration::ZERO).await;
        if child.try_wait().unwrap().is_none() {
            hit += 1;
        }
        let took = restart_apiserver().await;
        let run = finish(child, &argv).await;
        let after = get_sts(&ns, "redis").await;
        let what = format!(
            "restart trial {i} ({}, restart after {delay} ms, apiserver back after {:.1}s)",
            argv[0],
            took.as_secs_f64()
        );
        let mut found = judge_restart_exit(&run, hint, &after);
        // Exit 0 means the plugin's part is done: nothing left for a re-run to do.
        if run.code == 0 {
            let done = if scale {
                after.spec.replicas.map(|r| r.to_string()).as_deref() == Some(argv[3])
            } else {
                images_of(&template_of(&after)) == [argv[3]] && model::partition(&after) == 0
            };
            if !done {
                found.push(format!(
                    "exit 0 but the run is not complete: replicas {:?}, partition {}, images {:?}",
                    after.spec.replicas,
                    model::partition(&after),
                    images_of(&template_of(&after))
                ));
            }
        }
        outcomes.push(format!(
            "{what}: exit {}{}",
            run.code,
            if run.code == 0 {
                String::new()
            } else {
                format!(": {}", last_line(&run.stderr))
            }
        ));
        problems.extend(found.into_iter().map(|p| format!("{what}: {p}")));

        // Continue as the message says (or as an operator would), until done.
        if scale {
            let to = argv[3];
            let r = plugin(&ns, ADMIN, &["scale", "redis", "--replicas", to, "--yes"]).await;
            expect_code(&r, 0, &format!("{what}: re-run of the scale"));
            let sts = ns.wait_ready("redis", WAIT).await;
            assert_eq!(sts.spec.replicas, Some(to.parse().unwrap()), "{what}");
            assert_eq!(
                template_of(&sts),
                want_template,
                "{what}: template untouched"
            );
        } else {
            let image = argv[3];
            let runs = complete_canary(&ns, image, true).await;
            expect_all_ok(&runs, &what);
            expect_converged(&ns, &want_template, &what).await;
        }
        rec.caught_up(&ns).await;
        let check = Check {
            sts: "redis",
            step: 1,
            rollback_to: vec![],
        };
        let f = rec.analyse(&check);
        f.assert_safe(&check, &what);
        if let Some(o) = outcomes.last_mut() {
            o.push_str(&format!(
                " (recording watch: {} error(s) while away)",
                f.watch_errors
            ));
        }
    }
    eprintln!("apiserver restarts:\n  {}", outcomes.join("\n  "));
    assert!(
        hit * 2 >= total,
        "only {hit} of {total} restarts happened while the plugin ran"
    );
    assert!(
        problems.is_empty(),
        "runs interrupted by an apiserver restart must complete, or exit with one clear line that \
         names the command to continue and matches the cluster:\n  {}",
        problems.join("\n  ")
    );
}

// ---- 3. races with other clients -----------------------------------------------------------

async fn wait_partition(ns: &TestNs, p: i32) {
    ns.eventually(WAIT, &format!("partition {p}"), || async {
        let s = ns.api::<StatefulSet>().get("redis").await.ok()?;
        (model::partition(&s) == p).then_some(())
    })
    .await;
}

/// Another client edits the template while a step runs: the canary stops at once
/// without lowering the partition further, the edit survives, and `--resume` completes
/// the rollout of the edited template.
#[tokio::test]
async fn another_client_edits_the_template_during_a_step() {
    let ns = TestNs::new("fault-edit").await;
    ns.ready_redis(3).await;
    let rec = Timeline::start(&ns).await;
    let image = "redis:e1-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 2).await;
    let edited = ns
        .api::<StatefulSet>()
        .patch(
            "redis",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"other-client": "edited"}}}}})),
        )
        .await
        .expect("the other client's edit");
    let edit_rv: u64 = edited.resource_version().unwrap().parse().unwrap();
    let out = finish(child, &args).await;
    expect_code(&out, 3, "a canary whose template is edited by someone else");
    let last = last_line(&out.stderr);
    assert!(last.contains("changed by someone else"), "{last}");
    assert!(last.contains("partition stays at 2"), "{last}");
    assert!(last.contains("--resume"), "{last}");
    let sts = ns.sts("redis").await;
    assert_eq!(model::partition(&sts), 2);
    rec.caught_up(&ns).await;
    assert!(
        rec.partitions_after("redis", edit_rv)
            .iter()
            .all(|p| *p == 2),
        "no partition write after the other client's edit: {:?}",
        rec.partitions_after("redis", edit_rv)
    );

    let want = template_of(&sts);
    assert_eq!(want["metadata"]["annotations"]["other-client"], "edited");
    assert_eq!(images_of(&want), [image]);
    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "resume after the edit");
    expect_converged(&ns, &want, "resume after the edit").await;
    rec.caught_up(&ns).await;
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![],
    };
    rec.analyse(&check)
        .assert_safe(&check, "template edit race");
}

/// Another client (an autoscaler) changes replicas during a step: the canary stops, the
/// new replica count is kept, and `--resume` updates all four pods.
#[tokio::test]
async fn another_client_changes_replicas_during_a_step() {
    let ns = TestNs::new("fault-replicas").await;
    ns.ready_redis(3).await;
    let rec = Timeline::start(&ns).await;
    let before = template_of(&ns.sts("redis").await);
    let image = "redis:e2-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 2).await;
    ns.patch_sts("redis", serde_json::json!({"spec": {"replicas": 4}}))
        .await;
    let out = finish(child, &args).await;
    expect_code(&out, 3, "a canary whose replicas change");
    let last = last_line(&out.stderr);
    assert!(last.contains("changed by someone else"), "{last}");
    assert!(last.contains("--resume"), "{last}");
    assert_eq!(
        ns.sts("redis").await.spec.replicas,
        Some(4),
        "the other client's value stays"
    );

    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "resume after the replica change");
    let sts = expect_converged(
        &ns,
        &with_image(&before, image),
        "resume after the replica change",
    )
    .await;
    assert_eq!(sts.spec.replicas, Some(4), "no lost update of replicas");
    rec.caught_up(&ns).await;
    // The step's pod and the pod the other client added can be unavailable together.
    let check = Check {
        sts: "redis",
        step: 2,
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "replicas race");
}

/// Another client deletes a canary pod that already passed its gate while the next step
/// runs: the canary stops (never lowering the partition while that pod is down), and
/// `--resume` re-verifies it and completes.
#[tokio::test]
async fn another_client_deletes_a_verified_pod_during_a_step() {
    let ns = TestNs::new("fault-delpod").await;
    ns.ready_redis(3).await;
    let rec = Timeline::start(&ns).await;
    let before = template_of(&ns.sts("redis").await);
    let image = "redis:e3-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 1).await; // redis-2 passed, step 2 (redis-1) runs
    ns.api::<Pod>()
        .delete("redis-2", &DeleteParams::default())
        .await
        .expect("the other client's delete");
    let out = finish(child, &args).await;
    expect_code(&out, 3, "a canary whose verified pod is deleted");
    let last = last_line(&out.stderr);
    assert!(last.contains("redis-2"), "names the pod: {last}");
    assert!(last.contains("--resume"), "{last}");

    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "resume after the pod delete");
    expect_converged(
        &ns,
        &with_image(&before, image),
        "resume after the pod delete",
    )
    .await;
    rec.caught_up(&ns).await;
    let check = Check {
        sts: "redis",
        step: 2, // the step's pod + the deleted one
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "pod delete race");
}

/// Two copies of the plugin on one StatefulSet. The plugin's behaviour (and what this
/// test pins down): a second `canary --image Y` while a rollout is pending refuses with
/// exit 3, writes nothing and names `--resume` and `rollback`; a second copy asking for the
/// same template resumes the pending rollout, and the two coordinate through the
/// StatefulSet's generation: the first partition write by either makes the other stop
/// with exit 3 ("changed by someone else") before it writes again, so exactly one finishes.
#[tokio::test]
async fn two_copies_on_the_same_statefulset() {
    let ns = TestNs::new("fault-twice").await;
    ns.ready_redis(3).await;
    let rec = Timeline::start(&ns).await;
    let before = template_of(&ns.sts("redis").await);
    let image = "redis:e4-ready-after-1s";
    let other = "redis:e5-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let first = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 2).await;

    let refused = plugin(&ns, ADMIN, &["canary", "redis", "--image", other, "--yes"]).await;
    expect_code(&refused, 3, "a second canary with another image");
    refused.expect_one_error_line("already has a rollout pending");
    assert!(
        refused.stderr.contains("--resume") && refused.stderr.contains("sts-safe rollback redis"),
        "{}",
        refused.stderr
    );

    let second = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    let (a, b) = futures::join!(finish(first, &args), finish(second, &args));
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(
        codes,
        [0, 3],
        "exactly one copy finishes, the other stops\nfirst:\n{}\nsecond:\n{}",
        a.stderr,
        b.stderr
    );
    let stopped = if a.code == 3 { &a } else { &b };
    assert!(
        last_line(&stopped.stderr).contains("changed by someone else"),
        "{}",
        stopped.stderr
    );
    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "after two copies");
    expect_converged(&ns, &with_image(&before, image), "after two copies").await;
    rec.caught_up(&ns).await;
    assert!(
        !rec.saw_image("redis", other),
        "the refused copy never wrote its template"
    );
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "two copies");
}

async fn scale_with_kubectl(ns: &TestNs, replicas: i32) {
    ns.kubectl(&[
        "scale",
        "statefulset",
        "redis",
        &format!("--replicas={replicas}"),
    ])
    .expect_code(0);
    ns.eventually(WAIT, &format!("{replicas} pods"), || async {
        (ns.pods().await.len() == replicas as usize).then_some(())
    })
    .await;
    ns.wait_ready("redis", WAIT).await;
}

/// A scale-up between prune's plan and its deletes: through the prompt (deterministic),
/// then with `--yes` and a scale-up at a random moment (ceil(N/5) trials). Whatever the
/// timing, no PVC is deleted while its ordinal is live or a pod mounts it.
#[tokio::test]
async fn scale_up_between_prune_plan_and_delete() {
    let ns = TestNs::new("fault-prune").await;
    let mut rng = seeded("prune vs scale-up", fault_trials().div_ceil(5));
    ns.ready_redis(4).await;
    scale_with_kubectl(&ns, 2).await;
    let check = Check {
        sts: "redis",
        step: 2, // the scale-up adds two pods at once
        rollback_to: vec![],
    };

    let rec = Timeline::start(&ns).await;
    let uids: Vec<_> = ns.pvcs().await.iter().map(|p| p.uid()).collect();
    let mut pty = Pty::spawn(&ns, &["prune-pvcs", "redis"]);
    pty.expect("Delete 2 PVC(s)", WAIT).await;
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=4"])
        .expect_code(0);
    pty.send("y").await;
    let (code, screen) = pty.wait().await;
    assert_eq!(code, 3, "planned PVCs were not deleted: {screen}");
    ns.wait_ready("redis", WAIT).await;
    let after: Vec<_> = ns.pvcs().await.iter().map(|p| p.uid()).collect();
    assert_eq!(after, uids, "every PVC kept, same uids");
    rec.caught_up(&ns).await;
    rec.analyse(&check)
        .assert_safe(&check, "prune through the prompt");

    for t in 0..fault_trials().div_ceil(5) {
        scale_with_kubectl(&ns, 2).await;
        let rec = Timeline::start(&ns).await;
        let args = ["prune-pvcs", "redis", "--yes"];
        let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
        let delay = rng.random_range(0..160);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        ns.patch_sts("redis", serde_json::json!({"spec": {"replicas": 4}}))
            .await;
        let out = finish(child, &args).await;
        let what = format!("prune trial {t} (scale-up after {delay} ms)");
        assert!(
            out.code == 0 || out.code == 3,
            "{what}: exit {}\n{}\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
        eprintln!("{what}: exit {}", out.code);
        ns.wait_ready("redis", WAIT).await;
        rec.caught_up(&ns).await;
        rec.analyse(&check).assert_safe(&check, &what);
    }
}

// ---- 4. bad input ---------------------------------------------------------------------------

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
    let doc = serde_yaml::Deserializer::from_str(include_str!("../../deploy/rbac.yaml"))
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

/// A private directory for a test's files (kubeconfigs with credentials), removed on drop.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(ns: &TestNs) -> TempDir {
    use std::os::unix::fs::DirBuilderExt;
    let d = std::env::temp_dir().join(format!("sts-safe-faults-{}", ns.name));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .unwrap();
    TempDir(d)
}

/// The local cluster's server URL and CA data, from the kubeconfig.
fn cluster_entry() -> (String, String) {
    let kc: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
    let c = &kc["clusters"][0]["cluster"];
    (
        c["server"].as_str().unwrap().to_string(),
        c["certificate-authority-data"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

fn write_kubeconfig(dir: &Path, file: &str, server: &str, ca: Option<&str>, user: &str) -> PathBuf {
    let ca = ca
        .map(|c| format!(", certificate-authority-data: \"{c}\""))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"{ca}}}}}]\n\
         users: [{{name: u, user: {user}}}]\ncontexts: [{{name: faults, context: {{cluster: c, user: u}}}}]\n\
         current-context: faults\n"
    );
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

fn b64(data: &[u8], url: bool) -> String {
    let table: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let bits: Vec<u8> = s.bytes().filter_map(val).collect();
    let mut out = vec![];
    for chunk in bits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | (*v as u32) << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
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
    let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#, true);
    let claims = serde_json::json!({
        "iss": issuer, "aud": [issuer], "sub": format!("system:serviceaccount:{ns}:default"),
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": "default", "uid": "00000000-0000-0000-0000-000000000000"}}
    });
    let payload = b64(claims.to_string().as_bytes(), true);
    let signing_input = format!("{header}.{payload}");
    let sig = openssl(
        &["dgst", "-sha256", "-sign", key.to_str().unwrap()],
        Some(signing_input.as_bytes()),
    );
    format!("{signing_input}.{}", b64(&sig, true))
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
        b64(&std::fs::read(crt).unwrap(), false),
        b64(&std::fs::read(key).unwrap(), false),
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

/// Runs every case; returns one description per failed expectation.
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
apiVersion: policy/v1beta1
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
        case(&["doctor"], Via::Limited(&[("list", "statefulsets")]), E, &["cannot list statefulsets"]),
        // gates, safety checks, refusals (3)
        on(case(&["canary", "ondel", "--image", img, "--yes"], Via::Admin, S, &["uses updateStrategy OnDelete"]), "ondel"),
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
        case(&["status"], Via::Admin, &[2], &["<NAME>"]),
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

// ---- 5. least privilege and secrets in logs ------------------------------------------------

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
            let pem = String::from_utf8(b64_decode(data)).unwrap_or_default();
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
    let rec = Timeline::start(&ns).await;
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
    rec.caught_up(&ns).await;
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

/// A bearer-token user (a ServiceAccount bound to deploy/rbac.yaml's Role) against the
/// same server and CA: the token never appears at -vvv, whether the requests succeed or
/// the token is refused.
#[tokio::test]
async fn bearer_token_never_appears_in_verbose_logs() {
    let ns = TestNs::new("fault-token").await;
    ns.ready_redis(2).await;
    ns.apply(include_str!("../../deploy/rbac.yaml")).await;
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
