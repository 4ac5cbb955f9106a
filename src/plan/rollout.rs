//! Template changes and the canary / rollback plans built from them.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

use crate::cli::{CanaryArgs, OnFailure};

use super::steps::Step;
use crate::error::{Error, Result};
use crate::ui;

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

/// Annotation on the StatefulSet recording how the pending canary was started, so
/// that `--resume` keeps its gates and steps.
pub const SETTINGS_ANNOTATION: &str = "sts-safe.dev/canary";

/// A run's gates and steps, as given or as recorded by the run that started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSettings {
    /// Digest of the template being rolled out: the record belongs to that rollout only.
    pub template: String,
    pub steps: Option<Vec<String>>,
    pub soak_seconds: u64,
    pub step_timeout_seconds: u64,
    pub max_restarts: i32,
    pub check_cmd: Option<String>,
    pub on_failure: OnFailure,
}

impl RunSettings {
    /// Flags given now win; the rest come from `recorded`, else the defaults.
    pub fn resolve(
        args: &CanaryArgs,
        recorded: Option<&RunSettings>,
        template: String,
    ) -> RunSettings {
        RunSettings {
            template,
            steps: args
                .steps
                .clone()
                .or_else(|| recorded.and_then(|r| r.steps.clone())),
            soak_seconds: args
                .soak
                .map(|d| d.as_secs())
                .or(recorded.map(|r| r.soak_seconds))
                .unwrap_or(0),
            step_timeout_seconds: args
                .step_timeout
                .map(|d| d.as_secs())
                .or(recorded.map(|r| r.step_timeout_seconds))
                .unwrap_or(300),
            max_restarts: args
                .max_restarts
                .or(recorded.map(|r| r.max_restarts))
                .unwrap_or(0),
            check_cmd: args
                .check_cmd
                .clone()
                .or_else(|| recorded.and_then(|r| r.check_cmd.clone())),
            on_failure: args
                .on_failure
                .or(recorded.map(|r| r.on_failure))
                .unwrap_or(OnFailure::Pause),
        }
    }

    pub fn soak(&self) -> Duration {
        Duration::from_secs(self.soak_seconds)
    }

    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.step_timeout_seconds.max(1))
    }
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

/// The settings recorded for the rollout of the StatefulSet's current template, if any.
pub fn recorded_settings(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> Option<RunSettings> {
    let raw = sts
        .metadata
        .annotations
        .as_ref()?
        .get(SETTINGS_ANNOTATION)?;
    let s: RunSettings = serde_json::from_str(raw).ok()?;
    (s.template == template_digest(&sts.spec.template)).then_some(s)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gates {
    pub soak_seconds: u64,
    pub min_ready_seconds: i32,
    pub step_timeout_seconds: u64,
    pub max_restarts: i32,
    pub check_cmd: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryPlan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub statefulset: String,
    pub namespace: String,
    pub replicas: i32,
    pub ordinal_start: i32,
    pub resume: bool,
    pub current_revision: Option<String>,
    pub changes: Vec<Change>,
    /// The partition set together with the new template, before any pod is touched.
    pub freeze_partition: i32,
    pub steps: Vec<Step>,
    pub gates: Gates,
    pub warnings: Vec<String>,
}

pub fn render_changes(changes: &[Change]) -> String {
    let mut s = String::new();
    for c in changes {
        let who = c
            .container
            .as_deref()
            .map(|c| format!("container {c}: "))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {who}{} {} → {}\n",
            c.field,
            ui::red(&c.from),
            ui::green(&c.to)
        ));
    }
    s
}

