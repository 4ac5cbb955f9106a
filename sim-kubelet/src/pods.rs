//! The scheduler and kubelet for pods: one watch over all pods; a worker task per pod uid
//! that binds it, plays its containers' lives in its status, records events, and finishes
//! graceful deletion.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Binding, Container, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod, PodCondition,
};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::attach::{is_attached, mount_gate};
use crate::behavior::{pod_behavior, readiness_failure_message};
use crate::events::{object_ref, EventSpec, ObjectEvents, Recorder, KUBELET, SCHEDULER};
use crate::metrics::{Life, Registry};
use crate::node::{Nodes, NODE_IP};
use crate::resize::ResizeHandle;
use crate::scheduling::{feasible_nodes, needs_scheduling, pick_node, volume_blocker};
use crate::status::{build_status, pod_ip, StatusInput};
use crate::timeline::{Happening, Plan, Stage};
use crate::util::{api_code, is_gone_or_conflict};

/// How long a pod must stay unschedulable before we report it (condition + event), so
/// that a claim created a moment after its pod does not produce noise.
const REPORT_UNSCHEDULABLE_AFTER: Duration = Duration::from_secs(1);
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Timing options from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub ready_delay: Duration,
    pub delete_delay: Duration,
    pub crash_interval: Duration,
}

/// What every pod worker shares.
pub struct PodCtx {
    pub client: Client,
    /// The nodes we play, their power and the volumes in use on them.
    pub nodes: Arc<Nodes>,
    pub timing: Timing,
    pub recorder: Recorder,
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub attachments: Store<VolumeAttachment>,
    /// Bumped on every claim, volume and VolumeAttachment change.
    pub claim_changes: watch::Receiver<u64>,
    /// Whether we bind pending pods; false when a real kube-scheduler does.
    pub scheduling: bool,
    /// Told when a pod starts (mounts its claims), for the filesystem resize.
    pub resize: Option<ResizeHandle>,
    /// The metrics exporter's targets (with `--metrics-listen`).
    pub metrics: Option<Arc<Registry>>,
    /// Every pod (the scheduler counts the pods of each node).
    pods: Store<Pod>,
    /// Pods we bound whose binding the watch may not show yet: uid → node.
    recent_binds: Mutex<HashMap<String, String>>,
    next_ip: AtomicU32,
}

/// The caches the pod workers read.
pub struct Caches {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub attachments: Store<VolumeAttachment>,
    pub claim_changes: watch::Receiver<u64>,
}

impl PodCtx {
    /// The context and the writer of its pod cache (for [`run`]).
    pub fn new(
        client: Client,
        nodes: Arc<Nodes>,
        timing: Timing,
        recorder: Recorder,
        caches: Caches,
    ) -> (Self, reflector::store::Writer<Pod>) {
        let (pods, writer) = reflector::store();
        let ctx = Self {
            client,
            nodes,
            timing,
            recorder,
            claims: caches.claims,
            volumes: caches.volumes,
            attachments: caches.attachments,
            claim_changes: caches.claim_changes,
            scheduling: true,
            resize: None,
            metrics: None,
            pods,
            recent_binds: Mutex::new(HashMap::new()),
            next_ip: AtomicU32::new(0),
        };
        (ctx, writer)
    }

    fn is_our_node(&self, name: &str) -> bool {
        self.nodes.is_played(name)
    }

    /// The pod's application no longer runs here: no metrics target any more.
    fn forget_metrics(&self, uid: &str) {
        if let Some(m) = &self.metrics {
            m.remove(uid);
        }
    }

