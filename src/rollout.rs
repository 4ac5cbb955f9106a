//! Executes a canary plan: freeze the partition with the new template, then lower it
//! step by step, waiting (watch-driven) for every exposed pod to pass its gate.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{OnFailure, Output};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::gate::{Gate, Verdict};
use crate::plan::rollout::CanaryPlan;
use crate::tracker::{guarded_patch, partition_patch, Interrupt, Poll, Tracker, WaitEnd};
use crate::ui::{self, Progress};

pub struct Options {
    pub soak: Duration,
    pub step_timeout: Duration,
    pub max_restarts: i32,
    pub check_cmd: Option<String>,
    pub on_failure: OnFailure,
    pub yes: bool,
    /// The run's settings, recorded on the StatefulSet with the freeze so `--resume` keeps them.
    pub record: String,
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

/// Two templates are the same change when their JSON forms are equal.
pub fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
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
        metadata["annotations"] =
            serde_json::json!({ crate::plan::rollout::SETTINGS_ANNOTATION: r });
    }
    Patch::Merge(serde_json::json!({
        "metadata": metadata,
        "spec": {
            "template": merge_diff(&old, &new),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
        }
    }))
}

/// Warnings for PodDisruptionBudgets over these pods that allow no disruption now.
pub async fn pdb_warnings(ctx: &Ctx, sts: &StatefulSet) -> Vec<String> {
    let Ok(pdbs) = ctx.list_pdbs().await else {
        return vec![];
    };
    model::pdbs_over(sts, &pdbs)
        .into_iter()
        .filter(|p| p.status.as_ref().is_some_and(|s| s.disruptions_allowed == Some(0)))
        .map(|p| {
            format!(
                "PodDisruptionBudget \"{}\" allows 0 disruptions right now; rollouts ignore PDBs (kubernetes issue 89820), so each step takes a pod it protects",
                p.name_any()
            )
        })
        .collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub number: usize,
    pub partition: i32,
    pub ordinals: Vec<i32>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub pod: Option<String>,
    pub reason: String,
    pub diagnosis: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plan: CanaryPlan,
    /// completed | stopped | failed | rolled-back | interrupted
    pub outcome: String,
    pub update_revision: Option<String>,
    pub partition: Option<i32>,
    pub steps: Vec<StepResult>,
    pub failure: Option<Failure>,
    pub seconds: f64,
}

enum StepEnd {
    Passed,
    Failed {
        ordinal: Option<i32>,
        reason: String,
    },
    Interrupted,
}

struct Run<'a> {
    ctx: &'a Ctx,
    name: String,
    replicas: i32,
    generation: i64,
    update_revision: String,
    tracker: Tracker,
    interrupt: Interrupt,
    progress: Progress,
    opts: Options,
    passed: BTreeSet<i32>,
}

fn describe(v: &Verdict, restarts: i32) -> String {
    let r = if restarts > 0 {
        format!(", restarts {restarts}")
    } else {
        String::new()
    };
    match v {
        Verdict::Waiting(s) => format!("{s}{r}"),
        Verdict::Soaking(d) => format!(
            "Ready, soaking {}s more{r}",
            d.as_secs() + u64::from(d.subsec_millis() > 0)
        ),
        Verdict::Passed => "Ready".into(),
        Verdict::Failed(s) => format!("FAILED: {s}"),
    }
}

