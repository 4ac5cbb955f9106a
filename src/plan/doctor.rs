//! The checks of `kubectl sts-safe doctor`: the seed's troubleshooting table, automated,
//! as pure functions over the objects of one namespace.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Event, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::{lease, orphan};
use crate::model;

#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warn,
    Info,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Finding {
    /// The namespace of the object (set by the report).
    pub namespace: String,
    pub severity: Severity,
    /// Stable identifier of the check, e.g. `service-missing`.
    pub check: &'static str,
    /// `kind/name` of the object the finding is about.
    pub object: String,
    pub problem: String,
    pub fix: String,
}

/// Everything the checks look at, for one namespace.
#[derive(Default)]
pub struct DoctorInputs {
    pub statefulsets: Vec<StatefulSet>,
    pub pods: Vec<Pod>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub services: Vec<Service>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub events: Vec<Event>,
    pub deployments: Vec<Deployment>,
    /// None when the caller may not list StorageClasses (cluster-scoped).
    pub storage_classes: Option<Vec<StorageClass>>,
    /// The namespace's Leases (sts-safe's locks among them); empty when not readable.
    pub leases: Vec<Lease>,
    /// The nodes the pods are bound to, when readable (stranded pods).
    pub nodes: std::collections::BTreeMap<String, k8s_openapi::api::core::v1::Node>,
}

/// Pods younger than this with no identified cause are "starting", not "stuck".
const STUCK_AFTER_SECS: i64 = 60;

pub fn examine(inp: &DoctorInputs, only: Option<&str>, now: Timestamp) -> Vec<Finding> {
    let mut out = vec![];
    for sts in inp
        .statefulsets
        .iter()
        .filter(|s| only.is_none_or(|n| s.name_any() == n))
    {
        let pods: Vec<&Pod> = inp
            .pods
            .iter()
            .filter(|p| {
                model::ordinal_of(&sts.name_any(), &p.name_any()).is_some()
                    && selects(&model::selector_labels(sts), p.labels())
            })
            .collect();
        check_service(sts, inp, &mut out);
        check_pending(sts, &pods, inp, now, &mut out);
        check_claims(sts, &pods, &mut out);
        check_orphans(sts, inp, &mut out);
        check_security(sts, &mut out);
        check_strategy(sts, &pods, now, &mut out);
        check_pdb_and_resources(sts, inp, &mut out);
        check_lock(sts, inp, now, &mut out);
        check_stranded(sts, &pods, inp, now, &mut out);
    }
    if only.is_none() {
        check_shared_rwo(inp, &mut out);
    }
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.object.cmp(&b.object)));
    out
}

/// Pods stranded on a lost node: the controller will not replace them while the pod
/// object exists, and only `recover` (after fencing) or the admin can make it go.
fn check_stranded(
    sts: &StatefulSet,
    pods: &[&Pod],
    inp: &DoctorInputs,
    now: Timestamp,
    out: &mut Vec<Finding>,
) {
    let ns = sts.namespace().unwrap_or_default();
    for (pod, node, state) in
        crate::plan::recover::stranded_pods(pods.iter().copied(), &inp.nodes, now)
    {
        out.push(Finding {
            namespace: ns.clone(),
            severity: Severity::Error,
            check: "pod-stranded",
            object: format!("pod/{pod}"),
            problem: format!(
                "{pod} is stranded on node {node}, which is not Ready: {state}; the StatefulSet controller will not start a replacement while the pod object exists"
            ),
            fix: format!(
                "confirm node {node} is off, then run `kubectl sts-safe recover {} -n {ns}` (never a bare `kubectl delete pod --force`: a live node would run the pod twice)",
                sts.name_any()
            ),
        });
    }
}

