//! Pure scheduling decisions: which pods we schedule, which of our nodes fit a pod (node
//! selector, required node affinity, schedulability, readiness, taints), which of them
//! to pick, and whether the pod's persistent volume claims allow it to be scheduled yet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaim, Pod, Taint, Toleration,
};

/// The scheduler name pods must carry (or leave unset) for us to schedule them.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// A node this process plays, as the scheduler sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimNode {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// Its Ready condition is True.
    pub ready: bool,
}

/// The taint an unschedulable node is treated as having (pods tolerating it, e.g. a
/// DaemonSet's, may still go there).
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Whether `tol` tolerates `taint` (the API's matching rules: an empty effect matches all
/// effects; an empty key with `Exists` matches every taint; `Equal`, the default, compares
/// values).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = tol.key.as_deref().unwrap_or_default();
    let op = tol
        .operator
        .as_deref()
        .filter(|o| !o.is_empty())
        .unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" => {
            tol.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

fn tolerated(pod: &Pod, taint: &Taint) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| tolerates(t, taint)))
}

/// The first NoSchedule/NoExecute taint of the node the pod does not tolerate.
pub fn untolerated_taint<'a>(pod: &Pod, node: &'a SimNode) -> Option<&'a Taint> {
    node.taints
        .iter()
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .find(|t| !tolerated(pod, t))
}

/// Why a node does not fit a pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misfit {
    Unschedulable,
    NotReady,
    Selector,
    Taint(String, String),
}

/// Why `node` cannot take `pod`, or None when it fits.
pub fn misfit(pod: &Pod, node: &SimNode) -> Option<Misfit> {
    if node.unschedulable {
        let taint = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerated(pod, &taint) {
            return Some(Misfit::Unschedulable);
        }
    }
    if !node.ready {
        return Some(Misfit::NotReady);
    }
    if !node_fits(pod, node) {
        return Some(Misfit::Selector);
    }
    untolerated_taint(pod, node)
        .map(|t| Misfit::Taint(t.key.clone(), t.value.clone().unwrap_or_default()))
}

/// Whether the pod is waiting for the default scheduler.
pub fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let unbound = spec.node_name.as_deref().unwrap_or_default().is_empty();
    let ours = spec
        .scheduler_name
        .as_deref()
        .is_none_or(|s| s.is_empty() || s == DEFAULT_SCHEDULER);
    unbound && ours && pod.metadata.deletion_timestamp.is_none()
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &SimNode) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        // An empty term matches no objects.
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node.name.as_str());
            requirement_matches(r, value)
        })
}

/// Whether `node` satisfies the pod's nodeSelector and required node affinity.
pub fn node_fits(pod: &Pod, node: &SimNode) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if let Some(sel) = spec.node_selector.as_ref() {
        if !sel.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
        None => true,
    }
}

/// The nodes that fit the pod, or the scheduler's message when none does.
pub fn feasible_nodes<'a>(pod: &Pod, nodes: &'a [SimNode]) -> Result<Vec<&'a SimNode>, String> {
    let mut fit = Vec::new();
    let mut why: BTreeMap<Misfit, usize> = BTreeMap::new();
    for node in nodes {
        match misfit(pod, node) {
            None => fit.push(node),
            Some(m) => *why.entry(m).or_default() += 1,
        }
    }
    if !fit.is_empty() {
        return Ok(fit);
    }
    let n = nodes.len();
    if why.is_empty() {
        return Err(format!("0/{n} nodes are available."));
    }
    let parts: Vec<String> = why
        .iter()
        .map(|(m, c)| match m {
            Misfit::Unschedulable => format!("{c} node(s) were unschedulable"),
            Misfit::NotReady => format!("{c} node(s) were not ready"),
            Misfit::Selector => format!("{c} node(s) didn't match node selector"),
            Misfit::Taint(k, v) => {
                format!("{c} node(s) had taint {{{k}: {v}}}, that the pod didn't tolerate")
            }
        })
        .collect();
    Err(format!("0/{n} nodes are available: {}.", parts.join(", ")))
}