async fn run_check(
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> std::result::Result<(), String> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    match tokio::time::timeout(timeout, c.output()).await {
        Err(_) => Err(format!(
            "--check-cmd did not finish within {}s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Err(format!("--check-cmd could not start: {e}")),
        Ok(Ok(o)) if o.status.success() => Ok(()),
        Ok(Ok(o)) => {
            let out = String::from_utf8_lossy(&o.stderr).trim().to_string();
            let out = if out.is_empty() {
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            } else {
                out
            };
            Err(format!(
                "--check-cmd exited {}{}",
                o.status
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "by signal".into()),
                if out.is_empty() {
                    String::new()
                } else {
                    format!(": {}", out.lines().last().unwrap_or(""))
                }
            ))
        }
    }
}

impl Run<'_> {
    fn gate(&self, soak: Duration) -> Gate<'_> {
        Gate {
            update_revision: &self.update_revision,
            soak,
            max_restarts: self.opts.max_restarts,
        }
    }

    fn check_env(&self, ordinal: i32, sts: &StatefulSet) -> Vec<(&'static str, String)> {
        let pod = model::pod_name(&self.name, ordinal);
        let svc = sts.spec.service_name.clone().unwrap_or_default();
        vec![
            (
                "POD_FQDN",
                format!("{pod}.{svc}.{}.svc.cluster.local", self.ctx.namespace),
            ),
            ("POD_NAME", pod),
            ("POD_ORDINAL", ordinal.to_string()),
            ("NAMESPACE", self.ctx.namespace.clone()),
        ]
    }

    /// Waits until every ordinal of `ordinals` passes its gate while earlier canaries
    /// stay healthy and nobody else changes the StatefulSet.
    async fn wait_step(&mut self, ordinals: &[i32]) -> StepEnd {
        let deadline = Instant::now() + self.opts.step_timeout;
        let lines: BTreeMap<i32, ui::Line> = ordinals
            .iter()
            .map(|o| (*o, self.progress.line(model::pod_name(&self.name, *o))))
            .collect();
        let started = Instant::now();
        let mut checked: BTreeSet<i32> = BTreeSet::new();
        let mut last_check_error: BTreeMap<i32, String> = BTreeMap::new();
        loop {
            if self.interrupt.is_set() {
                return StepEnd::Interrupted;
            }
            let Some(sts) = self.tracker.statefulset() else {
                return StepEnd::Failed {
                    ordinal: None,
                    reason: format!("statefulset \"{}\" was deleted", self.name),
                };
            };
            // A lower generation is only the watch cache lagging behind our own write.
            let gen = sts.metadata.generation.unwrap_or(0);
            if gen > self.generation {
                return StepEnd::Failed {
                    ordinal: None,
                    reason: format!(
                        "statefulset \"{}\" was changed by someone else (generation {} → {gen}); stopped without lowering the partition further",
                        self.name, self.generation
                    ),
                };
            }
            let pods = self.tracker.pods();
            let now = Timestamp::now();
            for o in &self.passed {
                let v = self.gate(Duration::ZERO).evaluate(pods.get(o), now);
                if v != Verdict::Passed {
                    return StepEnd::Failed {
                        ordinal: Some(*o),
                        reason: format!(
                            "{} passed an earlier step but is now: {}",
                            model::pod_name(&self.name, *o),
                            describe(&v, 0)
                        ),
                    };
                }
            }
            let mut wake: Option<Duration> = None;
            let mut to_check = vec![];
            let mut all_passed = true;
            for o in ordinals {
                let pod = pods.get(o);
                let v = self.gate(self.opts.soak).evaluate(pod, now);
                let restarts = pod.map(model::restarts).unwrap_or(0);
                match &v {
                    Verdict::Failed(r) => {
                        lines[o].finish(describe(&v, restarts));
                        return StepEnd::Failed {
                            ordinal: Some(*o),
                            reason: format!("{}: {r}", model::pod_name(&self.name, *o)),
                        };
                    }
                    Verdict::Passed if self.opts.check_cmd.is_some() && !checked.contains(o) => {
                        all_passed = false;
                        to_check.push(*o);
                        lines[o].set(match last_check_error.get(o) {
                            Some(e) => format!("Ready, check failing ({e})"),
                            None => "Ready, running --check-cmd".into(),
                        });
                    }
                    Verdict::Passed => {
                        lines[o]
                            .finish(format!("passed in {:.1}s", started.elapsed().as_secs_f64()));
                    }
                    Verdict::Soaking(d) => {
                        all_passed = false;
                        wake = Some(wake.map_or(*d, |w| w.min(*d)));
                        lines[o].set(describe(&v, restarts));
                    }
                    Verdict::Waiting(_) => {
                        all_passed = false;
                        lines[o].set(describe(&v, restarts));
                    }
                }
            }
            if let Some(cmd) = self.opts.check_cmd.clone() {
                for o in to_check {
                    let remaining = deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_secs(1));
                    match run_check(&cmd, &self.check_env(o, &sts), remaining).await {
                        Ok(()) => {
                            checked.insert(o);
                            last_check_error.remove(&o);
                        }
                        Err(e) => {
                            last_check_error.insert(o, e);
                            wake = Some(Duration::from_secs(2));
                        }
                    }
                }
                if ordinals.iter().all(|o| checked.contains(o)) {
                    all_passed = ordinals.iter().all(|o| {
                        self.gate(self.opts.soak).evaluate(pods.get(o), now) == Verdict::Passed
                    });
                    for o in ordinals {
                        lines[o].finish(format!(
                            "passed in {:.1}s (check ok)",
                            started.elapsed().as_secs_f64()
                        ));
                    }
                }
            }
            if all_passed {
                return StepEnd::Passed;
            }
            if Instant::now() >= deadline {
                let stuck: Vec<i32> = ordinals
                    .iter()
                    .copied()
                    .filter(|o| {
                        self.gate(self.opts.soak).evaluate(pods.get(o), now) != Verdict::Passed
                            || !checked.contains(o) && self.opts.check_cmd.is_some()
                    })
                    .collect();
                let first = stuck.first().copied();
                let state = first
                    .map(|o| {
                        last_check_error.get(&o).cloned().unwrap_or_else(|| {
                            describe(&self.gate(self.opts.soak).evaluate(pods.get(&o), now), 0)
                        })
                    })
                    .unwrap_or_default();
                return StepEnd::Failed {
                    ordinal: first,
                    reason: format!(
                        "step timeout ({}s) reached: {} still {state}",
                        self.opts.step_timeout.as_secs(),
                        stuck
                            .iter()
                            .map(|o| model::pod_name(&self.name, *o))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
            }
            if self.ctx.stderr_tty {
                // Tick the soak countdown on a terminal.
                wake = wake.map(|w| w.min(Duration::from_secs(1)));
            }
            let until = wake
                .map(|w| (Instant::now() + w).min(deadline))
                .unwrap_or(deadline);
            tokio::select! {
                _ = self.tracker.changed(until) => {}
                _ = self.interrupt.wait() => {}
            }
        }
    }

    fn resume_hint(&self) -> String {
        format!(
            "kubectl sts-safe canary {} -n {} --resume",
            self.name, self.ctx.namespace
        )
    }
}