/// The StatefulSet's lock: a live one is an operation in progress; an expired one is a
/// run that died (its canary may be left half-way).
fn check_lock(sts: &StatefulSet, inp: &DoctorInputs, now: Timestamp, out: &mut Vec<Finding>) {
    let name = sts.name_any();
    let lease_name = lease::lease_name(&name);
    let Some(info) = inp
        .leases
        .iter()
        .find(|l| l.name_any() == lease_name)
        .and_then(|l| lease::read(l, now))
    else {
        return;
    };
    let object = format!("lease/{lease_name}");
    if info.expired {
        out.push(finding(
            Severity::Warn,
            "lock-stale",
            object,
            format!(
                "the lock of statefulset \"{name}\" is held by {}, but that run is gone (not \
                 renewed for longer than {}s)",
                lease::describe(&info),
                info.duration_seconds
            ),
            format!(
                "the next sts-safe writer takes it over with a notice; a canary it left \
                 continues with `kubectl sts-safe canary {name} --resume` (or undo it with \
                 `kubectl sts-safe rollback {name}`)"
            ),
        ));
    } else {
        out.push(finding(
            Severity::Info,
            "operation-in-progress",
            object,
            format!(
                "statefulset \"{name}\" is being changed by {}",
                lease::describe(&info)
            ),
            "wait for it to finish: other sts-safe writes are refused until then".into(),
        ));
    }
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn finding(
    severity: Severity,
    check: &'static str,
    object: String,
    problem: String,
    fix: String,
) -> Finding {
    Finding {
        namespace: String::new(),
        severity,
        check,
        object,
        problem,
        fix,
    }
}

fn sts_ref(sts: &StatefulSet) -> String {
    format!("statefulset/{}", sts.name_any())
}

fn check_service(sts: &StatefulSet, inp: &DoctorInputs, out: &mut Vec<Finding>) {
    let svc_name = sts.spec.service_name.clone().unwrap_or_default();
    if svc_name.is_empty() {
        out.push(finding(
            Severity::Error,
            "service-missing",
            sts_ref(sts),
            "spec.serviceName is empty: pods get no per-pod DNS names".into(),
            "create a headless Service (clusterIP: None) selecting the pods and set spec.serviceName to its name".into(),
        ));
        return;
    }
    let Some(svc) = inp.services.iter().find(|s| s.name_any() == svc_name) else {
        out.push(finding(
            Severity::Error,
            "service-missing",
            sts_ref(sts),
            format!("serviceName \"{svc_name}\" names no Service in this namespace: pods start but per-pod DNS never resolves"),
            format!("create a headless Service named \"{svc_name}\" (clusterIP: None) selecting the pod labels, or fix spec.serviceName"),
        ));
        return;
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.cluster_ip.as_deref() != Some("None") {
        out.push(finding(
            Severity::Error,
            "service-not-headless",
            format!("service/{svc_name}"),
            format!(
                "Service \"{svc_name}\" has clusterIP {}: it is not headless, so no per-pod DNS records exist",
                spec.cluster_ip.as_deref().unwrap_or("(unset)")
            ),
            "recreate the Service with clusterIP: None (the field is immutable)".into(),
        ));
    }
    let template_labels = model::template_labels(sts);
    let selector = spec.selector.unwrap_or_default();
    if !selects(&selector, &template_labels) {
        out.push(finding(
            Severity::Error,
            "service-selector",
            format!("service/{svc_name}"),
            format!(
                "Service \"{svc_name}\" selector {} does not match the pod template labels {}",
                labels_str(&selector),
                labels_str(&template_labels)
            ),
            "make the Service's selector a subset of the StatefulSet's pod template labels".into(),
        ));
    }
}

fn labels_str(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "{}".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The latest events about one object, newest last, as "Reason: message".
pub fn events_for(events: &[Event], kind: &str, name: &str, limit: usize) -> Vec<String> {
    let mut evs: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some(kind)
                && e.involved_object.name.as_deref() == Some(name)
        })
        .collect();
    // Timestamps have one-second precision; the resourceVersion orders writes within it.
    evs.sort_by_key(|e| {
        let at = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0));
        let rv: u64 = e
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (at, rv)
    });
    evs.iter()
        .rev()
        .take(limit)
        .rev()
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or("?"),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect()
}

