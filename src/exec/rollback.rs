//! The rollback engine: restore the template of `currentRevision` with partition 0,
//! delete pods stuck on the bad revision (kubernetes issue 67250) once per uid, and wait
//! until every pod is Ready on the restored revision.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::ResourceExt;

use super::interrupt::Interrupt;
use super::watch::{Poll, Tracker, WaitEnd};
use super::write::{delete_pod_if_unchanged, guarded_patch};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::ondelete;
use crate::plan::patch::freeze_patch;
use crate::plan::rollback::{self, stuck, RollbackPlan};
use crate::plan::template::{same_template, template_from_revision};
use crate::render::{self, Report};

/// Reads what the rollback plan needs (pods, and the ControllerRevision of the current
/// revision while a rollout is pending) and plans it; None when there is nothing to do.
pub async fn gather_plan(
    ctx: &Ctx,
    sts: &StatefulSet,
) -> Result<Option<(RollbackPlan, PodTemplateSpec)>> {
    let name = sts.name_any();
    let pods = ctx.statefulset_pods(sts).await?;
    let restore = if rollback::needs_revision(sts) {
        let current = model::current_revision(sts).unwrap_or_default().to_string();
        let cr = ctx
            .api::<ControllerRevision>()
            .get(&current)
            .await
            .map_err(|e| ctx.err("get", "controllerrevisions", Some(&current), e))?;
        Some(template_from_revision(&cr.data.0).ok_or_else(|| {
            Error::stopped(format!("controllerrevision \"{current}\" holds no pod template; cannot roll back statefulset \"{name}\""))
        })?)
    } else {
        None
    };
    Ok(rollback::plan(sts, &pods, &ctx.namespace, restore.as_ref()))
}

pub async fn execute(
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
    // Under OnDelete (or after an interrupted OnDelete canary) the strategy to keep is
    // written with the template; otherwise partition 0.
    let with_strategy = plan.on_delete || ondelete::recorded_strategy(&sts).is_some();
    let restored = |s: &StatefulSet| {
        let strategy = if plan.on_delete {
            model::strategy_type(s) == "OnDelete"
        } else {
            model::strategy_type(s) == "RollingUpdate" && model::partition(s) == 0
        };
        strategy
            && ondelete::recorded_strategy(s).is_none()
            && same_template(&s.spec.template, template)
    };
    let patched = guarded_patch(
        ctx,
        &name,
        gen,
        tracker.statefulset(),
        false,
        restored,
        |rv| {
            if with_strategy {
                ondelete::rollback_patch(rv, template, &sts)
            } else {
                freeze_patch(rv, template, 0, &sts, None)
            }
        },
    )
    .await?;
    let gen = patched.metadata.generation.unwrap_or(0);
    render::note(format!(
        "restored the template of revision {}{}",
        plan.restore_revision,
        if plan.on_delete {
            " (updateStrategy OnDelete: the pods on the bad revision are deleted one at a time)"
        } else {
            " and set partition 0"
        }
    ));
    let started = Instant::now();
    let deadline = started + timeout;
    let replicas = model::replicas(&sts);
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    loop {
        // Delete every pod stuck on the bad revision, once per pod uid.
        let live = model::live_range(&sts);
        let stuck_now: Vec<Pod> = if plan.on_delete {
            let pods = tracker.pods();
            rollback::next_ondelete_delete(&pods, live.clone(), &plan.restore_revision, &deleted)
                .cloned()
                .into_iter()
                .collect()
        } else {
            tracker
                .pods()
                .into_values()
                .filter(|p| {
                    stuck(p, &plan.restore_revision)
                        && !deleted.contains(&p.uid().unwrap_or_default())
                })
                .collect()
        };
        for p in stuck_now {
            let uid = p.uid().unwrap_or_default();
            if delete_pod_if_unchanged(ctx, &p).await? {
                render::note(if plan.on_delete {
                    format!(
                        "deleted pod {} (on revision {})",
                        p.name_any(),
                        plan.bad_revision
                    )
                } else {
                    format!(
                        "deleted stuck pod {} (not Ready on revision {})",
                        p.name_any(),
                        plan.bad_revision
                    )
                });
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
                let next = if plan.on_delete {
                    rollback::next_ondelete_delete(&pods, live.clone(), &restore, &deleted)
                        .is_some()
                } else {
                    pods.values().any(|p| {
                        stuck(p, &restore) && !deleted.contains(&p.uid().unwrap_or_default())
                    })
                };
                if next {
                    return Poll::Done(Ok(false)); // another pod to delete
                }
                if rollback::restored(&s, &pods, &restore, gen) {
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
    render::note(format!(
        "{} statefulset \"{name}\" is back on revision {} with all {replicas} pods Ready ({} stuck pod(s) replaced, {:.1}s)",
        render::green("rolled back:"),
        plan.restore_revision,
        deleted.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Rolls back without asking (used by canary on failure or at the operator's choice).
pub async fn perform(ctx: &Ctx, name: &str, timeout: Duration, show_plan: bool) -> Result<()> {
    let sts = ctx.get_statefulset(name).await?;
    let Some((plan, template)) = gather_plan(ctx, &sts).await? else {
        render::note(format!(
            "no rollout is pending on statefulset \"{name}\": nothing to roll back"
        ));
        return Ok(());
    };
    if show_plan {
        render::note(plan.text().trim_end());
    }
    execute(ctx, sts, &plan, &template, timeout).await
}
