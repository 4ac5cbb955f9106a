//! The canary's decisions: whether a run starts or resumes, which pods must be Ready
//! before it starts, the gates and steps it keeps across `--resume`, and the plan shown
//! before the first write. Pure: every input is an object already read.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use super::gate;
use super::metrics::{Cadence, MetricFailure, MetricQuery, QueryKind};
use super::ondelete;
use super::steps::{self, Step, StepTarget};
use super::template::{self, same_template, template_digest, Change};
use super::API_VERSION;
use crate::error::{Error, Result};
use crate::model;

/// What to do when a gate fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop where it failed; the partition keeps the remaining pods on the old revision
    Pause,
    /// Restore the old revision everywhere
    Rollback,
}

/// The order in which pods get the new revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Highest ordinal first (the partition's order)
    #[default]
    Ordinal,
    /// Highest ordinal first, the primary last (replaces pods by deleting them, under OnDelete)
    PrimaryLast,
}

/// How the pods are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mechanism {
    /// The partition is lowered step by step; the controller replaces the pods.
    Partition,
    /// `updateStrategy: OnDelete`; the run deletes one pod at a time in its order.
    OnDelete,
}

/// The gate and step flags as given on the command line (None = not given).
#[derive(Debug, Clone, Default)]
pub struct SettingsFlags {
    pub steps: Option<Vec<String>>,
    pub soak: Option<Duration>,
    pub step_timeout: Option<Duration>,
    pub max_restarts: Option<i32>,
    pub check_cmd: Option<String>,
    pub on_failure: Option<OnFailure>,
    pub fail_if: Vec<String>,
    pub require: Vec<String>,
    pub metric_interval: Option<Duration>,
    pub metric_passes: Option<u32>,
    pub prometheus: Option<String>,
    pub prometheus_token_file: Option<String>,
    pub prometheus_ca: Option<String>,
    pub order: Option<Order>,
    pub primary_selector: Option<String>,
    pub role_cmd: Option<String>,
    pub before_pod: Option<String>,
    pub after_pod: Option<String>,
}

/// The metric gate of a run, as recorded (headers are not: they may carry secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSettings {
    pub queries: Vec<MetricQuery>,
    pub interval_ms: u64,
    pub passes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl MetricSettings {
    pub fn cadence(&self) -> Cadence {
        Cadence {
            interval: Duration::from_millis(self.interval_ms.max(1)),
            passes: self.passes.max(1),
        }
    }

    fn resolve(args: &SettingsFlags, recorded: Option<&MetricSettings>) -> Option<MetricSettings> {
        let given: Vec<MetricQuery> = args
            .fail_if
            .iter()
            .map(|e| MetricQuery {
                kind: QueryKind::FailIf,
                expr: e.clone(),
            })
            .chain(args.require.iter().map(|e| MetricQuery {
                kind: QueryKind::Require,
                expr: e.clone(),
            }))
            .collect();
        let queries = if given.is_empty() {
            recorded?.queries.clone()
        } else {
            given
        };
        if queries.is_empty() {
            return None;
        }
        Some(MetricSettings {
            queries,
            interval_ms: args
                .metric_interval
                .map(|d| d.as_millis() as u64)
                .or(recorded.map(|r| r.interval_ms))
                .unwrap_or(10_000),
            passes: args
                .metric_passes
                .or(recorded.map(|r| r.passes))
                .unwrap_or(3),
            prometheus: args
                .prometheus
                .clone()
                .or_else(|| recorded.and_then(|r| r.prometheus.clone())),
            token_file: args
                .prometheus_token_file
                .clone()
                .or_else(|| recorded.and_then(|r| r.token_file.clone())),
            ca_file: args
                .prometheus_ca
                .clone()
                .or_else(|| recorded.and_then(|r| r.ca_file.clone())),
        })
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricSettings>,
    #[serde(default)]
    pub order: Order,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_cmd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_pod: Option<String>,
}

impl RunSettings {
    /// Flags given now win; the rest come from `recorded`, else the defaults.
    pub fn resolve(
        args: &SettingsFlags,
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
            metrics: MetricSettings::resolve(args, recorded.and_then(|r| r.metrics.as_ref())),
            order: args.order.or(recorded.map(|r| r.order)).unwrap_or_default(),
            primary_selector: pick(
                &args.primary_selector,
                recorded.map(|r| &r.primary_selector),
            ),
            role_cmd: pick(&args.role_cmd, recorded.map(|r| &r.role_cmd)),
            before_pod: pick(&args.before_pod, recorded.map(|r| &r.before_pod)),
            after_pod: pick(&args.after_pod, recorded.map(|r| &r.after_pod)),
        }
    }

    pub fn soak(&self) -> Duration {
        Duration::from_secs(self.soak_seconds)
    }

    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.step_timeout_seconds.max(1))
    }
}

