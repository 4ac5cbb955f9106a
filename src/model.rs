//! Pure data about StatefulSets, their pods and PVCs: ordinals, names, readiness,
//! revisions, sizes. No I/O here.

use std::collections::BTreeMap;
use std::ops::Range;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub mod node;

pub const REVISION_LABEL: &str = "controller-revision-hash";

pub fn name(obj: &impl kube::ResourceExt) -> String {
    obj.name_any()
}

// ---- StatefulSet ---------------------------------------------------------------

pub fn replicas(sts: &StatefulSet) -> i32 {
    sts.spec.replicas.unwrap_or(1)
}

pub fn ordinal_start(sts: &StatefulSet) -> i32 {
    sts.spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// Ordinals the controller keeps alive: `[start, start + replicas)`.
pub fn live_range(sts: &StatefulSet) -> Range<i32> {
    let start = ordinal_start(sts);
    start..start + replicas(sts).max(0)
}

pub fn strategy_type(sts: &StatefulSet) -> &str {
    sts.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

pub fn partition(sts: &StatefulSet) -> i32 {
    sts.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

pub fn max_unavailable(sts: &StatefulSet) -> Option<String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let v = sts
        .spec
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?
        .max_unavailable
        .as_ref()?;
    Some(match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    })
}

/// `rollingUpdate.maxUnavailable` in pods for `replicas`, as the controller scales it
/// (a percentage rounds up; never below 1). None when the StatefulSet does not set it.
pub fn max_unavailable_pods(sts: &StatefulSet, replicas: i32) -> Option<i32> {
    let v = max_unavailable(sts)?;
    let n = match v.strip_suffix('%') {
        Some(pct) => {
            let pct: i64 = pct.trim().parse().ok()?;
            ((pct * i64::from(replicas.max(0)) + 99) / 100) as i32
        }
        None => v.trim().parse().ok()?,
    };
    Some(n.max(1))
}

pub fn pod_management_policy(sts: &StatefulSet) -> &str {
    sts.spec
        .pod_management_policy
        .as_deref()
        .unwrap_or("OrderedReady")
}

pub fn min_ready_seconds(sts: &StatefulSet) -> i32 {
    sts.spec.min_ready_seconds.unwrap_or(0)
}

pub fn claim_templates(sts: &StatefulSet) -> Vec<String> {
    sts.spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|t| t.metadata.name.clone().unwrap_or_default())
        .filter(|n| !n.is_empty())
        .collect()
}

pub fn selector_labels(sts: &StatefulSet) -> BTreeMap<String, String> {
    sts.spec.selector.match_labels.clone().unwrap_or_default()
}

/// Labels of the pod template (what Services and PDBs must select).
pub fn template_labels(sts: &StatefulSet) -> BTreeMap<String, String> {
    sts.spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// The PodDisruptionBudgets whose selector covers this StatefulSet's pods.
pub fn pdbs_over<'a>(
    sts: &StatefulSet,
    pdbs: &'a [k8s_openapi::api::policy::v1::PodDisruptionBudget],
) -> Vec<&'a k8s_openapi::api::policy::v1::PodDisruptionBudget> {
    let labels = template_labels(sts);
    pdbs.iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|s| selector_matches(s, &labels))
        })
        .collect()
}

pub fn current_revision(sts: &StatefulSet) -> Option<&str> {
    sts.status.as_ref()?.current_revision.as_deref()
}

pub fn update_revision(sts: &StatefulSet) -> Option<&str> {
    sts.status.as_ref()?.update_revision.as_deref()
}

/// A rollout is pending when the controller reports two different revisions.
/// Pods on another revision than the update revision. Under OnDelete this, not
/// `currentRevision`, says a rollout is pending: older servers never move
/// currentRevision on there (kubernetes 73492).
pub fn pods_behind_update<'a>(sts: &StatefulSet, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let update = update_revision(sts);
    pods.iter().filter(|p| revision(p) != update).collect()
}

pub fn rollout_pending(sts: &StatefulSet) -> bool {
    match (current_revision(sts), update_revision(sts)) {
        (Some(c), Some(u)) => c != u,
        _ => false,
    }
}

/// The controller has seen the latest spec.
pub fn observed(sts: &StatefulSet) -> bool {
    let gen = sts.metadata.generation.unwrap_or(0);
    sts.status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0)
        >= gen
}

pub fn retention_policy(sts: &StatefulSet) -> Option<(String, String)> {
    let p = sts.spec.persistent_volume_claim_retention_policy.as_ref()?;
    Some((
        p.when_scaled.clone().unwrap_or_else(|| "Retain".into()),
        p.when_deleted.clone().unwrap_or_else(|| "Retain".into()),
    ))
}

pub fn pvcs_deleted_when_scaled(sts: &StatefulSet) -> bool {
    retention_policy(sts).is_some_and(|(scaled, _)| scaled == "Delete")
}