/// Runs the plan; `template` is the new template (None when resuming).
pub async fn execute(
    ctx: &Ctx,
    sts: StatefulSet,
    template: Option<PodTemplateSpec>,
    plan: CanaryPlan,
    opts: Options,
) -> Result<i32> {
    let started = Instant::now();
    let name = sts.name_any();
    let mut interrupt = Interrupt::install();
    let tracker = Tracker::start(ctx, &sts).await?;
    let mut run = Run {
        ctx,
        name: name.clone(),
        replicas: plan.replicas,
        generation: sts.metadata.generation.unwrap_or(0),
        update_revision: String::new(),
        tracker,
        interrupt: interrupt.clone(),
        progress: Progress::new(ctx),
        opts,
        passed: BTreeSet::new(),
    };
    let mut report = RunReport {
        api_version: "sts-safe/v1",
        kind: "CanaryReport",
        plan,
        outcome: "completed".into(),
        update_revision: None,
        partition: None,
        steps: vec![],
        failure: None,
        seconds: 0.0,
    };

    if let Some(t) = &template {
        let freeze = report.plan.freeze_partition;
        let s = guarded_patch(
            ctx,
            &name,
            run.generation,
            run.tracker.statefulset(),
            false,
            |s| model::partition(s) == freeze && same_template(&s.spec.template, t),
            |rv| freeze_patch(rv, t, freeze, &sts, Some(&run.opts.record)),
        )
        .await?;
        run.generation = s.metadata.generation.unwrap_or(0);
        run.progress.println(format!(
            "froze partition at {freeze} and set the new template"
        ));
    }
    let gen = run.generation;
    let observed = run
        .tracker
        .wait_for(
            Instant::now() + Duration::from_secs(60),
            &mut interrupt,
            |t| match t.statefulset() {
                Some(s) if s.metadata.generation.unwrap_or(0) > gen => {
                    Poll::Done(Err(s.metadata.generation.unwrap_or(0)))
                }
                Some(s) if s.metadata.generation.unwrap_or(0) == gen && model::observed(&s) => {
                    match model::update_revision(&s) {
                        Some(u) => Poll::Done(Ok(u.to_string())),
                        None => Poll::Pending(None),
                    }
                }
                _ => Poll::Pending(None),
            },
        )
        .await;
    run.update_revision = match observed {
        Ok(Ok(u)) => u,
        Ok(Err(g)) => {
            return Err(Error::Conflict {
                object: format!("statefulset \"{name}\""),
                detail: format!("its spec moved to generation {g} right after the freeze"),
            })
        }
        Err(WaitEnd::Timeout) => {
            return Err(Error::Timeout {
                what: format!("the StatefulSet controller to observe statefulset \"{name}\" (is kube-controller-manager running?)"),
                after: "60s".into(),
            })
        }
        Err(WaitEnd::Interrupted) => return Err(Error::Interrupted(format!("before the first step; resume with: {}", run.resume_hint()))),
    };
    report.update_revision = Some(run.update_revision.clone());

    let live = model::live_range(&sts);
    let start = model::ordinal_start(&sts);
    let partition_now = run
        .tracker
        .statefulset()
        .map(|s| model::partition(&s))
        .unwrap_or(0);
    if report.plan.resume {
        let exposed: Vec<i32> = live
            .clone()
            .rev()
            .filter(|o| o - start >= partition_now)
            .collect();
        if !exposed.is_empty() {
            run.progress.println(format!(
                "re-verifying pods already on the new revision: {}",
                names(&name, &exposed)
            ));
            match run.wait_step(&exposed).await {
                StepEnd::Passed => run.passed.extend(exposed),
                end => return finish_failed(&mut run, &mut report, end, started).await,
            }
        }
    }

    let steps = report.plan.steps.clone();
    let mut auto = run.opts.yes;
    for (i, step) in steps.iter().enumerate() {
        if run.interrupt.is_set() {
            return finish_failed(&mut run, &mut report, StepEnd::Interrupted, started).await;
        }
        let step_started = Instant::now();
        let latest = run.tracker.statefulset();
        let partition = step.partition;
        let patched = guarded_patch(
            ctx,
            &name,
            run.generation,
            latest,
            false,
            |s| model::partition(s) == partition,
            |_| partition_patch(&sts, run.generation, partition),
        )
        .await;
        match patched {
            Ok(s) => run.generation = s.metadata.generation.unwrap_or(0),
            Err(e @ Error::Conflict { .. }) => {
                let end = StepEnd::Failed {
                    ordinal: None,
                    reason: e.to_string(),
                };
                return finish_failed(&mut run, &mut report, end, started).await;
            }
            Err(e) => return Err(e),
        }
        run.progress.println(format!(
            "step {}/{}: partition → {partition}, updating {}",
            step.number,
            steps.last().map_or(0, |s| s.number),
            names(&name, &step.ordinals)
        ));
        match run.wait_step(&step.ordinals).await {
            StepEnd::Passed => {
                run.passed.extend(step.ordinals.iter().copied());
                report.steps.push(StepResult {
                    number: step.number,
                    partition,
                    ordinals: step.ordinals.clone(),
                    seconds: step_started.elapsed().as_secs_f64(),
                });
            }
            end => return finish_failed(&mut run, &mut report, end, started).await,
        }
        let last = i + 1 == steps.len();
        if !last && !auto {
            let next = &steps[i + 1];
            let prompt = format!(
                "step {} passed ({} Ready on the new revision). Next: partition → {}, updating {}",
                step.number,
                names(&name, &run.passed.iter().rev().copied().collect::<Vec<_>>()),
                next.partition,
                names(&name, &next.ordinals)
            );
            match ui::choose(
                ctx,
                &prompt,
                &[
                    "continue",
                    "continue all remaining steps",
                    "stop here",
                    "roll back",
                ],
            ) {
                Ok(0) => {}
                Ok(1) => auto = true,
                Ok(3) => {
                    report.outcome = "rolled-back".into();
                    drop(run);
                    crate::commands::rollback::perform(ctx, &name, Duration::from_secs(300), false)
                        .await?;
                    return emit_report(ctx, &mut report, started).map(|_| 0);
                }
                _ => {
                    report.outcome = "stopped".into();
                    report.partition = Some(partition);
                    run.progress.println(format!(
                        "stopped at your request after step {}; resume with: {}",
                        step.number,
                        run.resume_hint()
                    ));
                    return emit_report(ctx, &mut report, started).map(|_| 0);
                }
            }
        }
    }

    // The controller promotes the update revision once every pod runs it.
    let (rev, replicas) = (run.update_revision.clone(), run.replicas);
    let done = run
        .tracker
        .wait_for(
            Instant::now() + Duration::from_secs(60),
            &mut interrupt,
            |t| match t.statefulset() {
                Some(s)
                    if model::current_revision(&s) == Some(rev.as_str())
                        && s.status
                            .as_ref()
                            .and_then(|st| st.updated_replicas)
                            .unwrap_or(0)
                            >= replicas =>
                {
                    Poll::Done(())
                }
                _ => Poll::Pending(None),
            },
        )
        .await;
    if done.is_err() {
        report.plan.warnings.push("every pod passed, but the controller has not yet reported currentRevision = updateRevision".into());
    }
    report.partition = Some(0);
    run.progress.println(format!(
        "{} statefulset \"{name}\" now runs revision {} on all {} pods ({:.1}s)",
        ui::green("done:"),
        run.update_revision,
        run.replicas,
        started.elapsed().as_secs_f64()
    ));
    emit_report(ctx, &mut report, started)?;
    Ok(0)
}