/// A flag given now, else the recorded value.
fn pick(given: &Option<String>, recorded: Option<&Option<String>>) -> Option<String> {
    given.clone().or_else(|| recorded.cloned().flatten())
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

/// How a canary invocation relates to the StatefulSet's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A new rollout of the requested template.
    Fresh,
    /// Continue the pending rollout (`--resume`, or the same template asked again).
    Resume,
    /// Nothing to do, with the reason shown to the operator (exit 0).
    Nothing(String),
}

/// Decides between a fresh run, a resume and nothing to do. `requested` is the template
/// asked for by --image/--patch (None with --resume). Another rollout pending is a stop.
pub fn decide_start(
    sts: &StatefulSet,
    pods: &[Pod],
    requested: Option<&PodTemplateSpec>,
    namespace: &str,
) -> Result<Start> {
    let name = sts.name_any();
    // An interrupted OnDelete run is pending until it restored the strategy; under
    // OnDelete, pods behind the update revision say a rollout is pending.
    let behind =
        model::strategy_type(sts) == "OnDelete" && !model::pods_behind_update(sts, pods).is_empty();
    let pending =
        model::rollout_pending(sts) || ondelete::recorded_strategy(sts).is_some() || behind;
    match (requested, pending) {
        (None, false) => Ok(Start::Nothing(format!(
            "no rollout is pending on statefulset \"{name}\": nothing to resume"
        ))),
        (None, true) => Ok(Start::Resume),
        (Some(t), true) if same_template(t, &sts.spec.template) => Ok(Start::Resume),
        (Some(_), true) => Err(Error::stopped(format!(
            "statefulset \"{name}\" already has a rollout pending ({} → {}, partition {}): continue it with `kubectl sts-safe canary {name} -n {namespace} --resume` or undo it with `kubectl sts-safe rollback {name} -n {namespace}`",
            model::current_revision(sts).unwrap_or("?"),
            model::update_revision(sts).unwrap_or("?"),
            model::partition(sts),
        ))),
        (Some(t), false) if same_template(t, &sts.spec.template) => Ok(Start::Nothing(format!(
            "nothing to roll out: statefulset \"{name}\" already runs this template"
        ))),
        (Some(_), false) => Ok(Start::Fresh),
    }
}

/// Pods that must be Ready before the run starts: every live ordinal, except (when
/// resuming) those already exposed to the new revision, which the run re-verifies.
pub fn unready_before_start(sts: &StatefulSet, pods: &[Pod], resume: bool) -> Vec<String> {
    let start = model::ordinal_start(sts);
    let partition = model::partition(sts);
    unready_pods(sts, pods, |o, _| resume && o - start >= partition)
}

/// Live ordinals whose pod is missing or not available, except those `reverified`
/// (by ordinal and pod) says the run re-checks through a gate.
pub fn unready_pods(
    sts: &StatefulSet,
    pods: &[Pod],
    reverified: impl Fn(i32, Option<&Pod>) -> bool,
) -> Vec<String> {
    let name = sts.name_any();
    model::live_range(sts)
        .filter(|o| {
            let pod = pods
                .iter()
                .find(|p| model::ordinal_of(&name, &p.name_any()) == Some(*o));
            !reverified(*o, pod) && !pod.is_some_and(model::is_available)
        })
        .map(|o| model::pod_name(&name, o))
        .collect()
}

/// Warnings for PodDisruptionBudgets over these pods that allow no disruption now.
/// PodDisruptionBudgets over the StatefulSet that a step would break: one that allows no
/// disruption, or fewer than the most pods a step takes down at once (`max_down`).
pub fn pdb_warnings(sts: &StatefulSet, pdbs: &[PodDisruptionBudget], max_down: i32) -> Vec<String> {
    model::pdbs_over(sts, pdbs)
        .into_iter()
        .filter_map(|p| {
            let allowed = p.status.as_ref()?.disruptions_allowed?;
            if allowed == 0 {
                Some(format!(
                    "PodDisruptionBudget \"{}\" allows 0 disruptions right now; rollouts ignore PDBs (kubernetes issue 89820), so each step takes a pod it protects",
                    p.name_any()
                ))
            } else if allowed < max_down {
                Some(format!(
                    "PodDisruptionBudget \"{}\" allows {allowed} disruption(s) right now, but a step takes up to {max_down} pods down at once (maxUnavailable); rollouts ignore PDBs (kubernetes issue 89820)",
                    p.name_any()
                ))
            } else {
                None
            }
        })
        .collect()
}

/// `--steps` entries parsed; bad ones are usage errors.
pub fn parse_targets(list: Option<&[String]>) -> Result<Option<Vec<StepTarget>>> {
    list.map(|v| {
        v.iter()
            .map(|s| steps::parse_target(s))
            .collect::<Result<Vec<_>>>()
    })
    .transpose()
}