    /// The non-terminated pods bound to each node, counting our bindings the watch does
    /// not show yet.
    fn node_loads(&self) -> HashMap<String, usize> {
        let pods = self.pods.state();
        let mut loads: HashMap<String, usize> = HashMap::new();
        let mut unbound: HashSet<&str> = HashSet::new();
        for p in &pods {
            if is_terminal(p) {
                continue;
            }
            match node_name(p) {
                Some(n) => *loads.entry(n.to_string()).or_default() += 1,
                None => {
                    if let Some(uid) = p.metadata.uid.as_deref() {
                        unbound.insert(uid);
                    }
                }
            }
        }
        let mut recent = self.recent_binds.lock().expect("binds lock");
        recent.retain(|uid, _| unbound.contains(uid.as_str()));
        for n in recent.values() {
            *loads.entry(n.clone()).or_default() += 1;
        }
        loads
    }
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

/// A running worker; dropping it stops the task.
struct Worker {
    tx: watch::Sender<Arc<Pod>>,
    task: JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches all pods and dispatches them to per-uid workers until the process ends.
/// `ready` is signalled once the initial list has been handled. When a node we play
/// appears, the pods already bound to it get workers.
pub async fn run(
    ctx: Arc<PodCtx>,
    writer: reflector::store::Writer<Pod>,
    ready: oneshot::Sender<()>,
) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    futures::pin_mut!(stream);
    let mut ready = Some(ready);
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    let mut node_changes = ctx.nodes.subscribe();
    let mut known = ctx.nodes.names();
    loop {
        let ev = tokio::select! {
            ev = stream.next() => match ev {
                Some(ev) => ev,
                None => return,
            },
            Ok(()) = node_changes.changed() => {
                let names = ctx.nodes.names();
                let new: HashSet<String> = names.difference(&known).cloned().collect();
                known = names;
                if !new.is_empty() {
                    for pod in ctx.pods.state() {
                        if node_name(&pod).is_some_and(|n| new.contains(n)) {
                            dispatch(&ctx, &mut workers, (*pod).clone());
                        }
                    }
                }
                continue;
            }
        };
        match ev {
            Ok(watcher::Event::Apply(pod)) => dispatch(&ctx, &mut workers, pod),
            Ok(watcher::Event::InitApply(pod)) => {
                if let (Some(set), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                    set.insert(uid);
                }
                dispatch(&ctx, &mut workers, pod);
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    if workers.remove(uid).is_some() {
                        debug!(pod = %full_name(&pod), %uid, "pod gone; worker stopped");
                    }
                    ctx.nodes.clear_in_use(uid);
                    ctx.forget_metrics(uid);
                }
            }
            Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
            Ok(watcher::Event::InitDone) => {
                if let Some(set) = listed.take() {
                    workers.retain(|uid, _| {
                        let keep = set.contains(uid);
                        if !keep {
                            ctx.nodes.clear_in_use(uid);
                            ctx.forget_metrics(uid);
                        }
                        keep
                    });
                }
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Err(e) => warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

fn full_name(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn dispatch(ctx: &Arc<PodCtx>, workers: &mut HashMap<String, Worker>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if let Some(w) = workers.get(&uid) {
        // A worker that gave up on the pod (e.g. bound to a node we did not play yet)
        // is replaced; one that finished a deletion is not.
        if !w.task.is_finished() || pod.metadata.deletion_timestamp.is_some() {
            w.tx.send_replace(Arc::new(pod));
            return;
        }
        workers.remove(&uid);
    }
    let relevant = !is_terminal(&pod)
        && ((ctx.scheduling && needs_scheduling(&pod))
            || node_name(&pod).is_some_and(|n| ctx.is_our_node(n)));
    if !relevant {
        return;
    }
    let (tx, rx) = watch::channel(Arc::new(pod));
    let task = tokio::spawn(PodWorker::new(ctx.clone(), rx).run());
    workers.insert(uid, Worker { tx, task });
}

/// Scheduling progress of a pod that is not bound yet.
#[derive(Default)]
struct SchedState {
    unschedulable_since: Option<Instant>,
    reported: Option<String>,
    failures: u32,
}

/// The simulated kubelet's memory of a pod bound to one of our nodes.
struct SimState {
    accepted_at: Timestamp,
    pod_ip: String,
    last_stage: Option<Stage>,
    last_written: Option<serde_json::Value>,
    warned: bool,
    failures: u32,
}

/// What a worker waits for before looking at its pod again.
#[derive(Default)]
struct Wake {
    at: Option<Instant>,
    on_claim_change: bool,
    on_node_change: bool,
}

impl Wake {
    fn after(&mut self, d: Duration) {
        let t = Instant::now() + d;
        self.at = Some(self.at.map_or(t, |old| old.min(t)));
    }
}

fn backoff(failures: u32) -> Duration {
    RETRY_MIN
        .saturating_mul(1 << failures.min(5))
        .min(RETRY_MAX)
}

struct PodWorker {
    ctx: Arc<PodCtx>,
    rx: watch::Receiver<Arc<Pod>>,
    api: Api<Pod>,
    uid: String,
    ns: String,
    name: String,
    events: ObjectEvents,
    /// The node the pod is bound to (by us, before the watch shows it, or in its spec).
    bound: Option<String>,
    sched: SchedState,
    sim: Option<SimState>,
    claim_changes: watch::Receiver<u64>,
    node_changes: watch::Receiver<u64>,
    /// The pod's node was seen powered off: when it is back, the pod starts afresh.
    saw_off: bool,
    /// The node came back: the next start is a fresh one (reboot), keeping the IP.
    rebooted: Option<String>,
    /// What the pod's start waits for (volumes), as last logged.
    waiting: Option<String>,
}

impl PodWorker {
    fn new(ctx: Arc<PodCtx>, rx: watch::Receiver<Arc<Pod>>) -> Self {
        let pod = rx.borrow().clone();
        let ns = pod.namespace().unwrap_or_else(|| "default".into());
        let api = Api::namespaced(ctx.client.clone(), &ns);
        let events =
            ObjectEvents::new(ctx.recorder.clone(), object_ref("v1", "Pod", &pod.metadata));
        let claim_changes = ctx.claim_changes.clone();
        let node_changes = ctx.nodes.subscribe();
        // A pod already reported unschedulable (e.g. before a restart) is not reported
        // again for the same reason.
        let reported = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
            .and_then(|c| c.message.clone());
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            name: pod.name_any(),
            ns,
            ctx,
            rx,
            api,
            events,
            bound: None,
            sched: SchedState {
                reported,
                ..SchedState::default()
            },
            sim: None,
            claim_changes,
            node_changes,
            saw_off: false,
            rebooted: None,
            waiting: None,
        }
    }

    /// Whether the pod's node is powered off; remembers it, so that the pod starts
    /// afresh when the node is back.
    fn node_is_off(&mut self, node: &str) -> bool {
        if self.ctx.nodes.powered_on(node) {
            if self.saw_off {
                self.saw_off = false;
                // Rebooted: the application starts afresh with its containers.
                self.ctx.forget_metrics(&self.uid);
                if let Some(sim) = self.sim.take() {
                    self.rebooted = Some(sim.pod_ip);
                }
            }
            false
        } else {
            if !self.saw_off {
                debug!(pod = %format!("{}/{}", self.ns, self.name), %node,
                    "node is powered off: the pod is left alone");
            }
            self.saw_off = true;
            true
        }
    }

    async fn run(mut self) {
        loop {
            let pod = self.rx.borrow_and_update().clone();
            if is_terminal(&pod) {
                self.ctx.nodes.clear_in_use(&self.uid);
                self.ctx.forget_metrics(&self.uid);
                return;
            }
            if let Some(n) = node_name(&pod) {
                self.bound = Some(n.to_string());
            }
            let mut wake = Wake::default();
            let ours = self.bound.clone().filter(|n| self.ctx.is_our_node(n));
            if ours.as_deref().is_some_and(|n| self.node_is_off(n)) {
                // A dead kubelet neither starts, updates nor confirms the deletion of its
                // pods.
                wake.on_node_change = true;
            } else if pod.metadata.deletion_timestamp.is_some() {
                // The containers are being stopped: the application serves no more.
                self.ctx.forget_metrics(&self.uid);
                if ours.is_some() {
                    self.finish_deletion(&pod).await;
                }
                return;
            } else {
                if self.bound.is_none() {
                    if !self.ctx.scheduling || !needs_scheduling(&pod) {
                        return;
                    }
                    self.schedule(&pod, &mut wake).await;
                }
                match self.bound.clone() {
                    Some(node) if self.ctx.is_our_node(&node) => {
                        if self.node_is_off(&node) {
                            wake.on_node_change = true;
                        } else {
                            self.simulate(&pod, &node, &mut wake).await;
                        }
                    }
                    Some(_) => {
                        // Bound to a node we do not play (any more).
                        self.ctx.forget_metrics(&self.uid);
                        return;
                    }
                    None => {}
                }
            }
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep_until(wake.at), if wake.at.is_some() => {}
                _ = self.claim_changes.changed(), if wake.on_claim_change => {}
                _ = self.node_changes.changed(), if wake.on_node_change => {}
            }
        }
    }

    /// Whether the pod's volumes are attached to `node` (recording them as in use), or
    /// what it waits for.
    fn volumes_ready(&mut self, pod: &Pod, node: &str) -> bool {
        let ns = self.ns.clone();
        let attachments = self.ctx.attachments.state();
        let gate = mount_gate(
            pod,
            |claim| self.ctx.claims.get(&ObjectRef::new(claim).within(&ns)),
            |pv| self.ctx.volumes.get(&ObjectRef::new(pv)),
            |pv| is_attached(&attachments, pv, node),
        );
        match gate {
            Ok(names) => {
                if self.waiting.take().is_some() {
                    info!(pod = %full_name(pod), %node, "volumes attached; starting the pod");
                }
                self.ctx.nodes.set_in_use(node, &self.uid, names);
                true
            }
            Err(why) => {
                if self.waiting.as_deref() != Some(why.as_str()) {
                    debug!(pod = %full_name(pod), %node, reason = %why, "pod waits for its volumes");
                    self.waiting = Some(why);
                }
                false
            }
        }
    }

    /// Binds the pod to one of our nodes if it fits and its claims are bound.
    async fn schedule(&mut self, pod: &Pod, wake: &mut Wake) {
        self.claim_changes.borrow_and_update();
        self.node_changes.borrow_and_update();
        let ns = pod.namespace().unwrap_or_default();
        let nodes = self.ctx.nodes.sim_nodes();
        let candidates = feasible_nodes(pod, &nodes);
        let blocker = match &candidates {
            Err(msg) => Some(msg.clone()),
            Ok(_) => volume_blocker(pod, nodes.len(), |claim| {
                self.ctx
                    .claims
                    .get(&ObjectRef::new(claim).within(&ns))
                    .map(|c| (*c).clone())
            }),
        };
        if let Some(msg) = blocker {
            wake.on_claim_change = true;
            wake.on_node_change = true;
            let since = *self
                .sched
                .unschedulable_since
                .get_or_insert_with(Instant::now);
            let due = since + REPORT_UNSCHEDULABLE_AFTER;
            if Instant::now() < due {
                wake.at = Some(due);
            } else if self.sched.reported.as_deref() != Some(msg.as_str()) {
                self.report_unschedulable(&msg).await;
                self.sched.reported = Some(msg);
            }
            return;
        }
        let Ok(candidates) = candidates else {
            return;
        };
        let loads = self.ctx.node_loads();
        let Some(picked) = pick_node(&candidates, |n| loads.get(n).copied().unwrap_or(0)) else {
            return;
        };
        let node = picked.name.clone();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(ns.clone()),
                uid: Some(self.uid.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let res: kube::Result<serde_json::Value> = self
            .api
            .create_subresource("binding", &self.name, &PostParams::default(), &binding)
            .await;
        match res {
            Ok(_) => {
                info!(pod = %full_name(pod), uid = %self.uid, %node, "bound pod");
                self.ctx
                    .recent_binds
                    .lock()
                    .expect("binds lock")
                    .insert(self.uid.clone(), node.clone());
                self.bound = Some(node.clone());
                self.sched = SchedState::default();
                let msg = format!("Successfully assigned {ns}/{} to {node}", self.name);
                self.events
                    .record(EventSpec::normal(SCHEDULER, "Scheduled", msg))
                    .await;
            }
            Err(e) if is_gone_or_conflict(&e) => {
                debug!(pod = %full_name(pod), error = %e, "binding refused; waiting for the watch");
            }
            Err(e) => {
                self.sched.failures += 1;
                warn!(pod = %full_name(pod), error = %e, "binding failed; retrying");
                wake.after(backoff(self.sched.failures));
            }
        }
    }

    async fn report_unschedulable(&mut self, msg: &str) {
        info!(pod = %format!("{}/{}", self.ns, self.name), reason = %msg, "pod is unschedulable");
        let cond = PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(msg.into()),
            last_transition_time: Some(Time(Timestamp::now())),
            ..Default::default()
        };
        let patch = json!({
            "metadata": { "uid": self.uid },
            "status": { "conditions": [cond] },
        });
        if let Err(e) = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            debug!(pod = %self.name, error = %e, "writing unschedulable condition failed");
        }
        self.events
            .record(EventSpec::warning(SCHEDULER, "FailedScheduling", msg))
            .await;
    }

    /// Writes the status of the pod's current stage and records the events of the change.
    async fn simulate(&mut self, pod: &Pod, node: &str, wake: &mut Wake) {
        let timing = self.ctx.timing;
        let containers: Vec<Container> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let init_containers: Vec<Container> = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.clone())
            .unwrap_or_default();
        let pb = pod_behavior(pod.metadata.annotations.as_ref(), &containers);
        let plan = Plan {
            behavior: pb.behavior,
            ready_delay: pb.ready_delay.unwrap_or(timing.ready_delay),
            crash_interval: timing.crash_interval,
        };
        let ctx = self.ctx.clone();
        let first_look = self.sim.is_none();
        if first_look {
            self.claim_changes.borrow_and_update();
            if !self.volumes_ready(pod, node) {
                // Pending until the attach/detach controller and the attacher attached
                // them.
                wake.on_claim_change = true;
                return;
            }
        }
        let rebooted = self.rebooted.take();
        let sim = self.sim.get_or_insert_with(|| {
            if let Some(ip) = rebooted {
                // Back from a power-off: the containers start afresh.
                info!(pod = %full_name(pod), %node, "node is back: starting the pod again");
                return SimState {
                    accepted_at: Timestamp::now(),
                    pod_ip: ip,
                    last_stage: None,
                    last_written: None,
                    warned: true,
                    failures: 0,
                };
            }
            let status = pod.status.as_ref();
            let started = status.and_then(|s| s.start_time.clone());
            let ip = status
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| pod_ip(ctx.next_ip.fetch_add(1, Ordering::Relaxed)));
            let resumed = started.is_some()
                && status
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.container_id
                                .as_deref()
                                .is_some_and(|id| id.starts_with("sim://"))
                        })
                    });
            let accepted_at = started.map_or_else(Timestamp::now, |t| t.0);
            let last_stage = resumed.then(|| plan.stage_at(elapsed_since(accepted_at)));
            SimState {
                accepted_at,
                pod_ip: ip,
                last_stage,
                last_written: None,
                warned: false,
                failures: 0,
            }
        });
        if let (true, Some(resize)) = (first_look, &ctx.resize) {
            // The kubelet mounts the pod's volumes now (or did at its start, when we resume).
            resize.pod_started(pod, node, sim.accepted_at);
        }
        if !sim.warned {
            sim.warned = true;
            for w in &pb.warnings {
                warn!(pod = %full_name(pod), "ignoring annotation: {w}");
            }
            debug!(pod = %full_name(pod), behavior = %plan.behavior.name(),
                source = %pb.source, metrics = %pb.metrics.name(), %node, "simulating pod");
        }
        let elapsed = elapsed_since(sim.accepted_at);
        let stage = plan.stage_at(elapsed);
        if let Some(metrics) = &ctx.metrics {
            let life = Life {
                plan,
                behavior: pb.metrics,
                accepted_at: sim.accepted_at,
                stage,
            };
            metrics.observe(&self.uid, pod, node, life);
        }
        let status = build_status(&StatusInput {
            pod,
            plan,
            stage,
            elapsed,
            accepted_at: sim.accepted_at,
            host_ip: NODE_IP,
            pod_ip: &sim.pod_ip,
        });
        let value = match serde_json::to_value(&status) {
            Ok(v) => v,
            Err(e) => {
                warn!(pod = %full_name(pod), error = %e, "serializing status failed");
                return;
            }
        };
        if sim.last_written.as_ref() != Some(&value) {
            let patch = json!({ "metadata": { "uid": self.uid }, "status": value });
            match self
                .api
                .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    debug!(pod = %full_name(pod), ?stage, "wrote status");
                    sim.last_written = Some(value);
                    sim.failures = 0;
                }
                Err(e) => {
                    // NotFound/Conflict/Invalid: the pod is gone or was replaced (uid
                    // guard); the watch tells us what happened. Otherwise retry.
                    if matches!(api_code(&e), Some(404 | 409 | 422)) {
                        debug!(pod = %full_name(pod), error = %e, "status write refused");
                    } else {
                        sim.failures += 1;
                        warn!(pod = %full_name(pod), error = %e, "status write failed; retrying");
                        wake.after(backoff(sim.failures));
                    }
                    return;
                }
            }
        }
        let happenings = plan.happenings(sim.last_stage, stage);
        sim.last_stage = Some(stage);
        if let Some(next) = plan.next_change_after(elapsed) {
            wake.after(next.saturating_sub(elapsed_since(sim.accepted_at)));
        }
        for h in happenings {
            self.record(h, &init_containers, &containers, node).await;
        }
    }

    async fn record(
        &mut self,
        h: Happening,
        init: &[Container],
        containers: &[Container],
        node: &str,
    ) {
        let image = |c: &Container| c.image.clone().unwrap_or_default();
        let path = |kind: &str, c: &Container| format!("spec.{kind}{{{}}}", c.name);
        let ev = |spec: EventSpec, fp: String| spec.host(node).field_path(fp);
        match h {
            Happening::ContainersStarted => {
                let all = init
                    .iter()
                    .map(|c| (c, path("initContainers", c)))
                    .chain(containers.iter().map(|c| (c, path("containers", c))));
                for (c, fp) in all {
                    let img = image(c);
                    let specs = [
                        EventSpec::normal(KUBELET, "Pulling", format!("Pulling image \"{img}\"")),
                        EventSpec::normal(
                            KUBELET,
                            "Pulled",
                            format!("Successfully pulled image \"{img}\" in 12.3ms"),
                        ),
                        EventSpec::normal(
                            KUBELET,
                            "Created",
                            format!("Created container {}", c.name),
                        ),
                        EventSpec::normal(
                            KUBELET,
                            "Started",
                            format!("Started container {}", c.name),
                        ),
                    ];
                    for s in specs {
                        self.events.record(ev(s, fp.clone())).await;
                    }
                }
            }
            Happening::ReadinessFailed => {
                for c in containers {
                    let s = EventSpec::warning(KUBELET, "Unhealthy", readiness_failure_message(c));
                    self.events.record(ev(s, path("containers", c))).await;
                }
            }
            Happening::CrashBackOff => {
                for c in containers {
                    let s = EventSpec::warning(
                        KUBELET,
                        "BackOff",
                        "Back-off restarting failed container",
                    );
                    self.events.record(ev(s, path("containers", c))).await;
                }
            }
            Happening::PullFailed => {
                for c in containers {
                    let img = image(c);
                    let pulling =
                        EventSpec::normal(KUBELET, "Pulling", format!("Pulling image \"{img}\""));
                    self.events.record(ev(pulling, path("containers", c))).await;
                    let failed = EventSpec::warning(
                        KUBELET,
                        "Failed",
                        format!(
                            "Failed to pull image \"{img}\": rpc error: code = NotFound desc = failed to \
                             pull and unpack image \"{img}\": failed to resolve reference \"{img}\": not found"
                        ),
                    );
                    self.events.record(ev(failed, path("containers", c))).await;
                }
            }
            Happening::PullBackOff => {
                for c in containers {
                    let s = EventSpec::normal(
                        KUBELET,
                        "BackOff",
                        format!("Back-off pulling image \"{}\"", image(c)),
                    );
                    self.events.record(ev(s, path("containers", c))).await;
                }
            }
        }
    }

    /// Plays the end of graceful termination: after the delete delay, removes the pod
    /// for good (grace period 0, uid precondition).
    async fn finish_deletion(&mut self, pod: &Pod) {
        let observed = Instant::now();
        let node = self.bound.clone().unwrap_or_default();
        let started = self
            .sim
            .as_ref()
            .and_then(|s| s.last_stage)
            .is_some_and(Stage::containers_started);
        if started {
            let containers: Vec<Container> = pod
                .spec
                .as_ref()
                .map(|s| s.containers.clone())
                .unwrap_or_default();
            for c in &containers {
                let s =
                    EventSpec::normal(KUBELET, "Killing", format!("Stopping container {}", c.name))
                        .host(&node)
                        .field_path(format!("spec.containers{{{}}}", c.name));
                self.events.record(s).await;
            }
        }
        tokio::time::sleep_until(observed + self.ctx.timing.delete_delay).await;
        // The volumes are unmounted before the pod is gone (and reported at once, so the
        // attach/detach controller may detach them).
        self.ctx.nodes.clear_in_use(&self.uid);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let mut failures = 0;
        loop {
            match self.api.delete(&self.name, &dp).await {
                Ok(_) => {
                    info!(pod = %full_name(pod), "deleted terminating pod");
                    return;
                }
                Err(e) if is_gone_or_conflict(&e) => return,
                Err(e) => {
                    failures += 1;
                    warn!(pod = %full_name(pod), error = %e, "deleting pod failed; retrying");
                    if failures >= 20 {
                        return;
                    }
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
}

fn elapsed_since(t: Timestamp) -> Duration {
    Duration::try_from(Timestamp::now().duration_since(t)).unwrap_or(Duration::ZERO)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), RETRY_MIN);
        assert!(backoff(2) > backoff(1));
        assert_eq!(backoff(30), RETRY_MAX);
    }
}
