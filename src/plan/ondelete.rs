//! The canary's other mechanism: pods replaced one at a time by deleting them, in an
//! order of our choosing. A partition can only update ordinals from the top down, so
//! `--order primary-last` (and any StatefulSet that already uses `OnDelete`) sets the
//! new template with `updateStrategy: OnDelete` in one guarded write, deletes the pods in
//! order, gates each, then restores the original strategy. The original is recorded on
//! the StatefulSet with that first write, so a re-run after a crash restores it.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::Patch;
use kube::ResourceExt;
use serde_json::Value;

use super::canary::SETTINGS_ANNOTATION;
use super::patch::{generation_guarded, merge_diff};
use crate::error::{Error, Result};
use crate::model;

/// Annotation holding the update strategy to restore (JSON), while a run uses `OnDelete`.
pub const ORIGINAL_STRATEGY_ANNOTATION: &str = "sts-safe.dev/original-strategy";

/// The JSON Pointer of that annotation (a `/` in a key is `~1`).
const ORIGINAL_STRATEGY_POINTER: &str = "/metadata/annotations/sts-safe.dev~1original-strategy";

/// The strategy recorded by an interrupted run, if any.
pub fn recorded_strategy(sts: &StatefulSet) -> Option<Value> {
    let raw = sts
        .metadata
        .annotations
        .as_ref()?
        .get(ORIGINAL_STRATEGY_ANNOTATION)?;
    serde_json::from_str(raw).ok()
}

/// The StatefulSet's update strategy as JSON (the API's default when unset).
pub fn current_strategy(sts: &StatefulSet) -> Value {
    match &sts.spec.update_strategy {
        Some(s) => serde_json::to_value(s).unwrap_or_default(),
        None => serde_json::json!({"type": "RollingUpdate"}),
    }
}

/// What the run leaves behind: the original strategy, a RollingUpdate one with
/// partition 0 (every pod runs the new template, so nothing stays held back).
pub fn strategy_to_restore(original: &Value) -> Value {
    let mut s = original.clone();
    if !s.is_object() {
        s = serde_json::json!({"type": "RollingUpdate"});
    }
    if s["type"] == "OnDelete" {
        return serde_json::json!({"type": "OnDelete"});
    }
    s["type"] = "RollingUpdate".into();
    if !s["rollingUpdate"].is_object() {
        s["rollingUpdate"] = serde_json::json!({});
    }
    s["rollingUpdate"]["partition"] = 0.into();
    s
}

pub fn is_ondelete(strategy: &Value) -> bool {
    strategy["type"] == "OnDelete"
}

/// Short text for the plan, e.g. `RollingUpdate (partition 0, maxUnavailable 2)`.
pub fn describe_strategy(strategy: &Value) -> String {
    let kind = strategy["type"].as_str().unwrap_or("RollingUpdate");
    let ru = &strategy["rollingUpdate"];
    let mut parts = vec![];
    if let Some(p) = ru["partition"].as_i64() {
        parts.push(format!("partition {p}"));
    }
    match &ru["maxUnavailable"] {
        Value::Null => {}
        Value::String(s) => parts.push(format!("maxUnavailable {s}")),
        v => parts.push(format!("maxUnavailable {v}")),
    }
    if parts.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({})", parts.join(", "))
    }
}

/// The order in which pods are deleted: highest ordinal first, the primary last.
pub fn delete_order(sts: &StatefulSet, primary: Option<i32>) -> Vec<i32> {
    let mut order: Vec<i32> = model::live_range(sts)
        .rev()
        .filter(|o| Some(*o) != primary)
        .collect();
    if let Some(p) = primary.filter(|p| model::live_range(sts).contains(p)) {
        order.push(p);
    }
    order
}

/// The ordinals of `order` whose pod already runs `update_revision` (to re-verify when
/// resuming), and those still to replace, each in order.
pub fn split_done(
    sts_name: &str,
    order: &[i32],
    pods: &[Pod],
    update_revision: &str,
) -> (Vec<i32>, Vec<i32>) {
    order.iter().partition(|o| {
        pods.iter().any(|p| {
            model::ordinal_of(sts_name, &p.name_any()) == Some(**o)
                && model::revision(p) == Some(update_revision)
                && !model::is_terminating(p)
        })
    })
}

