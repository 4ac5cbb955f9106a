//! The patches the plugin sends, as pure values: template freeze, partition and replica
//! steps, each guarded so the API server applies it only to the spec it was planned from.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::Patch;
use serde_json::Value;

use super::canary::SETTINGS_ANNOTATION;

/// A JSON Patch that applies `ops` only while the StatefulSet's spec is at
/// `generation`. The test is evaluated atomically by the API server, which retries
/// status-only races internally — unlike a resourceVersion precondition, which the
/// controller's status writes (made at the very moment a pod turns Ready) would break.
pub fn generation_guarded(generation: i64, ops: serde_json::Value) -> Patch<Value> {
    let mut all = vec![
        serde_json::json!({"op": "test", "path": "/metadata/generation", "value": generation}),
    ];
    all.extend(ops.as_array().cloned().unwrap_or_default());
    let patch =
        serde_json::from_value(serde_json::Value::Array(all)).expect("well-formed JSON Patch");
    Patch::Json(patch)
}

/// Sets the partition, keeping the rest of the update strategy (e.g. maxUnavailable).
pub fn partition_patch(sts: &StatefulSet, generation: i64, partition: i32) -> Patch<Value> {
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

/// Sets spec.replicas while the spec is still at `generation` (see [`generation_guarded`]).
pub fn replicas_patch(generation: i64, replicas: i32) -> Patch<Value> {
    generation_guarded(
        generation,
        serde_json::json!([{"op": "replace", "path": "/spec/replicas", "value": replicas}]),
    )
}

/// An RFC 7386 merge patch turning `old` into exactly `new` (removed keys become null).
pub fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov) if ov.is_object() && nv.is_object() => {
                        out.insert(k.clone(), merge_diff(ov, nv));
                    }
                    _ => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// One write that sets the new template and freezes the partition, guarded by `rv`.
/// `record`: the run's settings, kept on the StatefulSet for `--resume`, in the same write.
pub fn freeze_patch(
    rv: &str,
    template: &PodTemplateSpec,
    partition: i32,
    sts: &StatefulSet,
    record: Option<&str>,
) -> Patch<Value> {
    let old = serde_json::to_value(&sts.spec.template).unwrap_or_default();
    let new = serde_json::to_value(template).unwrap_or_default();
    let mut metadata = serde_json::json!({"resourceVersion": rv});
    if let Some(r) = record {
        metadata["annotations"] = serde_json::json!({ SETTINGS_ANNOTATION: r });
    }
    Patch::Merge(serde_json::json!({
        "metadata": metadata,
        "spec": {
            "template": merge_diff(&old, &new),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_is_exact() {
        let old = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2], "gone": true});
        let new = serde_json::json!({"a": 1, "b": {"c": 5, "d": 3}, "l": [2], "added": "x"});
        let patch = merge_diff(&old, &new);
        assert_eq!(
            patch,
            serde_json::json!({"b": {"c": 5}, "l": [2], "added": "x", "gone": null})
        );
    }

    #[test]
    fn step_patches_test_the_generation_first() {
        let Patch::Json(p) = replicas_patch(7, 3) else {
            panic!("a JSON Patch")
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v[0],
            serde_json::json!({"op": "test", "path": "/metadata/generation", "value": 7})
        );
        assert_eq!(v[1]["path"], "/spec/replicas");
    }

    #[test]
    fn partition_patch_keeps_max_unavailable() {
        let sts: StatefulSet = serde_yaml::from_str(
            "metadata: {name: r}\nspec: {selector: {}, serviceName: r, template: {}, updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 3, maxUnavailable: 2}}}",
        )
        .unwrap();
        let Patch::Json(p) = partition_patch(&sts, 4, 1) else {
            panic!("a JSON Patch")
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v[1]["value"]["rollingUpdate"],
            serde_json::json!({"partition": 1, "maxUnavailable": 2})
        );
    }
}