/// A name as the controller builds it: `<template>-<sts>-<ordinal>`.
pub fn pvc_name(template: &str, sts: &str, ordinal: i32) -> String {
    format!("{template}-{sts}-{ordinal}")
}

pub fn pod_name(sts: &str, ordinal: i32) -> String {
    format!("{sts}-{ordinal}")
}

/// Parses a canonical ordinal: digits only, no sign, no leading zeros (except "0").
pub fn parse_ordinal(s: &str) -> Option<i32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// The ordinal of `name` if it is `<sts>-<ordinal>`.
pub fn ordinal_of(sts: &str, name: &str) -> Option<i32> {
    parse_ordinal(name.strip_prefix(sts)?.strip_prefix('-')?)
}

/// The ordinal of PVC `pvc` if it is `<template>-<sts>-<ordinal>`. Knowing both the
/// template and the StatefulSet name makes this unambiguous even when either
/// contains dashes and digits.
pub fn claim_ordinal(pvc: &str, template: &str, sts: &str) -> Option<i32> {
    let rest = pvc.strip_prefix(template)?.strip_prefix('-')?;
    ordinal_of(sts, rest)
}

/// Whether a LabelSelector (matchLabels and matchExpressions) selects `labels`.
/// An empty selector selects everything, as for PodDisruptionBudgets in policy/v1.
pub fn selector_matches(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    by_labels && by_exprs
}

// ---- Pods ---------------------------------------------------------------------

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// When the pod last became Ready (None if it is not Ready).
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = condition(pod, "Ready").filter(|c| c.status == "True")?;
    c.last_transition_time.as_ref().map(|t| t.0)
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running and Ready and not being deleted.
pub fn is_available(pod: &Pod) -> bool {
    !is_terminating(pod) && phase(pod) == "Running" && is_ready(pod)
}

/// The pods of the ordinals `sts` keeps (its live range) that are not available, by name,
/// lowest first: missing, not Running/Ready, or being deleted.
pub fn unavailable_in_range(sts: &StatefulSet, pods: &[Pod]) -> Vec<String> {
    let sts_name = name(sts);
    live_range(sts)
        .filter(|o| {
            !pods
                .iter()
                .any(|p| ordinal_of(&sts_name, &name(p)) == Some(*o) && is_available(p))
        })
        .map(|o| pod_name(&sts_name, o))
        .collect()
}

pub fn revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

pub fn images(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

pub fn node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Names of the PVCs a pod mounts.
pub fn mounted_claims(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|p| p.claim_name.as_str())
        })
}

/// Waiting or terminated reasons of containers that mean "this will not come up".
pub const BAD_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The first bad container state, as `container: Reason (message)`.
pub fn bad_container_state(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        BAD_WAITING_REASONS.contains(&reason).then(|| {
            let msg = w
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            format!("{}: {reason}{msg}", c.name)
        })
    })
}

/// One line describing every container's state, for diagnoses.
pub fn container_states(pod: &Pod) -> Vec<String> {
    let Some(statuses) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
    else {
        return vec![];
    };
    statuses
        .iter()
        .map(|c| {
            let state = match c.state.as_ref() {
                Some(s) if s.waiting.is_some() => {
                    let w = s.waiting.as_ref().unwrap();
                    format!(
                        "waiting {}{}",
                        w.reason.as_deref().unwrap_or("?"),
                        w.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )
                }
                Some(s) if s.terminated.is_some() => {
                    let t = s.terminated.as_ref().unwrap();
                    format!(
                        "terminated {} (exit {})",
                        t.reason.as_deref().unwrap_or("?"),
                        t.exit_code
                    )
                }
                Some(s) if s.running.is_some() => "running".to_string(),
                _ => "unknown".to_string(),
            };
            let last = c
                .last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .map(|t| {
                    format!(
                        ", last terminated {} (exit {})",
                        t.reason.as_deref().unwrap_or("?"),
                        t.exit_code
                    )
                })
                .unwrap_or_default();
            format!(
                "{}: {state}, ready={}, restarts={}{last}",
                c.name, c.ready, c.restart_count
            )
        })
        .collect()
}

// ---- PVCs ---------------------------------------------------------------------

pub fn pvc_phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Capacity if bound, else the requested size.
pub fn pvc_capacity(pvc: &PersistentVolumeClaim) -> Option<String> {
    let from_status = pvc
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone());
    from_status.or_else(|| pvc_request(pvc))
}