/// Why a PVC is Pending, as precisely as the objects tell.
pub fn pvc_pending_cause(pvc: &PersistentVolumeClaim, inp: &DoctorInputs) -> String {
    let name = pvc.name_any();
    let evs = events_for(&inp.events, "PersistentVolumeClaim", &name, 2);
    let class = model::pvc_storage_class(pvc);
    let class_note = match (&class, &inp.storage_classes) {
        (Some(c), _) if c.is_empty() => {
            "storageClassName is \"\" (static binding, no dynamic provisioning) and no PersistentVolume matches it".to_string()
        }
        (Some(c), Some(classes)) => match classes.iter().find(|s| &s.name_any() == c) {
            None => format!("StorageClass \"{c}\" does not exist"),
            Some(sc) => format!("StorageClass \"{c}\" (provisioner {}) has not provisioned a volume", sc.provisioner),
        },
        (Some(c), None) => format!("StorageClass \"{c}\" has not provisioned a volume"),
        (None, Some(classes)) if !classes.iter().any(is_default_class) => {
            "no storageClassName and no default StorageClass".into()
        }
        (None, _) => "no volume was provisioned or bound".into(),
    };
    if evs.is_empty() {
        format!("PVC \"{name}\" is Pending: {class_note}")
    } else {
        format!(
            "PVC \"{name}\" is Pending: {class_note}; events: {}",
            evs.join(" | ")
        )
    }
}

pub fn is_default_class(sc: &StorageClass) -> bool {
    let a = sc.annotations();
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| a.get(*k).map(String::as_str) == Some("true"))
}

fn check_pending(
    sts: &StatefulSet,
    pods: &[&Pod],
    inp: &DoctorInputs,
    now: Timestamp,
    out: &mut Vec<Finding>,
) {
    let name = sts.name_any();
    let by_ord: HashMap<i32, &Pod> = pods
        .iter()
        .filter_map(|p| Some((model::ordinal_of(&name, &p.name_any())?, *p)))
        .collect();
    let ordered = model::pod_management_policy(sts) == "OrderedReady";
    let mut reported_missing = false;
    for o in model::live_range(sts) {
        match by_ord.get(&o) {
            None if ordered && !reported_missing => {
                let blocker = model::live_range(sts)
                    .take_while(|x| *x < o)
                    .find(|x| !by_ord.get(x).is_some_and(|p| model::is_available(p)));
                let Some(b) = blocker else { continue };
                reported_missing = true;
                let blocker_pod = by_ord.get(&b).copied();
                let why = match blocker_pod {
                    None => "it does not exist".to_string(),
                    Some(bp) => {
                        let age = model::age_secs(bp.metadata.creation_timestamp.as_ref(), now)
                            .unwrap_or(0);
                        let cause = pending_cause(bp, inp)
                            .or_else(|| events_for(&inp.events, "Pod", &bp.name_any(), 1).pop());
                        if cause.is_none() && age < STUCK_AFTER_SECS {
                            continue; // an ordinary ordered start-up
                        }
                        match cause {
                            Some(c) => format!("it is {} ({c})", model::phase(bp)),
                            None => format!("it is {} and not Ready for {age}s", model::phase(bp)),
                        }
                    }
                };
                out.push(finding(
                    Severity::Error,
                    "pod-pending",
                    format!("pod/{}", model::pod_name(&name, o)),
                    format!(
                        "{} is not created because {} is not Running/Ready: {why} (podManagementPolicy OrderedReady)",
                        model::pod_name(&name, o),
                        model::pod_name(&name, b)
                    ),
                    format!("fix {} first: the controller creates pods one at a time in ordinal order", model::pod_name(&name, b)),
                ));
            }
            Some(p) if model::phase(p) == "Pending" && !model::is_terminating(p) => {
                if on_pending_update_revision(sts, p) && model::bad_container_state(p).is_some() {
                    continue; // reported once, as rollout-stuck, with the right fix
                }
                let cause = pending_cause(p, inp);
                let age = model::age_secs(p.metadata.creation_timestamp.as_ref(), now).unwrap_or(0);
                if cause.is_none() && age < STUCK_AFTER_SECS {
                    continue;
                }
                let fix = match &cause {
                    Some(c) if c.starts_with("PVC") => "fix the claim: the StorageClass must exist, have a working provisioner and serve the pod's zone (`kubectl describe pvc`)",
                    Some(c) if c.starts_with("unschedulable") => "relax the scheduling constraint (resources, affinity, taints) or add capacity",
                    Some(_) => "fix the container: image name, registry credentials, configuration (`kubectl describe pod`)",
                    None => "see `kubectl describe pod` for what it is waiting for",
                };
                let events = events_for(&inp.events, "Pod", &p.name_any(), 2);
                out.push(finding(
                    Severity::Error,
                    "pod-pending",
                    format!("pod/{}", p.name_any()),
                    format!(
                        "{} is stuck Pending: {}",
                        p.name_any(),
                        cause.unwrap_or_else(|| {
                            if events.is_empty() {
                                format!("no cause reported for {age}s")
                            } else {
                                format!("events: {}", events.join(" | "))
                            }
                        })
                    ),
                    fix.into(),
                ));
            }
            _ => {}
        }
    }
}