/// What the plan is built from, all read before the first write.
pub struct PlanInputs<'a> {
    pub sts: &'a StatefulSet,
    pub namespace: &'a str,
    /// The template to roll out (None when resuming).
    pub requested: Option<&'a PodTemplateSpec>,
    pub resume: bool,
    pub settings: &'a RunSettings,
    /// Whether `settings` came from the record of the run that started the rollout.
    pub recorded: bool,
    pub unready: &'a [String],
    pub pdbs: &'a [PodDisruptionBudget],
    /// Whether the server's controller honours `rollingUpdate.maxUnavailable`.
    pub max_unavailable_on: bool,
    /// Set when the pods are replaced by deleting them under `OnDelete`.
    pub ondelete: Option<OnDeleteInputs<'a>>,
}

/// What the `OnDelete` mechanism's plan needs.
pub struct OnDeleteInputs<'a> {
    /// The strategy restored at the end (the recorded one when resuming).
    pub original: serde_json::Value,
    pub primary: Option<i32>,
    pub pods: &'a [Pod],
}

/// The plan shown before the first write: freeze, steps, gates and warnings.
pub fn build_plan(inp: PlanInputs<'_>) -> Result<CanaryPlan> {
    let sts = inp.sts;
    let replicas = model::replicas(sts);
    let start = model::ordinal_start(sts);
    let partition_now = model::partition(sts);
    let targets = parse_targets(inp.settings.steps.as_deref())?;
    let mut warnings = vec![];
    match (inp.recorded, inp.resume) {
        (true, true) => warnings.push("resuming with the gates and steps of the run that started this rollout (flags given now override them)".into()),
        (false, true) => warnings.push("no record of how this rollout was started (not by kubectl sts-safe, or edited since): using the gates given now or the defaults".into()),
        _ => {}
    }
    let (all_steps, step_warnings) = steps::compute(replicas, start, targets.as_deref());
    warnings.extend(step_warnings);
    let max_unavailable = model::max_unavailable_pods(sts, replicas);
    if let (Some(m), false) = (max_unavailable, inp.max_unavailable_on) {
        if m > 1 {
            warnings.push(format!("statefulset sets maxUnavailable {m}, which this server's controller ignores unless the feature gate MaxUnavailableStatefulSet is on (it is by default from 1.37): the plan counts 1 pod down at a time"));
        }
    }
    let all_steps = steps::with_max_down(
        all_steps,
        max_unavailable.filter(|_| inp.max_unavailable_on),
    );
    if !inp.unready.is_empty() {
        warnings.push(format!(
            "starting with pods not Ready (--allow-unready): {}",
            inp.unready.join(", ")
        ));
    }
    let most_down = all_steps.iter().map(|s| s.max_down).max().unwrap_or(1);
    warnings.extend(pdb_warnings(sts, inp.pdbs, most_down));
    if let Some(m) = &inp.settings.metrics {
        let fail_if = m.queries.iter().any(|q| q.kind == QueryKind::FailIf);
        let require = m.queries.iter().any(|q| q.kind == QueryKind::Require);
        if fail_if && !require {
            warnings.push("--fail-if without any --require: a query that returns nothing passes, so a silent metrics pipeline (no scrape, wrong labels) would let every pod through; add e.g. --require 'up{pod=\"$POD\"} == 1'".into());
        }
    }
    let planned_steps = if inp.resume {
        steps::remaining(&all_steps, partition_now)
    } else {
        all_steps
    };
    let changes = match (inp.requested, inp.resume) {
        (Some(t), false) => template::diff(&sts.spec.template, t),
        _ => vec![],
    };
    let soak = gate::soak(model::min_ready_seconds(sts), inp.settings.soak());
    let name = sts.name_any();
    let (mechanism, planned_steps, restore_strategy) = match &inp.ondelete {
        None => (Mechanism::Partition, planned_steps, None),
        Some(od) => {
            if inp.settings.steps.is_some() {
                return Err(Error::usage("--steps does not apply when pods are replaced one at a time by deleting them (OnDelete, --order primary-last)"));
            }
            let order = ondelete::delete_order(sts, od.primary);
            let (done, todo) = match (inp.resume, model::update_revision(sts)) {
                (true, Some(u)) => ondelete::split_done(&name, &order, od.pods, u),
                _ => (vec![], order),
            };
            let steps = todo
                .iter()
                .enumerate()
                .map(|(i, o)| Step {
                    number: i + 1,
                    updated: (done.len() + i + 1) as i32,
                    partition: steps::NO_PARTITION,
                    ordinals: vec![*o],
                    max_down: 1,
                })
                .collect();
            let restore = ondelete::describe_strategy(&ondelete::strategy_to_restore(&od.original));
            (Mechanism::OnDelete, steps, Some(restore))
        }
    };
    let primary = inp
        .ondelete
        .as_ref()
        .and_then(|od| od.primary)
        .map(|o| model::pod_name(&name, o));
    Ok(CanaryPlan {
        api_version: API_VERSION,
        kind: "CanaryPlan",
        statefulset: sts.name_any(),
        namespace: inp.namespace.to_string(),
        replicas,
        ordinal_start: start,
        resume: inp.resume,
        current_revision: model::current_revision(sts).map(str::to_string),
        changes,
        freeze_partition: partition_now.max(replicas),
        mechanism,
        primary,
        restore_strategy,
        steps: planned_steps,
        gates: Gates {
            soak_seconds: soak.as_secs(),
            min_ready_seconds: model::min_ready_seconds(sts),
            step_timeout_seconds: inp.settings.step_timeout().as_secs(),
            max_restarts: inp.settings.max_restarts,
            check_cmd: inp.settings.check_cmd.clone(),
            metrics: inp.settings.metrics.as_ref().map(MetricGate::new),
            before_pod: inp.settings.before_pod.clone(),
            after_pod: inp.settings.after_pod.clone(),
        },
        warnings,
    })
}

