//! Pod templates: what `--image` makes of one, what changed between two, the template a
//! ControllerRevision holds, and a digest that names a template.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// One changed field of the pod template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The container, or None for pod-level fields.
    pub container: Option<String>,
    pub field: String,
    pub from: String,
    pub to: String,
}

/// Applies `--image [CONTAINER=]IMAGE` arguments to a copy of the template.
pub fn apply_images(
    template: &PodTemplateSpec,
    images: &[String],
    sts: &str,
) -> Result<PodTemplateSpec> {
    let mut t = template.clone();
    let spec = t
        .spec
        .as_mut()
        .ok_or_else(|| Error::usage(format!("statefulset \"{sts}\" has no pod spec")))?;
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    for arg in images {
        let (container, image) = match arg.split_once('=') {
            Some((c, i)) if is_dns_label(c) => (Some(c), i),
            _ => (None, arg.as_str()),
        };
        if image.is_empty() || image.contains(char::is_whitespace) {
            return Err(Error::usage(format!(
                "--image \"{arg}\": the image reference is empty or contains spaces"
            )));
        }
        let target = match container {
            Some(c) => c.to_string(),
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(Error::usage(format!(
                    "--image \"{arg}\": statefulset \"{sts}\" has {} containers ({}); name one as CONTAINER=IMAGE",
                    names.len(),
                    names.join(", ")
                )))
            }
        };
        let c = spec.containers.iter_mut().find(|c| c.name == target).ok_or_else(|| {
            Error::usage(format!(
                "--image \"{arg}\": statefulset \"{sts}\" has no container \"{target}\" (containers: {})",
                names.join(", ")
            ))
        })?;
        c.image = Some(image.to_string());
    }
    Ok(t)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn short(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(unset)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let s = other.to_string();
            if s.len() > 80 {
                format!(
                    "{}…",
                    &s[..s.char_indices().nth(79).map(|(i, _)| i).unwrap_or(s.len())]
                )
            } else {
                s
            }
        }
    }
}

fn object_diff(
    container: Option<&str>,
    prefix: &str,
    old: &Value,
    new: &Value,
    skip: &[&str],
    out: &mut Vec<Change>,
) {
    let keys: BTreeSet<&String> = old
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(new.as_object().into_iter().flat_map(|m| m.keys()))
        .collect();
    for k in keys {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let (a, b) = (old.get(k), new.get(k));
        if a != b {
            out.push(Change {
                container: container.map(str::to_string),
                field: format!("{prefix}{k}"),
                from: short(a),
                to: short(b),
            });
        }
    }
}

/// Per-container and pod-level differences between two templates.
pub fn diff(old: &PodTemplateSpec, new: &PodTemplateSpec) -> Vec<Change> {
    let mut out = vec![];
    let o = serde_json::to_value(old).unwrap_or_default();
    let n = serde_json::to_value(new).unwrap_or_default();
    object_diff(
        None,
        "metadata.",
        &o["metadata"],
        &n["metadata"],
        &[],
        &mut out,
    );
    object_diff(
        None,
        "spec.",
        &o["spec"],
        &n["spec"],
        &["containers"],
        &mut out,
    );
    let containers = |v: &Value| -> Vec<(String, Value)> {
        v["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c.clone()))
            .collect()
    };
    let (oc, nc) = (containers(&o), containers(&n));
    for (name, new_c) in &nc {
        match oc.iter().find(|(n, _)| n == name) {
            Some((_, old_c)) => object_diff(Some(name), "", old_c, new_c, &[], &mut out),
            None => out.push(Change {
                container: Some(name.clone()),
                field: "(container)".into(),
                from: "(absent)".into(),
                to: "added".into(),
            }),
        }
    }
    for (name, _) in oc.iter().filter(|(n, _)| !nc.iter().any(|(m, _)| m == n)) {
        out.push(Change {
            container: Some(name.clone()),
            field: "(container)".into(),
            from: "present".into(),
            to: "removed".into(),
        });
    }
    out
}

/// A stable digest of a pod template (FNV-1a over its JSON form).
pub fn template_digest(t: &PodTemplateSpec) -> String {
    let json = serde_json::to_string(t).unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in json.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Two templates are the same change when their JSON forms are equal.
pub fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// The pod template stored in a StatefulSet ControllerRevision (`data.spec.template`).
pub fn template_from_revision(data: &Value) -> Option<PodTemplateSpec> {
    let mut t = data.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str) -> PodTemplateSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    const TWO: &str =
        "spec: {containers: [{name: redis, image: 'redis:7.2'}, {name: exporter, image: 'exp:1'}]}";

    #[test]
    fn image_flags_pick_the_container() {
        let one = template("spec: {containers: [{name: redis, image: 'redis:7.2'}]}");
        let t = apply_images(&one, &["redis:7.4".into()], "r").unwrap();
        assert_eq!(
            t.spec.unwrap().containers[0].image.as_deref(),
            Some("redis:7.4")
        );
        let t = apply_images(&one, &["redis=reg:5000/redis:7.4".into()], "r").unwrap();
        assert_eq!(
            t.spec.unwrap().containers[0].image.as_deref(),
            Some("reg:5000/redis:7.4")
        );
        let two = template(TWO);
        let e = apply_images(&two, &["redis:7.4".into()], "r").unwrap_err();
        assert!(
            e.to_string().contains("has 2 containers (redis, exporter)"),
            "{e}"
        );
        let e = apply_images(&two, &["nginx=nginx:1".into()], "r").unwrap_err();
        assert!(e.to_string().contains("no container \"nginx\""), "{e}");
        assert_eq!(e.exit_code(), 2);
        let t = apply_images(&two, &["exporter=exp:2".into()], "r").unwrap();
        assert_eq!(diff(&two, &t).len(), 1);
    }

    #[test]
    fn diff_names_container_field_old_and_new() {
        let a = template(TWO);
        let b = template("metadata: {annotations: {x: y}}\nspec: {containers: [{name: redis, image: 'redis:7.4', args: ['--save']}, {name: exporter, image: 'exp:1'}]}");
        let d = diff(&a, &b);
        assert!(d.contains(&Change {
            container: Some("redis".into()),
            field: "image".into(),
            from: "redis:7.2".into(),
            to: "redis:7.4".into()
        }));
        assert!(d
            .iter()
            .any(|c| c.field == "args" && c.to == "[\"--save\"]"));
        assert!(d
            .iter()
            .any(|c| c.container.is_none() && c.field == "metadata.annotations"));
        assert_eq!(d.len(), 3);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn revision_data_gives_back_the_template() {
        let data = serde_json::json!({"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "redis"}}, "spec": {"containers": [{"name": "redis", "image": "redis:7.2"}]}}}});
        let t = template_from_revision(&data).unwrap();
        assert_eq!(
            t.spec.unwrap().containers[0].image.as_deref(),
            Some("redis:7.2")
        );
        assert!(template_from_revision(&serde_json::json!({})).is_none());
    }
}