fn names(sts: &str, ordinals: &[i32]) -> String {
    ordinals
        .iter()
        .map(|o| model::pod_name(sts, *o))
        .collect::<Vec<_>>()
        .join(", ")
}

fn emit_report(ctx: &Ctx, report: &mut RunReport, started: Instant) -> Result<()> {
    report.seconds = started.elapsed().as_secs_f64();
    match ctx.output {
        Output::Text => {
            if !report.steps.is_empty() {
                let mut s = String::from("Step timings:\n");
                for st in &report.steps {
                    s.push_str(&format!(
                        "  {}. partition {:<3} {:<24} {:.1}s\n",
                        st.number,
                        st.partition,
                        names(&report.plan.statefulset, &st.ordinals),
                        st.seconds
                    ));
                }
                ui::print_stdout(&s)?;
            }
            Ok(())
        }
        o => ui::emit(o, report),
    }
}

async fn finish_failed(
    run: &mut Run<'_>,
    report: &mut RunReport,
    end: StepEnd,
    started: Instant,
) -> Result<i32> {
    let partition = run.tracker.statefulset().map(|s| model::partition(&s));
    report.partition = partition;
    match end {
        StepEnd::Interrupted => {
            report.outcome = "interrupted".into();
            emit_report(run.ctx, report, started)?;
            let exposed: Vec<i32> = match (&run.tracker.statefulset(), partition) {
                (Some(s), Some(p)) => model::live_range(s)
                    .rev()
                    .filter(|o| o - model::ordinal_start(s) >= p)
                    .collect(),
                _ => vec![],
            };
            let verified: Vec<i32> = run.passed.iter().rev().copied().collect();
            Err(Error::Interrupted(format!(
                "stopped at partition {} without lowering it further; exposed to the new revision: {} (verified: {}). Resume with: {}",
                partition.unwrap_or(-1),
                if exposed.is_empty() { "none".into() } else { names(&run.name, &exposed) },
                if verified.is_empty() { "none".into() } else { names(&run.name, &verified) },
                run.resume_hint()
            )))
        }
        StepEnd::Passed => unreachable!("a passed step is not a failure"),
        StepEnd::Failed { ordinal, reason } => {
            let pods = run.tracker.pods();
            let diagnosis = match ordinal {
                Some(o) => {
                    crate::diagnose::pod(run.ctx, &model::pod_name(&run.name, o), pods.get(&o))
                        .await
                }
                None => vec![],
            };
            run.progress
                .println(format!("{} {reason}", ui::red("gate failed:")));
            for d in &diagnosis {
                run.progress.println(format!("  {d}"));
            }
            report.outcome = "failed".into();
            report.failure = Some(Failure {
                pod: ordinal.map(|o| model::pod_name(&run.name, o)),
                reason: reason.clone(),
                diagnosis,
            });
            let rollback = run.opts.on_failure == OnFailure::Rollback
                || (!run.opts.yes
                    && run.ctx.interactive
                    && ui::choose(
                        run.ctx,
                        "The canary stopped. What now?",
                        &["leave it paused here", "roll back"],
                    )
                    .ok()
                        == Some(1));
            if rollback {
                report.outcome = "rolled-back".into();
                run.progress.println("rolling back…");
                crate::commands::rollback::perform(
                    run.ctx,
                    &run.name,
                    Duration::from_secs(300).max(run.opts.step_timeout),
                    true,
                )
                .await?;
                emit_report(run.ctx, report, started)?;
                return Err(Error::stopped(format!(
                    "canary of statefulset \"{}\" failed ({reason}) and was rolled back",
                    run.name
                )));
            }
            emit_report(run.ctx, report, started)?;
            Err(Error::stopped(format!(
                "canary of statefulset \"{}\" stopped: {reason}. The partition stays at {}, so only pods already exposed run the new revision; undo with `kubectl sts-safe rollback {} -n {}` or fix and resume with `{}`",
                run.name,
                partition.unwrap_or(-1),
                run.name,
                run.ctx.namespace,
                run.resume_hint()
            )))
        }
    }
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
}