/// The claim's `spec.resources.requests.storage`.
pub fn pvc_request(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

pub fn pvc_storage_class(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .or_else(|| {
            pvc.metadata
                .annotations
                .as_ref()?
                .get("volume.beta.kubernetes.io/storage-class")
                .cloned()
        })
}

pub fn pvc_volume(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.spec
        .as_ref()?
        .volume_name
        .as_deref()
        .filter(|v| !v.is_empty())
}

// ---- Quantities and time --------------------------------------------------------

/// Bytes in a Kubernetes quantity such as `10Gi`, `500M`, `1.5Ti`, `1e9`.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

/// Human size in binary units, as kubectl users read it (`30Gi`, `1.5Ti`).
pub fn format_bytes(b: f64) -> String {
    let units = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if (v - v.round()).abs() < 0.05 {
        format!("{}{}", v.round() as i64, units[i])
    } else {
        format!("{v:.1}{}", units[i])
    }
}

/// Sums quantities; unknown ones are skipped.
pub fn total_bytes<'a>(qs: impl IntoIterator<Item = &'a str>) -> f64 {
    qs.into_iter().filter_map(quantity_bytes).sum()
}

/// kubectl-style age of an object created at `t`: 45s, 12m, 5h, 3d.
pub fn age(t: Option<&Time>, now: Timestamp) -> String {
    age_secs(t, now).map_or_else(|| "<unknown>".into(), format_age)
}

/// kubectl-style age from seconds: 45s, 12m, 5h, 3d. A negative age (a clock ahead of
/// ours) shows as 0s, as kubectl shows it.
pub fn format_age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub fn age_secs(t: Option<&Time>, now: Timestamp) -> Option<i64> {
    t.map(|t| now.as_second().saturating_sub(t.0.as_second()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl_and_never_go_negative() {
        let cases = [
            (-5, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (7199, "119m"),
            (7200, "2h"),
            (172_799, "47h"),
            (172_800, "2d"),
        ];
        for (secs, text) in cases {
            assert_eq!(format_age(secs), text, "{secs}");
        }
        let now: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let later = Time("2026-11-20T12:00:30Z".parse().unwrap());
        assert_eq!(age(Some(&later), now), "0s", "a clock ahead of ours");
        assert_eq!(age(None, now), "<unknown>");
    }

    #[test]
    fn ordinals_parse_strictly() {
        assert_eq!(parse_ordinal("0"), Some(0));
        assert_eq!(parse_ordinal("12"), Some(12));
        for bad in ["", "01", "-1", "+1", "1a", " 1", "99999999999"] {
            assert_eq!(parse_ordinal(bad), None, "{bad}");
        }
    }

    #[test]
    fn claim_names_with_dashes_and_digits() {
        assert_eq!(
            claim_ordinal("redis-data-redis-2", "redis-data", "redis"),
            Some(2)
        );
        assert_eq!(claim_ordinal("data-web-1-0", "data", "web-1"), Some(0));
        assert_eq!(claim_ordinal("data-web-1-0", "data", "web"), None);
        assert_eq!(claim_ordinal("data-web-web-3", "data-web", "web"), Some(3));
        assert_eq!(claim_ordinal("data-web-web-3", "data", "web"), None);
        assert_eq!(claim_ordinal("vol2-db3-10", "vol2", "db3"), Some(10));
        assert_eq!(claim_ordinal("vol2-db3-010", "vol2", "db3"), None);
        assert_eq!(
            claim_ordinal("redis-data-redis-", "redis-data", "redis"),
            None
        );
    }

    #[test]
    fn selectors_with_expressions() {
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "redis".to_string()),
            ("tier".into(), "db".into()),
        ]
        .into();
        let sel = |y: &str| -> k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            serde_yaml::from_str(y).unwrap()
        };
        assert!(selector_matches(&sel("{}"), &labels));
        assert!(selector_matches(
            &sel("{matchLabels: {app: redis}}"),
            &labels
        ));
        assert!(!selector_matches(&sel("{matchLabels: {app: pg}}"), &labels));
        assert!(selector_matches(
            &sel("{matchExpressions: [{key: tier, operator: In, values: [db, cache]}]}"),
            &labels
        ));
        assert!(!selector_matches(
            &sel("{matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}"),
            &labels
        ));
        assert!(selector_matches(
            &sel("{matchExpressions: [{key: zone, operator: DoesNotExist}]}"),
            &labels
        ));
        assert!(!selector_matches(
            &sel("{matchExpressions: [{key: zone, operator: Exists}]}"),
            &labels
        ));
    }

    #[test]
    fn quantities_round_trip_through_bytes() {
        assert_eq!(quantity_bytes("10Gi"), Some(10.0 * 1024f64.powi(3)));
        assert_eq!(quantity_bytes("1G"), Some(1e9));
        assert_eq!(
            quantity_bytes("1.5Ti").map(format_bytes).as_deref(),
            Some("1.5Ti")
        );
        assert_eq!(format_bytes(total_bytes(["10Gi", "10Gi", "10Gi"])), "30Gi");
        assert_eq!(quantity_bytes("lots"), None);
    }
}