/// Ordinals already exposed to the new revision at `partition` (highest first).
pub fn exposed(sts: &StatefulSet, partition: i32) -> Vec<i32> {
    let start = model::ordinal_start(sts);
    model::live_range(sts)
        .rev()
        .filter(|o| o - start >= partition)
        .collect()
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gates {
    pub soak_seconds: u64,
    pub min_ready_seconds: i32,
    pub step_timeout_seconds: u64,
    pub max_restarts: i32,
    pub check_cmd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricGate>,
    /// Hooks run before a pod is taken down and after it passed its gates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_pod: Option<String>,
}

/// The Prometheus gate as the plan shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricGate {
    pub prometheus: String,
    pub interval_seconds: f64,
    pub passes: u32,
    pub fail_if: Vec<String>,
    pub require: Vec<String>,
}

impl MetricGate {
    fn new(m: &MetricSettings) -> Self {
        let of = |k: QueryKind| {
            m.queries
                .iter()
                .filter(|q| q.kind == k)
                .map(|q| q.expr.clone())
                .collect()
        };
        MetricGate {
            prometheus: m.prometheus.clone().unwrap_or_default(),
            interval_seconds: m.cadence().interval.as_secs_f64(),
            passes: m.cadence().passes,
            fail_if: of(QueryKind::FailIf),
            require: of(QueryKind::Require),
        }
    }
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
    /// The partition set together with the new template, before any pod is touched
    /// (mechanism `partition`).
    pub freeze_partition: i32,
    pub mechanism: Mechanism,
    /// The pod updated last (`--order primary-last`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The update strategy the run leaves behind (mechanism `onDelete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_strategy: Option<String>,
    pub steps: Vec<Step>,
    pub gates: Gates,
    pub warnings: Vec<String>,
}

/// How a canary run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Completed,
    /// The operator chose to stop between steps.
    Stopped,
    /// A gate failed; the partition stays where it was.
    Failed,
    RolledBack,
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub number: usize,
    /// Absent when the step deleted its pod instead (mechanism `onDelete`).
    #[serde(skip_serializing_if = "steps::no_partition")]
    pub partition: i32,
    pub ordinals: Vec<i32>,
    pub seconds: f64,
    /// Queries the metric gate sent to Prometheus in this step (with a metric gate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_queries: Option<u64>,
    /// When every pod of the step had passed its gates (RFC 3339, microseconds).
    pub passed_at: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub pod: Option<String>,
    pub reason: String,
    pub diagnosis: Vec<String>,
    /// The metric gate's query, samples and time, when it stopped the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricFailure>,
}

/// The `-o json|yaml` document of a canary run (kind CanaryReport).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plan: CanaryPlan,
    pub outcome: Outcome,
    pub update_revision: Option<String>,
    pub partition: Option<i32>,
    pub steps: Vec<StepResult>,
    pub failure: Option<Failure>,
    pub seconds: f64,
    /// The lock this run held (`user@host/pid`).
    pub lock: Option<String>,
    /// The command's exit code.
    pub exit_code: i32,
}

impl CanaryReport {
    pub fn new(plan: CanaryPlan) -> Self {
        CanaryReport {
            api_version: API_VERSION,
            kind: "CanaryReport",
            plan,
            outcome: Outcome::Completed,
            update_revision: None,
            partition: None,
            steps: vec![],
            failure: None,
            seconds: 0.0,
            lock: None,
            exit_code: 0,
        }
    }
}

#[cfg(test)]
#[path = "canary_tests.rs"]
mod tests;
