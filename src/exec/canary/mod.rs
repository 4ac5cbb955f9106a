//! The canary step engine: freeze the partition with the new template, then lower it
//! step by step, waiting (watch-driven) for every exposed pod to pass its gate.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::context::Ctx;
use crate::error::{exit, Error, Result};
use crate::exec::explain;
use crate::exec::hooks;
use crate::exec::interrupt::Interrupt;
use crate::exec::metric_gate::{MetricGate, Subject};
use crate::exec::rollback;
use crate::exec::watch::{Poll, Tracker, WaitEnd};
use crate::exec::write::guarded_patch;
use crate::model;
use crate::plan::canary::{
    CanaryPlan, CanaryReport, Failure, Mechanism, OnFailure, Outcome, StepResult,
};
use crate::plan::conditions::{self, CanaryStep, Observed, PodProgress, StepState};
use crate::plan::gate::{Gate, GateStatus};
use crate::plan::metrics::{MetricBook, MetricFailure, Verdict};
use crate::plan::patch::{freeze_patch, partition_patch};
use crate::plan::template::same_template;
use crate::render::{self, canary::pod_names as names};
use crate::ui::{self, Progress};

/// How the run behaves, resolved from flags and the recorded settings.
pub struct CanaryOptions {
    pub soak: Duration,
    pub step_timeout: Duration,
    pub max_restarts: i32,
    pub check_cmd: Option<String>,
    /// The Prometheus gate (`--fail-if`, `--require`), when asked for.
    pub metrics: Option<MetricGate>,
    /// Hooks run before a pod is taken down and after it passed its gates.
    pub before_pod: Option<String>,
    pub after_pod: Option<String>,
    pub on_failure: OnFailure,
    pub yes: bool,
    /// The run's settings, recorded on the StatefulSet with the freeze so `--resume` keeps them.
    pub record: String,
}

mod ondelete;

pub use ondelete::execute as execute_ondelete;

enum StepEnd {
    Passed,
    Failed {
        ordinal: Option<i32>,
        reason: String,
        /// What the metric gate saw, when it stopped the pod.
        metric: Option<MetricFailure>,
    },
    Interrupted,
}

impl StepEnd {
    fn failed(ordinal: Option<i32>, reason: String) -> Self {
        StepEnd::Failed {
            ordinal,
            reason,
            metric: None,
        }
    }
}

struct CanaryRun<'a> {
    ctx: &'a Ctx,
    name: String,
    replicas: i32,
    generation: i64,
    update_revision: String,
    tracker: Tracker,
    interrupt: Interrupt,
    progress: Progress,
    opts: CanaryOptions,
    passed: BTreeSet<i32>,
}

/// How long `--before-pod` and `--after-pod` may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

fn last_line(out: &str) -> String {
    match out.trim().lines().last() {
        Some(l) if !l.is_empty() => format!(": {l}"),
        _ => String::new(),
    }
}

/// What the operator chose between two steps.
enum Between {
    Continue,
    ContinueAll,
    Stop,
    RollBack,
}