/// The primary among `(ordinal, is primary)` answers for the live pods (by
/// `--primary-selector` or `--role-cmd`, said in `how`): exactly one must be.
pub fn one_primary(sts_name: &str, answers: &[(i32, bool)], how: &str) -> Result<i32> {
    let found: Vec<i32> = answers
        .iter()
        .filter(|(_, p)| *p)
        .map(|(o, _)| *o)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::stopped(format!(
            "no pod of statefulset \"{sts_name}\" is the primary by {how}: cannot order the primary last; fix the selector or command (or use --order ordinal)"
        ))),
        many => Err(Error::stopped(format!(
            "{} pods of statefulset \"{sts_name}\" are the primary by {how} ({}): the primary must be one pod",
            many.len(),
            many.iter()
                .map(|o| model::pod_name(sts_name, *o))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `--primary-selector LABEL=VALUE` parsed.
pub fn parse_selector(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(Error::usage(format!(
            "--primary-selector \"{s}\" must be LABEL=VALUE, e.g. role=primary"
        ))),
    }
}

/// Pods that must be Ready before the run starts: every live ordinal, except (when
/// resuming) those already on the update revision, which the run re-verifies.
pub fn unready_before_start(sts: &StatefulSet, pods: &[Pod], resume: bool) -> Vec<String> {
    let update = model::update_revision(sts);
    super::canary::unready_pods(sts, pods, |_, pod| {
        resume && update.is_some() && pod.is_some_and(|p| model::revision(p) == update)
    })
}

/// The first write of a run: the new template and `OnDelete` (no pod changes yet),
/// with the strategy to restore and the run's settings recorded, guarded by the
/// resourceVersion the plan was made from.
pub fn freeze_patch(
    rv: &str,
    template: Option<&PodTemplateSpec>,
    sts: &StatefulSet,
    original: &Value,
    record: Option<&str>,
) -> Patch<Value> {
    let mut annotations = serde_json::json!({
        ORIGINAL_STRATEGY_ANNOTATION: original.to_string(),
    });
    if let Some(r) = record {
        annotations[SETTINGS_ANNOTATION] = r.into();
    }
    let mut spec = serde_json::json!({
        "updateStrategy": {"type": "OnDelete", "rollingUpdate": null}
    });
    if let Some(t) = template {
        let old = serde_json::to_value(&sts.spec.template).unwrap_or_default();
        let new = serde_json::to_value(t).unwrap_or_default();
        spec["template"] = merge_diff(&old, &new);
    }
    Patch::Merge(serde_json::json!({
        "metadata": {"resourceVersion": rv, "annotations": annotations},
        "spec": spec,
    }))
}

/// A rollback's write when the StatefulSet uses `OnDelete` or an interrupted run recorded
/// a strategy: the restored template, the strategy the StatefulSet keeps, no record.
pub fn rollback_patch(rv: &str, template: &PodTemplateSpec, sts: &StatefulSet) -> Patch<Value> {
    let original = recorded_strategy(sts).unwrap_or_else(|| current_strategy(sts));
    let mut strategy = strategy_to_restore(&original);
    if is_ondelete(&strategy) {
        strategy["rollingUpdate"] = Value::Null;
    }
    let old = serde_json::to_value(&sts.spec.template).unwrap_or_default();
    let new = serde_json::to_value(template).unwrap_or_default();
    Patch::Merge(serde_json::json!({
        "metadata": {"resourceVersion": rv, "annotations": {ORIGINAL_STRATEGY_ANNOTATION: null}},
        "spec": {"template": merge_diff(&old, &new), "updateStrategy": strategy},
    }))
}

/// The last write of a run: the original strategy back (see [`strategy_to_restore`])
/// and the record removed, while the spec is still at `generation`.
pub fn restore_patch(generation: i64, original: &Value, recorded: bool) -> Patch<Value> {
    let mut ops = vec![serde_json::json!({
        "op": "add", "path": "/spec/updateStrategy", "value": strategy_to_restore(original)
    })];
    if recorded {
        ops.push(serde_json::json!({"op": "remove", "path": ORIGINAL_STRATEGY_POINTER}));
    }
    generation_guarded(generation, Value::Array(ops))
}

/// Whether the StatefulSet already has the strategy a run restores, and no record.
pub fn restored(sts: &StatefulSet, original: &Value) -> bool {
    let want = strategy_to_restore(original);
    let now = current_strategy(sts);
    let same = if is_ondelete(&want) {
        is_ondelete(&now)
    } else {
        now["type"] == "RollingUpdate"
            && now["rollingUpdate"]["partition"].as_i64().unwrap_or(0) == 0
            && now["rollingUpdate"]["maxUnavailable"] == want["rollingUpdate"]["maxUnavailable"]
    };
    same && recorded_strategy(sts).is_none()
}

#[cfg(test)]
#[path = "ondelete_tests.rs"]
mod tests;