fn on_pending_update_revision(sts: &StatefulSet, pod: &Pod) -> bool {
    model::rollout_pending(sts) && model::revision(pod) == model::update_revision(sts)
}

fn pending_cause(pod: &Pod, inp: &DoctorInputs) -> Option<String> {
    for claim in model::mounted_claims(pod) {
        match inp.pvcs.iter().find(|c| c.name_any() == claim) {
            None => return Some(format!("PVC \"{claim}\" does not exist")),
            Some(pvc) if model::pvc_phase(pvc) == "Pending" => {
                return Some(pvc_pending_cause(pvc, inp))
            }
            _ => {}
        }
    }
    let unschedulable = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        });
    if let Some(c) = unschedulable {
        let evs = events_for(&inp.events, "Pod", &pod.name_any(), 1);
        return Some(format!(
            "unschedulable: {}",
            c.message
                .clone()
                .or_else(|| evs.first().cloned())
                .unwrap_or_else(|| c.reason.clone().unwrap_or_default())
        ));
    }
    model::bad_container_state(pod)
}

fn check_claims(sts: &StatefulSet, pods: &[&Pod], out: &mut Vec<Finding>) {
    let name = sts.name_any();
    let templates = model::claim_templates(sts);
    for p in pods {
        let Some(o) = model::ordinal_of(&name, &p.name_any()) else {
            continue;
        };
        let Some(spec) = p.spec.as_ref() else {
            continue;
        };
        for v in spec.volumes.iter().flatten() {
            let Some(claim) = v.persistent_volume_claim.as_ref() else {
                continue;
            };
            if !templates.contains(&v.name) {
                continue;
            }
            let expected = model::pvc_name(&v.name, &name, o);
            if claim.claim_name != expected {
                out.push(finding(
                    Severity::Error,
                    "pvc-mismatch",
                    format!("pod/{}", p.name_any()),
                    format!("{} mounts PVC \"{}\" for volume \"{}\", expected \"{expected}\": it may see another ordinal's data", p.name_any(), claim.claim_name, v.name),
                    format!("delete pod {} so the controller recreates it with its own claim", p.name_any()),
                ));
            }
        }
    }
}

fn check_orphans(sts: &StatefulSet, inp: &DoctorInputs, out: &mut Vec<Finding>) {
    let orphans = orphan::orphans_of(sts, &inp.pvcs, &inp.pods);
    if orphans.is_empty() {
        return;
    }
    let total = orphan::total_capacity(&orphans);
    out.push(finding(
        Severity::Warn,
        "orphan-pvcs",
        sts_ref(sts),
        format!(
            "{} PVC(s) left by scale-down ({total}): {}",
            orphans.len(),
            orphans.iter().map(|c| c.pvc.name_any()).collect::<Vec<_>>().join(", ")
        ),
        format!(
            "a later scale-up reattaches them with their old data; if it is not needed: kubectl sts-safe prune-pvcs {} -n {}",
            sts.name_any(),
            sts.namespace().unwrap_or_default()
        ),
    ));
}