impl<'a> CanaryRun<'a> {
    async fn begin(
        ctx: &'a Ctx,
        sts: &StatefulSet,
        replicas: i32,
        opts: CanaryOptions,
        interrupt: &Interrupt,
    ) -> Result<CanaryRun<'a>> {
        Ok(CanaryRun {
            ctx,
            name: sts.name_any(),
            replicas,
            generation: sts.metadata.generation.unwrap_or(0),
            update_revision: String::new(),
            tracker: Tracker::start(ctx, sts).await?,
            interrupt: interrupt.clone(),
            progress: Progress::new(ctx),
            opts,
            passed: BTreeSet::new(),
        })
    }

    /// Waits until the controller has seen our last write and learns the update revision.
    async fn observe(&mut self, interrupt: &mut Interrupt) -> Result<()> {
        let gen = self.generation;
        let observed = self
            .tracker
            .wait_for(Instant::now() + Duration::from_secs(60), interrupt, |t| {
                match conditions::controller_observed(t.statefulset().as_ref(), gen) {
                    Observed::Pending => Poll::Pending(None),
                    Observed::Revision(u) => Poll::Done(Ok(u)),
                    Observed::MovedOn(g) => Poll::Done(Err(g)),
                }
            })
            .await;
        let name = &self.name;
        self.update_revision = match observed {
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
            Err(WaitEnd::Interrupted) => {
                return Err(Error::Interrupted(format!(
                    "before the first step; resume with: {}",
                    self.resume_hint()
                )))
            }
        };
        Ok(())
    }

    /// Records a passed step in the report.
    fn record_pass(
        &mut self,
        report: &mut CanaryReport,
        step: &crate::plan::steps::Step,
        step_started: Instant,
        queries_before: Option<u64>,
    ) {
        let passed_at = Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        self.passed.extend(step.ordinals.iter().copied());
        report.steps.push(StepResult {
            number: step.number,
            partition: step.partition,
            ordinals: step.ordinals.clone(),
            seconds: step_started.elapsed().as_secs_f64(),
            prometheus_queries: self
                .queries_sent()
                .zip(queries_before)
                .map(|(after, before)| after - before),
            passed_at,
        });
    }

    /// Asks the operator what to do after a passed step (`next` says what comes).
    fn ask_between(&self, step: usize, next: &str) -> Between {
        let prompt = format!(
            "step {step} passed ({} Ready on the new revision). Next: {next}",
            names(
                &self.name,
                &self.passed.iter().rev().copied().collect::<Vec<_>>()
            ),
        );
        match ui::choose(
            self.ctx,
            &prompt,
            &[
                "continue",
                "continue all remaining steps",
                "stop here",
                "roll back",
            ],
        ) {
            Ok(0) => Between::Continue,
            Ok(1) => Between::ContinueAll,
            Ok(3) => Between::RollBack,
            _ => Between::Stop,
        }
    }

    /// Runs a `--before-pod` / `--after-pod` hook for the ordinal; Some = why the run stops.
    async fn hook(&self, flag: &str, cmd: Option<&str>, ordinal: i32) -> Option<StepEnd> {
        let cmd = cmd?;
        let sts = self.tracker.statefulset()?;
        let env = hooks::pod_env(&sts, &self.ctx.namespace, ordinal);
        let pod = model::pod_name(&self.name, ordinal);
        match hooks::run(flag, cmd, &env, HOOK_TIMEOUT).await {
            Ok(out) => {
                self.progress
                    .println(format!("{pod}: {flag} ok{}", last_line(&out)));
                None
            }
            Err(e) => Some(StepEnd::failed(
                None,
                format!("{pod}: {e}; stopped before going further"),
            )),
        }
    }

    fn gate(&self, soak: Duration) -> Gate<'_> {
        Gate {
            update_revision: &self.update_revision,
            soak,
            max_restarts: self.opts.max_restarts,
        }
    }

    /// The step over `ordinals` as [`CanaryStep`] judges it.
    fn step<'s>(
        &'s self,
        ordinals: &'s [i32],
        checked: &'s BTreeSet<i32>,
        metrics: Option<&'s MetricBook>,
    ) -> CanaryStep<'s> {
        CanaryStep {
            statefulset: &self.name,
            generation: self.generation,
            gate: self.gate(self.opts.soak),
            ordinals,
            passed: &self.passed,
            check_cmd: self.opts.check_cmd.is_some(),
            checked,
            metrics,
        }
    }

    /// Waits until every ordinal of `ordinals` passes its gate (and `--check-cmd`)
    /// while earlier canaries stay healthy and nobody else changes the StatefulSet.
    /// The judging is [`CanaryStep::evaluate`]; this loop shows it and runs the checks.
    async fn wait_step(&mut self, ordinals: &[i32]) -> StepEnd {
        let deadline = Instant::now() + self.opts.step_timeout;
        let lines: BTreeMap<i32, ui::Line> = ordinals
            .iter()
            .map(|o| (*o, self.progress.line(model::pod_name(&self.name, *o))))
            .collect();
        let started = Instant::now();
        let mut checked: BTreeSet<i32> = BTreeSet::new();
        let mut last_check_error: BTreeMap<i32, String> = BTreeMap::new();
        let mut book = self
            .opts
            .metrics
            .as_ref()
            .map(|m| MetricBook::new(m.cadence));
        let passed_note = match (&self.opts.check_cmd, &self.opts.metrics) {
            (Some(_), Some(m)) => format!(" (check ok, metrics {0}/{0})", m.cadence.passes),
            (Some(_), None) => " (check ok)".to_string(),
            (None, Some(m)) => format!(" (metrics {0}/{0})", m.cadence.passes),
            (None, None) => String::new(),
        };
        loop {
            if self.interrupt.is_set() {
                return StepEnd::Interrupted;
            }
            let sts = self.tracker.statefulset();
            let pods = self.tracker.pods();
            let now = Timestamp::now();
            let step = self.step(ordinals, &checked, book.as_ref());
            let (state, shown) = step.evaluate(sts.as_ref(), &pods, now);
            for (o, line) in &shown {
                match line {
                    PodProgress::Waiting(t) => lines[o].set(t.clone()),
                    PodProgress::Finished(t) => lines[o].finish(t.clone()),
                    PodProgress::Passed => lines[o].finish(format!(
                        "passed in {:.1}s{passed_note}",
                        started.elapsed().as_secs_f64()
                    )),
                }
            }
            let (mut wake, to_check) = match state {
                StepState::Passed => return StepEnd::Passed,
                StepState::Failed { ordinal, reason } => return StepEnd::failed(ordinal, reason),
                StepState::Waiting { wake, to_check } => (wake, to_check),
            };
            if let (Some(gate), Some(book)) = (&self.opts.metrics, book.as_mut()) {
                let soaking = self.gate(self.opts.soak);
                let mut evaluated = false;
                for &o in ordinals {
                    let ready = matches!(
                        soaking.evaluate(pods.get(&o), now),
                        GateStatus::Soaking(_) | GateStatus::Passed
                    );
                    if !ready {
                        // Counted from Ready on: a pod that is not Ready starts again.
                        book.forget(o);
                        continue;
                    }
                    let at = Instant::now();
                    if book.due(o, at) {
                        let subject = Subject::of(&self.name, &self.ctx.namespace, o, pods.get(&o));
                        let verdict = gate.evaluate(&subject).await;
                        book.record(o, at, &verdict);
                        evaluated = true;
                        if let Verdict::Fail(f) = verdict {
                            lines[&o].finish(format!("FAILED: {}", f.reason()));
                            return StepEnd::Failed {
                                ordinal: Some(o),
                                reason: format!(
                                    "{}: {}",
                                    model::pod_name(&self.name, o),
                                    f.reason()
                                ),
                                metric: Some(f),
                            };
                        }
                    }
                    let next = book.until_due(o, Instant::now());
                    wake = Some(wake.map_or(next, |w| w.min(next)));
                }
                if evaluated {
                    continue;
                }
            }
            if let (Some(cmd), Some(sts)) = (self.opts.check_cmd.clone(), sts.as_ref()) {
                for o in &to_check {
                    lines[o].set(match last_check_error.get(o) {
                        Some(e) => format!("Ready, check failing ({e})"),
                        None => "Ready, running --check-cmd".into(),
                    });
                }
                let mut newly_checked = false;
                for o in to_check {
                    let remaining = deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_secs(1));
                    let env = hooks::pod_env(sts, &self.ctx.namespace, o);
                    match hooks::run("--check-cmd", &cmd, &env, remaining).await {
                        Ok(_) => {
                            checked.insert(o);
                            last_check_error.remove(&o);
                            newly_checked = true;
                        }
                        Err(e) => {
                            last_check_error.insert(o, e);
                            wake = Some(Duration::from_secs(2));
                        }
                    }
                }
                if newly_checked {
                    // Judge the step again at once: it may have passed.
                    continue;
                }
            }
            if Instant::now() >= deadline {
                let step = self.step(ordinals, &checked, book.as_ref());
                let stuck = step.stuck(&pods, now);
                let first = stuck.first().copied();
                let state = first
                    .map(|o| {
                        let g = step.gate.evaluate(pods.get(&o), now);
                        let metric = book.as_ref().and_then(|b| b.why_not(o));
                        match (&g, last_check_error.get(&o), metric) {
                            (GateStatus::Passed, Some(e), _) => e.clone(),
                            (GateStatus::Passed, None, Some(m)) => m,
                            _ => conditions::describe(&g, 0),
                        }
                    })
                    .unwrap_or_default();
                let metric = first.and_then(|o| {
                    let b = book.as_ref()?;
                    b.why_not(o)?;
                    b.last_hold(o).cloned()
                });
                return StepEnd::Failed {
                    metric,
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

    /// Before a later step: every pod already updated is evaluated once more, so that a
    /// problem that began after a pod passed stops the canary before it goes further.
    async fn recheck_metrics(&self, next_step: usize) -> Option<StepEnd> {
        let gate = self.opts.metrics.as_ref()?;
        let pods = self.tracker.pods();
        let ordinals: Vec<i32> = self.passed.iter().rev().copied().collect();
        let verdicts = futures::future::join_all(ordinals.iter().map(|&o| {
            let subject = Subject::of(&self.name, &self.ctx.namespace, o, pods.get(&o));
            async move { gate.evaluate(&subject).await }
        }))
        .await;
        for (o, verdict) in ordinals.into_iter().zip(verdicts) {
            if let Verdict::Hold(f) | Verdict::Fail(f) = verdict {
                return Some(StepEnd::Failed {
                    ordinal: Some(o),
                    reason: format!(
                        "{} passed an earlier step, but before step {next_step} its metric gate says: {}",
                        model::pod_name(&self.name, o),
                        f.reason()
                    ),
                    metric: Some(f),
                });
            }
        }
        None
    }

    fn queries_sent(&self) -> Option<u64> {
        self.opts
            .metrics
            .as_ref()
            .map(|m| m.prometheus.queries_sent())
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
    opts: CanaryOptions,
) -> Result<i32> {
    let started = Instant::now();
    let name = sts.name_any();
    let mut interrupt = Interrupt::install();
    let mut run = CanaryRun::begin(ctx, &sts, plan.replicas, opts, &interrupt).await?;
    let mut report = CanaryReport::new(plan);

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
    run.observe(&mut interrupt).await?;
    report.update_revision = Some(run.update_revision.clone());

    let partition_now = run
        .tracker
        .statefulset()
        .map(|s| model::partition(&s))
        .unwrap_or(0);
    if report.plan.resume {
        let exposed = crate::plan::canary::exposed(&sts, partition_now);
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
        ctx.report_step(i + 1, steps.len());
        let step_started = Instant::now();
        let queries_before = run.queries_sent();
        if !run.passed.is_empty() {
            if let Some(end) = run.recheck_metrics(step.number).await {
                return finish_failed(&mut run, &mut report, end, started).await;
            }
        }
        let before = run.opts.before_pod.clone();
        for &o in &step.ordinals {
            if let Some(end) = run.hook("--before-pod", before.as_deref(), o).await {
                return finish_failed(&mut run, &mut report, end, started).await;
            }
        }
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
                let end = StepEnd::failed(None, e.to_string());
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
            StepEnd::Passed => {}
            end => return finish_failed(&mut run, &mut report, end, started).await,
        }
        let after = run.opts.after_pod.clone();
        for &o in &step.ordinals {
            if let Some(end) = run.hook("--after-pod", after.as_deref(), o).await {
                return finish_failed(&mut run, &mut report, end, started).await;
            }
        }
        run.record_pass(&mut report, step, step_started, queries_before);
        let last = i + 1 == steps.len();
        if !last && !auto {
            let next = &steps[i + 1];
            let next = format!(
                "partition → {}, updating {}",
                next.partition,
                names(&name, &next.ordinals)
            );
            match run.ask_between(step.number, &next) {
                Between::Continue => {}
                Between::ContinueAll => auto = true,
                Between::RollBack => {
                    report.outcome = Outcome::RolledBack;
                    drop(run);
                    rollback::perform(ctx, &name, Duration::from_secs(300), false).await?;
                    return emit_report(ctx, &mut report, started, exit::OK).map(|_| 0);
                }
                Between::Stop => {
                    report.outcome = Outcome::Stopped;
                    report.partition = Some(partition);
                    run.progress.println(format!(
                        "stopped at your request after step {}; resume with: {}",
                        step.number,
                        run.resume_hint()
                    ));
                    return emit_report(ctx, &mut report, started, exit::OK).map(|_| 0);
                }
            }
        }
    }

    finish_done(run, report, &mut interrupt, started).await
}

/// After the last step: waits (up to 60 s) for the controller to promote the update
/// revision, then reports the run done.
async fn finish_done(
    mut run: CanaryRun<'_>,
    mut report: CanaryReport,
    interrupt: &mut Interrupt,
    started: Instant,
) -> Result<i32> {
    // The controller promotes the update revision once every pod runs it (under
    // OnDelete, older servers never do: kubernetes 73492).
    let (rev, replicas) = (run.update_revision.clone(), run.replicas);
    let stays_on_delete = report.plan.restore_strategy.as_deref() == Some("OnDelete");
    let done = if stays_on_delete {
        Ok(())
    } else {
        run.tracker
            .wait_for(
                Instant::now() + Duration::from_secs(60),
                interrupt,
                |t| match t.statefulset() {
                    Some(s) if conditions::revision_promoted(&s, &rev, replicas) => Poll::Done(()),
                    _ => Poll::Pending(None),
                },
            )
            .await
    };
    if done.is_err() {
        report.plan.warnings.push("every pod passed, but the controller has not yet reported currentRevision = updateRevision".into());
    }
    report.partition = Some(0);
    run.progress.println(format!(
        "{} statefulset \"{}\" now runs revision {} on all {} pods ({:.1}s)",
        render::green("done:"),
        run.name,
        run.update_revision,
        run.replicas,
        started.elapsed().as_secs_f64()
    ));
    emit_report(run.ctx, &mut report, started, exit::OK)?;
    Ok(0)
}

/// Prints the report, which ends with the run's exit code and the lock it held.
fn emit_report(
    ctx: &Ctx,
    report: &mut CanaryReport,
    started: Instant,
    exit_code: i32,
) -> Result<()> {
    report.seconds = started.elapsed().as_secs_f64();
    report.exit_code = exit_code;
    report.lock = ctx.lock_holder();
    render::show(ctx.output, &*report)
}

async fn finish_failed(
    run: &mut CanaryRun<'_>,
    report: &mut CanaryReport,
    end: StepEnd,
    started: Instant,
) -> Result<i32> {
    let partition = run.tracker.statefulset().map(|s| model::partition(&s));
    report.partition = partition;
    match end {
        StepEnd::Interrupted => {
            report.outcome = Outcome::Interrupted;
            emit_report(run.ctx, report, started, exit::INTERRUPTED)?;
            let exposed: Vec<i32> = match (&run.tracker.statefulset(), partition) {
                (Some(s), Some(p)) => crate::plan::canary::exposed(s, p),
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
        StepEnd::Failed {
            ordinal,
            reason,
            metric,
        } => {
            let pods = run.tracker.pods();
            let diagnosis = match (&metric, ordinal) {
                (Some(m), _) => m.diagnosis(),
                (None, Some(o)) => {
                    explain::pod_failure(run.ctx, &model::pod_name(&run.name, o), pods.get(&o))
                        .await
                }
                (None, None) => vec![],
            };
            run.progress
                .println(format!("{} {reason}", render::red("gate failed:")));
            for d in &diagnosis {
                run.progress.println(format!("  {d}"));
            }
            report.outcome = Outcome::Failed;
            report.failure = Some(Failure {
                pod: ordinal.map(|o| model::pod_name(&run.name, o)),
                reason: reason.clone(),
                diagnosis,
                metric,
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
                report.outcome = Outcome::RolledBack;
                run.progress.println("rolling back…");
                rollback::perform(
                    run.ctx,
                    &run.name,
                    Duration::from_secs(300).max(run.opts.step_timeout),
                    true,
                )
                .await?;
                emit_report(run.ctx, report, started, exit::STOPPED)?;
                return Err(Error::stopped(format!(
                    "canary of statefulset \"{}\" failed ({reason}) and was rolled back",
                    run.name
                )));
            }
            emit_report(run.ctx, report, started, exit::STOPPED)?;
            if report.plan.mechanism == Mechanism::OnDelete {
                return Err(Error::stopped(format!(
                    "canary of statefulset \"{}\" stopped: {reason}. It stays on updateStrategy OnDelete (the strategy to restore is recorded on it), so only pods already replaced run the new revision; undo with `kubectl sts-safe rollback {} -n {}` or fix and resume with `{}`",
                    run.name,
                    run.name,
                    run.ctx.namespace,
                    run.resume_hint()
                )));
            }
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
