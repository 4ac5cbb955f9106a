//! `kubectl sts-safe rollback STS`: restore the template of `currentRevision`, reset
//! the partition, and delete pods stuck on the bad revision — the step `kubectl rollout
//! undo` misses (kubernetes issue 67250) — then wait until every pod is Ready again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{DeleteParams, Preconditions};
use kube::ResourceExt;

use crate::cli::{DryRun, Output, RollbackArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::rollout::{self, RollbackPlan};
use crate::rollout::freeze_patch;
use crate::tracker::{guarded_patch, Interrupt, Poll, Tracker, WaitEnd};
use crate::ui;

/// A pod the controller will not replace by itself: not Ready on a revision other
/// than the one being restored.
fn stuck(pod: &Pod, restore_revision: &str) -> bool {
    model::revision(pod).is_some_and(|r| r != restore_revision)
        && !model::is_terminating(pod)
        && !model::is_ready(pod)
}

async fn plan(ctx: &Ctx, sts: &StatefulSet) -> Result<Option<(RollbackPlan, PodTemplateSpec)>> {
    let name = sts.name_any();
    let pods = ctx.statefulset_pods(sts).await?;
    let current = model::current_revision(sts).unwrap_or_default().to_string();
    if !model::rollout_pending(sts) {
        // The template may already be restored (a rollback stopped after its first
        // write): what remains is deleting pods stuck on the old bad revision.
        let left: Vec<&Pod> = pods.iter().filter(|p| stuck(p, &current)).collect();
        let Some(first) = left.first() else {
            return Ok(None);
        };
        return Ok(Some((
            RollbackPlan {
                api_version: "sts-safe/v1",
                kind: "RollbackPlan",
                statefulset: name,
                namespace: ctx.namespace.clone(),
                restore_revision: current,
                bad_revision: model::revision(first).unwrap_or_default().to_string(),
                changes: vec![],
                delete_pods: left.iter().map(|p| p.name_any()).collect(),
                warnings: vec![
                    "the template is already restored; finishing an interrupted rollback".into(),
                ],
            },
            sts.spec.template.clone(),
        )));
    }
    let bad = model::update_revision(sts).unwrap_or_default().to_string();
    let cr = ctx
        .api::<ControllerRevision>()
        .get(&current)
        .await
        .map_err(|e| ctx.err("get", "controllerrevisions", Some(&current), e))?;
    let template = rollout::template_from_revision(&cr.data.0)
        .ok_or_else(|| Error::stopped(format!("controllerrevision \"{current}\" holds no pod template; cannot roll back statefulset \"{name}\"")))?;
    let delete_pods = pods
        .iter()
        .filter(|p| stuck(p, &current))
        .map(|p| p.name_any())
        .collect();
    let mut warnings = vec![];
    if model::partition(sts) > 0 {
        warnings.push(format!(
            "the partition ({}) is reset to 0",
            model::partition(sts)
        ));
    }
    Ok(Some((
        RollbackPlan {
            api_version: "sts-safe/v1",
            kind: "RollbackPlan",
            statefulset: name,
            namespace: ctx.namespace.clone(),
            restore_revision: current,
            bad_revision: bad,
            changes: rollout::diff(&sts.spec.template, &template),
            delete_pods,
            warnings,
        },
        template,
    )))
}

async fn execute(
    ctx: &Ctx,
    sts: StatefulSet,
    plan: &RollbackPlan,
    template: &PodTemplateSpec,
    timeout: Duration,
) -> Result<()> {
    let name = sts.name_any();
    let mut interrupt = Interrupt::install();
    let mut tracker = Tracker::start(ctx, &sts).await?;
    let gen = sts.metadata.generation.unwrap_or(0);
    let restored = |s: &StatefulSet| {
        model::partition(s) == 0 && crate::rollout::same_template(&s.spec.template, template)
    };
    let patched = guarded_patch(
        ctx,
        &name,
        gen,
        tracker.statefulset(),
        false,
        restored,
        |rv| freeze_patch(rv, template, 0, &sts, None),
    )
    .await?;
    let gen = patched.metadata.generation.unwrap_or(0);
    ui::note(format!(
        "restored the template of revision {} and set partition 0",
        plan.restore_revision
    ));
    let started = Instant::now();
    let deadline = started + timeout;
    let replicas = model::replicas(&sts);
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let pods_api = ctx.api::<Pod>();
    loop {
        // Delete every pod stuck on the bad revision, once per pod uid.
        let stuck_now: Vec<Pod> = tracker
            .pods()
            .into_values()
            .filter(|p| {
                stuck(p, &plan.restore_revision) && !deleted.contains(&p.uid().unwrap_or_default())
            })
            .collect();
        for p in stuck_now {
            let uid = p.uid().unwrap_or_default();
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match pods_api.delete(&p.name_any(), &dp).await {
                Ok(_) => ui::note(format!(
                    "deleted stuck pod {} (not Ready on revision {})",
                    p.name_any(),
                    plan.bad_revision
                )),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(ctx.err("delete", "pods", Some(&p.name_any()), e)),
            }
            deleted.insert(uid);
        }
        let restore = plan.restore_revision.clone();
        let waited = tracker
            .wait_for(deadline, &mut interrupt, |t| {
                let Some(s) = t.statefulset() else {
                    return Poll::Done(Err("the statefulset was deleted".to_string()));
                };
                if s.metadata.generation.unwrap_or(0) > gen {
                    return Poll::Done(Err(
                        "the statefulset was changed by someone else during the rollback".into(),
                    ));
                }
                let pods = t.pods();
                if pods
                    .values()
                    .any(|p| stuck(p, &restore) && !deleted.contains(&p.uid().unwrap_or_default()))
                {
                    return Poll::Done(Ok(false)); // another stuck pod to delete
                }
                let all_good = model::live_range(&s).all(|o| {
                    pods.get(&o).is_some_and(|p| {
                        model::is_available(p) && model::revision(p) == Some(restore.as_str())
                    })
                });
                let promoted = s.metadata.generation.unwrap_or(0) == gen
                    && model::observed(&s)
                    && !model::rollout_pending(&s);
                if all_good && promoted && pods.len() as i32 >= replicas {
                    Poll::Done(Ok(true))
                } else {
                    Poll::Pending(None)
                }
            })
            .await;
        match waited {
            Ok(Ok(true)) => break,
            Ok(Ok(false)) => continue,
            Ok(Err(why)) => return Err(Error::stopped(format!("rollback of statefulset \"{name}\" stopped: {why}"))),
            Err(WaitEnd::Timeout) => {
                return Err(Error::Timeout {
                    what: format!("pods of statefulset \"{name}\" to be Ready on revision {}", plan.restore_revision),
                    after: format!("{}s", timeout.as_secs()),
                })
            }
            Err(WaitEnd::Interrupted) => {
                return Err(Error::Interrupted(format!(
                    "the old template is restored with partition 0; re-run `kubectl sts-safe rollback {name} -n {}` to delete pods still stuck on the bad revision and wait for the rest",
                    ctx.namespace
                )))
            }
        }
    }
    ui::note(format!(
        "{} statefulset \"{name}\" is back on revision {} with all {replicas} pods Ready ({} stuck pod(s) replaced, {:.1}s)",
        ui::green("rolled back:"),
        plan.restore_revision,
        deleted.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Rolls back without asking (used by canary on failure or at the operator's choice).
pub async fn perform(ctx: &Ctx, name: &str, timeout: Duration, show_plan: bool) -> Result<()> {
    let sts = ctx.get_statefulset(name).await?;
    let Some((plan, template)) = plan(ctx, &sts).await? else {
        ui::note(format!(
            "no rollout is pending on statefulset \"{name}\": nothing to roll back"
        ));
        return Ok(());
    };
    if show_plan {
        ui::note(rollout::render_rollback(&plan).trim_end());
    }
    execute(ctx, sts, &plan, &template, timeout).await
}

pub async fn run(ctx: &Ctx, args: &RollbackArgs) -> Result<i32> {
    let sts = ctx.get_statefulset(&args.name).await?;
    let Some((plan, template)) = plan(ctx, &sts).await? else {
        ui::note(format!(
            "no rollout is pending on statefulset \"{}\": nothing to roll back",
            args.name
        ));
        return Ok(0);
    };
    match ctx.output {
        Output::Text => ui::print_stdout(&rollout::render_rollback(&plan))?,
        o => ui::emit(o, &plan)?,
    }
    match args.mutate.dry_run {
        DryRun::Client => return Ok(0),
        DryRun::Server => {
            let gen = sts.metadata.generation.unwrap_or(0);
            guarded_patch(
                ctx,
                &args.name,
                gen,
                Some(sts.clone()),
                true,
                |_| false,
                |rv| freeze_patch(rv, &template, 0, &sts, None),
            )
            .await?;
            ui::note("server dry run: the API server accepted the rollback (nothing was written)");
            return Ok(0);
        }
        DryRun::None => {}
    }
    crate::access::require(ctx, crate::access::CANARY).await?;
    ui::confirm(
        ctx,
        args.mutate.yes,
        &format!(
            "Roll back statefulset \"{}\" to revision {}?",
            args.name, plan.restore_revision
        ),
    )?;
    execute(ctx, sts, &plan, &template, args.timeout).await?;
    Ok(0)
}
