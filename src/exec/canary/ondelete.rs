//! The canary's `OnDelete` engine (`--order primary-last`, and StatefulSets that use
//! `OnDelete`): one guarded write sets the new template with `updateStrategy: OnDelete`
//! and records the strategy to restore; then each pod in the plan's order gets
//! `--before-pod`, a uid-guarded delete, its gates and `--after-pod`, one pod at a time;
//! the last write restores the strategy. The decisions are in `plan::ondelete`.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use serde_json::Value;

use super::{emit_report, finish_done, finish_failed, Between, CanaryOptions, CanaryRun, StepEnd};
use crate::context::Ctx;
use crate::error::{exit, Error, Result};
use crate::exec::interrupt::Interrupt;
use crate::exec::rollback;
use crate::exec::write::{delete_pod_if_unchanged, guarded_patch};
use crate::model;
use crate::plan::canary::{CanaryPlan, CanaryReport, Outcome};
use crate::plan::ondelete;
use crate::plan::template::same_template;

impl CanaryRun<'_> {
    /// Deletes the pod of `ordinal` unless it already runs the update revision: a
    /// uid-guarded delete, so a pod someone else has just replaced is never deleted.
    async fn replace(&self, ordinal: i32) -> Result<()> {
        let pods = self.tracker.pods();
        let Some(pod) = pods.get(&ordinal) else {
            return Ok(()); // already gone: the controller is re-creating it
        };
        if model::revision(pod) == Some(self.update_revision.as_str()) || model::is_terminating(pod)
        {
            return Ok(());
        }
        // Gone or replaced since it was read: the gate judges what is there now.
        delete_pod_if_unchanged(self.ctx, pod).await.map(|_| ())
    }
}

/// Runs the plan under `OnDelete`; `template` is the new template (None when resuming),
/// `original` the strategy to restore at the end.
pub async fn execute(
    ctx: &Ctx,
    sts: StatefulSet,
    template: Option<PodTemplateSpec>,
    plan: CanaryPlan,
    opts: CanaryOptions,
    original: Value,
) -> Result<i32> {
    let started = Instant::now();
    let name = sts.name_any();
    let mut interrupt = Interrupt::install();
    let mut run = CanaryRun::begin(ctx, &sts, plan.replicas, opts, &interrupt).await?;
    let mut report = CanaryReport::new(plan);

    let frozen = |s: &StatefulSet| {
        model::strategy_type(s) == "OnDelete"
            && ondelete::recorded_strategy(s).is_some()
            && template
                .as_ref()
                .is_none_or(|t| same_template(&s.spec.template, t))
    };
    if !frozen(&sts) {
        let s = guarded_patch(
            ctx,
            &name,
            run.generation,
            run.tracker.statefulset(),
            false,
            frozen,
            |rv| {
                ondelete::freeze_patch(
                    rv,
                    template.as_ref(),
                    &sts,
                    &original,
                    Some(&run.opts.record),
                )
            },
        )
        .await?;
        run.generation = s.metadata.generation.unwrap_or(0);
        run.progress.println(format!(
            "set {}updateStrategy OnDelete (no pod changes yet); {} is restored at the end",
            if template.is_some() {
                "the new template and "
            } else {
                ""
            },
            report
                .plan
                .restore_strategy
                .as_deref()
                .unwrap_or("the original strategy")
        ));
    }
    run.observe(&mut interrupt).await?;
    report.update_revision = Some(run.update_revision.clone());

    // Pods already on the update revision (a resumed run) are re-verified first.
    let order: Vec<i32> = report
        .plan
        .steps
        .iter()
        .flat_map(|s| s.ordinals.clone())
        .collect();
    let done: Vec<i32> = {
        let pods = run.tracker.pods();
        model::live_range(&sts)
            .rev()
            .filter(|o| !order.contains(o))
            .filter(|o| {
                pods.get(o)
                    .is_some_and(|p| model::revision(p) == Some(run.update_revision.as_str()))
            })
            .collect()
    };
    if !done.is_empty() {
        run.progress.println(format!(
            "re-verifying pods already on the new revision: {}",
            super::names(&name, &done)
        ));
        match run.wait_step(&done).await {
            StepEnd::Passed => run.passed.extend(done),
            end => return finish_failed(&mut run, &mut report, end, started).await,
        }
    }

    let steps = report.plan.steps.clone();
    let mut auto = run.opts.yes;
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        if run.interrupt.is_set() {
            return finish_failed(&mut run, &mut report, StepEnd::Interrupted, started).await;
        }
        ctx.report_step(i + 1, total);
        let step_started = Instant::now();
        let queries_before = run.queries_sent();
        let o = step.ordinals[0];
        if !run.passed.is_empty() {
            if let Some(end) = run.recheck_metrics(step.number).await {
                return finish_failed(&mut run, &mut report, end, started).await;
            }
        }
        let before = run.opts.before_pod.clone();
        if let Some(end) = run.hook("--before-pod", before.as_deref(), o).await {
            return finish_failed(&mut run, &mut report, end, started).await;
        }
        run.replace(o).await?;
        run.progress.println(format!(
            "step {}/{total}: deleted {}{}",
            step.number,
            model::pod_name(&name, o),
            if report.plan.primary.as_deref() == Some(model::pod_name(&name, o).as_str()) {
                " (the primary, last)"
            } else {
                ""
            }
        ));
        match run.wait_step(&step.ordinals).await {
            StepEnd::Passed => {}
            end => return finish_failed(&mut run, &mut report, end, started).await,
        }
        let after = run.opts.after_pod.clone();
        if let Some(end) = run.hook("--after-pod", after.as_deref(), o).await {
            return finish_failed(&mut run, &mut report, end, started).await;
        }
        run.record_pass(&mut report, step, step_started, queries_before);
        if i + 1 < total && !auto {
            let next = format!(
                "delete {}",
                model::pod_name(&name, steps[i + 1].ordinals[0])
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

    // Every pod runs the new revision: the original strategy back, the record removed.
    let gen = run.generation;
    let restored = guarded_patch(
        ctx,
        &name,
        gen,
        run.tracker.statefulset(),
        false,
        |s| ondelete::restored(s, &original),
        |_| ondelete::restore_patch(gen, &original, true),
    )
    .await;
    match restored {
        Ok(s) => run.generation = s.metadata.generation.unwrap_or(0),
        Err(e @ Error::Conflict { .. }) => {
            let end = StepEnd::failed(None, e.to_string());
            return finish_failed(&mut run, &mut report, end, started).await;
        }
        Err(e) => return Err(e),
    }
    run.progress.println(format!(
        "restored updateStrategy {}",
        report.plan.restore_strategy.as_deref().unwrap_or("")
    ));
    finish_done(run, report, &mut interrupt, started).await
}