/// The node to bind to: the one with the fewest pods (`load`), ties by name.
pub fn pick_node<'a>(
    candidates: &[&'a SimNode],
    load: impl Fn(&str) -> usize,
) -> Option<&'a SimNode> {
    candidates.iter().copied().min_by(|a, b| {
        load(&a.name)
            .cmp(&load(&b.name))
            .then_with(|| a.name.cmp(&b.name))
    })
}

/// Why the pod's claims keep it from being scheduled, if they do. `lookup` finds a claim
/// of the pod's namespace by name.
pub fn volume_blocker(
    pod: &Pod,
    node_count: usize,
    lookup: impl Fn(&str) -> Option<PersistentVolumeClaim>,
) -> Option<String> {
    let volumes = pod.spec.as_ref()?.volumes.as_deref().unwrap_or_default();
    for v in volumes {
        let Some(src) = v.persistent_volume_claim.as_ref() else {
            continue;
        };
        let name = &src.claim_name;
        let Some(pvc) = lookup(name) else {
            return Some(format!("persistentvolumeclaim \"{name}\" not found"));
        };
        if pvc.metadata.deletion_timestamp.is_some() {
            return Some(format!("persistentvolumeclaim \"{name}\" is being deleted"));
        }
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if !bound {
            return Some(format!(
                "0/{node_count} nodes are available: {node_count} pod has unbound immediate \
                 PersistentVolumeClaims."
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, PersistentVolumeClaimStatus,
        PersistentVolumeClaimVolumeSource, PodSpec, Volume,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn nodes() -> Vec<SimNode> {
        (0..3)
            .map(|i| SimNode {
                name: format!("sim-node-{i}"),
                labels: [
                    (
                        "kubernetes.io/hostname".to_string(),
                        format!("sim-node-{i}"),
                    ),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                ]
                .into_iter()
                .collect(),
                ready: true,
                ..SimNode::default()
            })
            .collect()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            ..Default::default()
        }
    }

    #[test]
    fn toleration_matching() {
        let t = taint("sts-safe.dev/test", "x", "NoSchedule");
        assert!(tolerates(
            &tol("sts-safe.dev/test", "Equal", "x", "NoSchedule"),
            &t
        ));
        assert!(tolerates(&tol("sts-safe.dev/test", "", "x", ""), &t));
        assert!(tolerates(&tol("sts-safe.dev/test", "Exists", "", ""), &t));
        assert!(!tolerates(&tol("sts-safe.dev/test", "Equal", "y", ""), &t));
        assert!(!tolerates(
            &tol("sts-safe.dev/test", "Exists", "", "NoExecute"),
            &t
        ));
        assert!(!tolerates(&tol("other", "Exists", "", ""), &t));
        assert!(tolerates(&tol("", "Exists", "", ""), &t));
        assert!(!tolerates(&tol("", "Equal", "", ""), &t));
        let bare = taint("node.kubernetes.io/unreachable", "", "NoExecute");
        assert!(tolerates(
            &tol("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
            &bare
        ));
        assert!(tolerates(
            &tol("node.kubernetes.io/unreachable", "Equal", "", ""),
            &bare
        ));
    }

    #[test]
    fn taints_readiness_and_schedulability() {
        let mut ns = nodes();
        ns[0].taints = vec![taint("sts-safe.dev/test", "x", "NoSchedule")];
        ns[1].ready = false;
        ns[2].unschedulable = true;
        let pod = pod_with(PodSpec::default());
        assert_eq!(
            feasible_nodes(&pod, &ns).unwrap_err(),
            "0/3 nodes are available: 1 node(s) were unschedulable, 1 node(s) were not ready, \
             1 node(s) had taint {sts-safe.dev/test: x}, that the pod didn't tolerate."
        );
        let tolerant = pod_with(PodSpec {
            tolerations: Some(vec![tol("sts-safe.dev/test", "Exists", "", "")]),
            ..Default::default()
        });
        let fit = feasible_nodes(&tolerant, &ns).unwrap();
        assert_eq!(fit.len(), 1);
        assert_eq!(fit[0].name, "sim-node-0");
        // PreferNoSchedule is not a filter.
        ns[0].taints = vec![taint("soft", "", "PreferNoSchedule")];
        assert_eq!(feasible_nodes(&pod, &ns).unwrap()[0].name, "sim-node-0");
        // Tolerating the unschedulable taint (DaemonSets do) lets a pod onto a cordoned node.
        let ds = pod_with(PodSpec {
            tolerations: Some(vec![tol(UNSCHEDULABLE_TAINT, "Exists", "", "NoSchedule")]),
            ..Default::default()
        });
        assert_eq!(feasible_nodes(&ds, &ns).unwrap().len(), 2);
    }

    #[test]
    fn fewest_pods_wins_ties_by_name() {
        let ns = nodes();
        let all: Vec<&SimNode> = ns.iter().collect();
        let load = |n: &str| match n {
            "sim-node-0" => 2,
            "sim-node-1" => 1,
            _ => 1,
        };
        assert_eq!(pick_node(&all, load).unwrap().name, "sim-node-1");
        assert_eq!(pick_node(&all, |_| 0).unwrap().name, "sim-node-0");
        assert!(pick_node(&[], |_| 0).is_none());
    }

    fn pod_with(spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    #[test]
    fn scheduling_candidates() {
        assert!(needs_scheduling(&pod_with(PodSpec::default())));
        let other = pod_with(PodSpec {
            scheduler_name: Some("my-scheduler".into()),
            ..Default::default()
        });
        assert!(!needs_scheduling(&other));
        let bound = pod_with(PodSpec {
            node_name: Some("sim-node-0".into()),
            ..Default::default()
        });
        assert!(!needs_scheduling(&bound));
        let mut deleting = pod_with(PodSpec::default());
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        assert!(!needs_scheduling(&deleting));
    }

    #[test]
    fn node_selector_and_affinity() {
        let ns = nodes();
        let any = pod_with(PodSpec::default());
        assert_eq!(feasible_nodes(&any, &ns).unwrap().len(), 3);

        let sel = pod_with(PodSpec {
            node_selector: Some(
                [(
                    "kubernetes.io/hostname".to_string(),
                    "sim-node-1".to_string(),
                )]
                .into_iter()
                .collect(),
            ),
            ..Default::default()
        });
        let fit = feasible_nodes(&sel, &ns).unwrap();
        assert_eq!(fit.len(), 1);
        assert_eq!(fit[0].name, "sim-node-1");

        // DaemonSet-style affinity on metadata.name.
        let ds = pod_with(PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_fields: Some(vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: "In".into(),
                                values: Some(vec!["sim-node-2".into()]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let fit = feasible_nodes(&ds, &ns).unwrap();
        assert_eq!(fit.len(), 1);
        assert_eq!(fit[0].name, "sim-node-2");

        let none = pod_with(PodSpec {
            node_selector: Some(
                [("disk".to_string(), "ssd".to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        });
        assert_eq!(
            feasible_nodes(&none, &ns).unwrap_err(),
            "0/3 nodes are available: 3 node(s) didn't match node selector."
        );
    }

    #[test]
    fn claims_gate_scheduling() {
        let pod = pod_with(PodSpec {
            volumes: Some(vec![Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: "data-p".into(),
                    read_only: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let pvc = |phase: &str| PersistentVolumeClaim {
            status: Some(PersistentVolumeClaimStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            volume_blocker(&pod, 1, |_| None).unwrap(),
            "persistentvolumeclaim \"data-p\" not found"
        );
        assert!(volume_blocker(&pod, 1, |_| Some(pvc("Pending")))
            .unwrap()
            .contains("unbound immediate PersistentVolumeClaims"));
        assert_eq!(volume_blocker(&pod, 1, |_| Some(pvc("Bound"))), None);
        assert_eq!(
            volume_blocker(&pod_with(PodSpec::default()), 1, |_| None),
            None
        );
    }
}
