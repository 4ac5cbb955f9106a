//! Pure scheduling decisions: which pods we schedule, which of our nodes fit a pod, and
//! whether the pod's persistent volume claims allow it to be scheduled yet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaim, Pod,
};

/// The scheduler name pods must carry (or leave unset) for us to schedule them.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// A node registered by this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimNode {
    pub name: String,
    pub labels: BTreeMap<String, String>,
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
    let fit: Vec<&SimNode> = nodes.iter().filter(|n| node_fits(pod, n)).collect();
    if fit.is_empty() {
        let n = nodes.len();
        Err(format!(
            "0/{n} nodes are available: {n} node(s) didn't match node selector."
        ))
    } else {
        Ok(fit)
    }
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
            })
            .collect()
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