pub fn render_canary(p: &CanaryPlan) -> String {
    let mut s = format!(
        "Canary plan for statefulset {}/{} ({} replicas){}\n",
        p.namespace,
        ui::bold(&p.statefulset),
        p.replicas,
        if p.resume {
            ", resuming the pending rollout"
        } else {
            ""
        }
    );
    if !p.changes.is_empty() {
        s.push_str("Template change:\n");
        s.push_str(&render_changes(&p.changes));
    }
    if !p.resume {
        s.push_str(&format!(
            "Freeze: set partition {} together with the new template (no pod changes yet)\n",
            p.freeze_partition
        ));
    }
    s.push_str("Steps (ordinals updated highest first; each waits for its gate):\n");
    for st in &p.steps {
        s.push_str(&format!(
            "  {}. partition → {:<3} update {:<12} ({} of {} on the new revision)\n",
            st.number,
            st.partition,
            st.ordinals
                .iter()
                .map(|o| format!("{}-{o}", p.statefulset))
                .collect::<Vec<_>>()
                .join(","),
            st.updated,
            p.replicas
        ));
    }
    let g = &p.gates;
    s.push_str(&format!(
        "Gate per pod: recreated on the new revision, Running, Ready for {}s{}, restarts ≤ {}{}; step timeout {}s\n",
        g.soak_seconds,
        if g.min_ready_seconds > 0 {
            format!(" (minReadySeconds {} + --soak)", g.min_ready_seconds)
        } else {
            String::new()
        },
        g.max_restarts,
        g.check_cmd.as_deref().map(|c| format!(", `{c}` exits 0")).unwrap_or_default(),
        g.step_timeout_seconds
    ));
    for w in &p.warnings {
        s.push_str(&format!("{} {w}\n", ui::yellow("warning:")));
    }
    s
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPlan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub statefulset: String,
    pub namespace: String,
    /// The revision restored (status.currentRevision).
    pub restore_revision: String,
    pub bad_revision: String,
    pub changes: Vec<Change>,
    /// Pods stuck not-Ready on the bad revision: the controller will not replace them itself.
    pub delete_pods: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn render_rollback(p: &RollbackPlan) -> String {
    let mut s = format!(
        "Rollback plan for statefulset {}/{}: restore revision {} (from {})\n",
        p.namespace,
        ui::bold(&p.statefulset),
        p.restore_revision,
        p.bad_revision
    );
    if !p.changes.is_empty() {
        s.push_str("Template change:\n");
        s.push_str(&render_changes(&p.changes));
    }
    s.push_str("Set partition 0 with the restored template; the controller replaces pods on the bad revision, highest first\n");
    if p.delete_pods.is_empty() {
        s.push_str("No pod is stuck on the bad revision\n");
    } else {
        s.push_str(&format!(
            "Delete stuck pod(s) {} so they are recreated from the restored template (kubernetes issue 67250)\n",
            p.delete_pods.join(", ")
        ));
    }
    s.push_str("Then wait until every pod is Ready on the restored revision\n");
    for w in &p.warnings {
        s.push_str(&format!("{} {w}\n", ui::yellow("warning:")));
    }
    s
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
    fn resume_keeps_the_recorded_gates_unless_flags_override() {
        use clap::Parser;
        let parse = |extra: &[&str]| {
            let mut argv = vec!["kubectl-sts_safe", "canary", "redis", "--resume"];
            argv.extend_from_slice(extra);
            match crate::cli::Cli::try_parse_from(argv).unwrap().command {
                crate::cli::Command::Canary(a) => a,
                _ => unreachable!(),
            }
        };
        let recorded = RunSettings {
            template: "t".into(),
            steps: Some(vec!["1".into(), "50%".into()]),
            soak_seconds: 30,
            step_timeout_seconds: 60,
            max_restarts: 1,
            check_cmd: Some("redis-cli ping".into()),
            on_failure: OnFailure::Rollback,
        };
        let bare = RunSettings::resolve(&parse(&[]), Some(&recorded), "t".into());
        assert_eq!(bare, recorded);
        let over = RunSettings::resolve(
            &parse(&["--soak", "5s", "--on-failure", "pause"]),
            Some(&recorded),
            "t".into(),
        );
        assert_eq!(
            (
                over.soak_seconds,
                over.on_failure,
                over.check_cmd.as_deref()
            ),
            (5, OnFailure::Pause, Some("redis-cli ping"))
        );
        let fresh = RunSettings::resolve(&parse(&[]), None, "t".into());
        assert_eq!(
            (
                fresh.soak_seconds,
                fresh.step_timeout_seconds,
                fresh.max_restarts,
                fresh.on_failure
            ),
            (0, 300, 0, OnFailure::Pause)
        );
    }

    #[test]
    fn recorded_settings_belong_to_one_template() {
        let mut sts: k8s_openapi::api::apps::v1::StatefulSet = serde_yaml::from_str(
            "metadata: {name: r}\nspec: {selector: {}, serviceName: r, template: {spec: {containers: [{name: r, image: 'redis:7.4'}]}}}",
        )
        .unwrap();
        let s = RunSettings::resolve(
            &match <crate::cli::Cli as clap::Parser>::try_parse_from([
                "k", "canary", "r", "--resume", "--soak", "9s",
            ])
            .unwrap()
            .command
            {
                crate::cli::Command::Canary(a) => a,
                _ => unreachable!(),
            },
            None,
            template_digest(&sts.spec.template),
        );
        sts.metadata.annotations = Some(
            [(
                SETTINGS_ANNOTATION.to_string(),
                serde_json::to_string(&s).unwrap(),
            )]
            .into(),
        );
        assert_eq!(recorded_settings(&sts).map(|r| r.soak_seconds), Some(9));
        sts.spec.template.spec.as_mut().unwrap().containers[0].image = Some("redis:7.2".into());
        assert_eq!(
            recorded_settings(&sts),
            None,
            "a different template is a different rollout"
        );
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