fn containers(sts: &StatefulSet) -> Vec<&Container> {
    let Some(spec) = sts.spec.template.spec.as_ref() else {
        return vec![];
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect()
}

fn check_security(sts: &StatefulSet, out: &mut Vec<Finding>) {
    let pod_sc = sts
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    for c in containers(sts) {
        let sc = c.security_context.clone().unwrap_or_default();
        let obj = format!("{}/container/{}", sts_ref(sts), c.name);
        if sc.privileged == Some(true) {
            out.push(finding(
                Severity::Error,
                "security-privileged",
                obj.clone(),
                format!("container \"{}\" is privileged: a breakout owns the node and every volume on it", c.name),
                "remove securityContext.privileged; grant only the capabilities it needs".into(),
            ));
        }
        let user = sc.run_as_user.or(pod_sc.run_as_user);
        if user == Some(0) {
            out.push(finding(
                Severity::Error,
                "security-root-user",
                obj.clone(),
                format!("container \"{}\" runs as user 0 (root)", c.name),
                "set securityContext.runAsUser to a non-zero UID and runAsNonRoot: true".into(),
            ));
        }
        if sc.run_as_non_root.or(pod_sc.run_as_non_root) != Some(true) {
            out.push(finding(
                Severity::Warn,
                "security-non-root",
                obj.clone(),
                format!(
                    "container \"{}\" does not set runAsNonRoot: true: it may run as root",
                    c.name
                ),
                "set securityContext.runAsNonRoot: true (and a non-zero runAsUser)".into(),
            ));
        }
        if sc.read_only_root_filesystem != Some(true) {
            out.push(finding(
                Severity::Warn,
                "security-readonly-rootfs",
                obj,
                format!("container \"{}\" has a writable root filesystem", c.name),
                "set securityContext.readOnlyRootFilesystem: true; write only to mounted volumes"
                    .into(),
            ));
        }
    }
}

fn check_strategy(sts: &StatefulSet, pods: &[&Pod], now: Timestamp, out: &mut Vec<Finding>) {
    let name = sts.name_any();
    if model::strategy_type(sts) == "OnDelete" {
        out.push(finding(
            Severity::Warn,
            "strategy-ondelete",
            sts_ref(sts),
            "updateStrategy is OnDelete: template changes reach a pod only when someone deletes it".into(),
            "switch to updateStrategy.type: RollingUpdate to use partitions and kubectl sts-safe canary".into(),
        ));
        return;
    }
    let partition = model::partition(sts);
    let replicas = model::replicas(sts);
    // The partition counts from spec.ordinals.start: ordinals ≥ start + partition update.
    let first_exposed = model::ordinal_start(sts) + partition;
    if partition > replicas {
        out.push(finding(
            Severity::Warn,
            "partition-too-high",
            sts_ref(sts),
            format!("partition {partition} is above the replica count ({replicas}): no pod will ever be updated"),
            format!("lower the partition (kubectl sts-safe canary {name} --resume steps it down safely)"),
        ));
    }
    let update = model::update_revision(sts);
    let pending = model::rollout_pending(sts);
    let exposed: Vec<&&Pod> = pods
        .iter()
        .filter(|p| model::ordinal_of(&name, &p.name_any()).is_some_and(|o| o >= first_exposed))
        .collect();
    if pending {
        let stuck: Vec<(&Pod, String)> = exposed
            .iter()
            .filter(|p| model::revision(p) == update && !model::is_available(p))
            .filter_map(|p| {
                let bad = model::bad_container_state(p);
                let age = model::age_secs(p.metadata.creation_timestamp.as_ref(), now).unwrap_or(0);
                match bad {
                    Some(b) => Some((**p, b)),
                    None if age >= STUCK_AFTER_SECS * 5 => {
                        Some((**p, format!("not Ready for {age}s")))
                    }
                    None => None,
                }
            })
            .collect();
        for (p, why) in &stuck {
            out.push(finding(
                Severity::Error,
                "rollout-stuck",
                format!("pod/{}", p.name_any()),
                format!("the rollout is stuck on {} ({why}) on the update revision; reverting the template alone will not replace it (kubernetes issue 67250)", p.name_any()),
                format!("kubectl sts-safe rollback {name} (restores the old template and deletes the stuck pod), or fix the template and delete the pod"),
            ));
        }
        let all_exposed_updated = exposed
            .iter()
            .all(|p| model::revision(p) == update && model::is_available(p));
        if stuck.is_empty() && partition > 0 && all_exposed_updated && !exposed.is_empty() {
            out.push(finding(
                Severity::Warn,
                "partition-leftover",
                sts_ref(sts),
                format!(
                    "partition {partition} holds ordinals below {first_exposed} on the old revision while ordinals {first_exposed}+ run the new one: a canary was left half-way"
                ),
                format!("continue with kubectl sts-safe canary {name} --resume, or undo with kubectl sts-safe rollback {name}"),
            ));
        }
    } else {
        // Not pending, yet a pod sits not-Ready on another revision: an interrupted
        // rollback (template restored, stuck pod never deleted).
        for p in pods.iter().filter(|p| {
            model::revision(p).is_some_and(|r| Some(r) != update)
                && !model::is_terminating(p)
                && model::bad_container_state(p).is_some()
        }) {
            out.push(finding(
                Severity::Error,
                "rollout-stuck",
                format!("pod/{}", p.name_any()),
                format!(
                    "{} is stuck ({}) on revision {}, which the StatefulSet no longer runs; the controller will not replace it",
                    p.name_any(),
                    model::bad_container_state(p).unwrap_or_default(),
                    model::revision(p).unwrap_or("?")
                ),
                format!("kubectl sts-safe rollback {name} (deletes it so it is recreated from the current template)"),
            ));
        }
    }
    if !pending && partition > 0 && partition <= replicas {
        out.push(finding(
            Severity::Info,
            "partition-leftover",
            sts_ref(sts),
            format!("partition {partition} is set with no rollout pending: the next template change will only reach ordinals {first_exposed}+"),
            "set the partition to 0 unless a staged rollout is intended".into(),
        ));
    }
}

fn check_pdb_and_resources(sts: &StatefulSet, inp: &DoctorInputs, out: &mut Vec<Finding>) {
    let labels = model::template_labels(sts);
    if model::pdbs_over(sts, &inp.pdbs).is_empty() && model::replicas(sts) > 1 {
        out.push(finding(
            Severity::Warn,
            "no-pdb",
            sts_ref(sts),
            "no PodDisruptionBudget selects these pods: a node drain may take several replicas down at once".into(),
            format!("create a PodDisruptionBudget with maxUnavailable: 1 selecting {}", labels_str(&labels)),
        ));
    }
    for c in containers(sts) {
        let r = c.resources.clone().unwrap_or_default();
        let mut missing = vec![];
        if r.requests.as_ref().is_none_or(|m| m.is_empty()) {
            missing.push("requests");
        }
        if r.limits.as_ref().is_none_or(|m| m.is_empty()) {
            missing.push("limits");
        }
        if !missing.is_empty() {
            out.push(finding(
                Severity::Warn,
                "resources-missing",
                format!("{}/container/{}", sts_ref(sts), c.name),
                format!("container \"{}\" has no resource {}", c.name, missing.join(" or ")),
                "set resources.requests (scheduling) and resources.limits (memory) for a predictable database".into(),
            ));
        }
    }
}

fn check_shared_rwo(inp: &DoctorInputs, out: &mut Vec<Finding>) {
    for d in &inp.deployments {
        let spec = &d.spec;
        if spec.replicas.unwrap_or(1) <= 1 {
            continue;
        }
        for v in spec
            .template
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
        {
            let Some(claim) = &v.persistent_volume_claim else {
                continue;
            };
            let rwo = inp
                .pvcs
                .iter()
                .find(|p| p.name_any() == claim.claim_name)
                .and_then(|p| p.spec.as_ref()?.access_modes.clone())
                .is_some_and(|m| {
                    m.iter()
                        .any(|a| a == "ReadWriteOnce" || a == "ReadWriteOncePod")
                        && !m.iter().any(|a| a == "ReadWriteMany")
                });
            if rwo {
                out.push(finding(
                    Severity::Error,
                    "deployment-shared-rwo",
                    format!("deployment/{}", d.name_any()),
                    format!(
                        "Deployment \"{}\" runs {} replicas on one ReadWriteOnce PVC \"{}\": replicas on other nodes stay Pending, and two writers corrupt data",
                        d.name_any(),
                        spec.replicas.unwrap_or(1),
                        claim.claim_name
                    ),
                    "run it as a StatefulSet with volumeClaimTemplates (one PVC per pod)".into(),
                ));
            }
        }
    }
}

/// The `-o json|yaml` document of `doctor` (kind DoctorReport).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// None with -A (`all::examine_all`).
    pub namespace: Option<String>,
    /// The StatefulSets checked: names; `namespace/name` with -A.
    pub statefulsets: Vec<String>,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    pub fn new(namespace: &str, statefulsets: Vec<String>, mut findings: Vec<Finding>) -> Self {
        for f in &mut findings {
            f.namespace = namespace.to_string();
        }
        DoctorReport {
            api_version: super::API_VERSION,
            kind: "DoctorReport",
            namespace: Some(namespace.to_string()),
            statefulsets,
            findings,
        }
    }

    /// Exit 3 when any error-level finding exists.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

#[path = "doctor_all.rs"]
pub mod all;

#[cfg(test)]
#[path = "doctor_tests.rs"]
pub(crate) mod tests;
