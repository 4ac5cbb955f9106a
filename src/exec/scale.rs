//! The scale step engine: replicas set one step at a time (generation-guarded), each
//! step judged by [`ScaleStep`]; a step that does not become healthy stops with its
//! cause and puts replicas back to the last healthy count.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use super::interrupt::Interrupt;
use super::read::list_all;
use super::watch::{Poll, Tracker, WaitEnd};
use super::write::guarded_patch;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::conditions::{PodProgress, ScaleState, ScaleStep};
use crate::plan::doctor::{self, DoctorInputs};
use crate::plan::patch::replicas_patch;
use crate::plan::scale::{self, ScalePlan, ScaleReport};
use crate::render;
use crate::ui::{self, Progress};

/// How the steps are paced.
pub struct ScaleOptions {
    pub soak: Duration,
    pub step_timeout: Duration,
}

/// Sets replicas step by step; each step waits until the new pods are Ready (and their
/// PVCs Bound) or the removed ones are gone, while the others stay Ready.
pub async fn execute(
    ctx: &Ctx,
    sts: StatefulSet,
    plan: ScalePlan,
    args: &ScaleOptions,
) -> Result<i32> {
    let name = sts.name_any();
    let started = Instant::now();
    let mut interrupt = Interrupt::install();
    let mut tracker = Tracker::start(ctx, &sts).await?;
    let progress = Progress::new(ctx);
    let mut gen = sts.metadata.generation.unwrap_or(0);
    let start = model::ordinal_start(&sts);
    let mut healthy = plan.from;
    for (i, &target) in plan.steps.iter().enumerate() {
        ctx.report_step(i + 1, plan.steps.len());
        if interrupt.is_set() {
            return Err(Error::Interrupted(format!(
                "stopped between steps at {healthy} replicas; re-run `kubectl sts-safe scale {name} -n {} --replicas {}` to continue",
                ctx.namespace, plan.to
            )));
        }
        let s = guarded_patch(
            ctx,
            &name,
            gen,
            tracker.statefulset(),
            false,
            |s| s.spec.replicas == Some(target),
            |_| replicas_patch(gen, target),
        )
        .await?;
        gen = s.metadata.generation.unwrap_or(0);
        progress.println(format!(
            "step {}/{}: replicas → {target}",
            i + 1,
            plan.steps.len()
        ));
        let (lo, hi) = (healthy.min(target), healthy.max(target));
        let changing: Vec<i32> = (start + lo..start + hi).collect();
        let lines: Vec<(i32, ui::Line)> = changing
            .iter()
            .map(|o| (*o, progress.line(model::pod_name(&name, *o))))
            .collect();
        let up = target > healthy;
        let soak = args.soak;
        let deadline = Instant::now() + args.step_timeout;
        let step = ScaleStep {
            statefulset: &name,
            generation: gen,
            up,
            changing: &changing,
            staying: start..start + target.min(healthy),
            soak,
        };
        let waited = tracker
            .wait_for(deadline, &mut interrupt, |t| {
                let (state, shown) =
                    step.evaluate(t.statefulset().as_ref(), &t.pods(), Timestamp::now());
                for (o, line) in &lines {
                    match shown.get(o) {
                        Some(PodProgress::Finished(text)) => line.finish(text.clone()),
                        Some(PodProgress::Waiting(text)) => line.set(text.clone()),
                        Some(PodProgress::Passed) => line.finish("Ready"),
                        None => {}
                    }
                }
                match state {
                    ScaleState::Done => Poll::Done(Ok(())),
                    ScaleState::Failed(why) => Poll::Done(Err(why)),
                    ScaleState::Waiting(wake) => Poll::Pending(wake),
                }
            })
            .await;
        match waited {
            Ok(Ok(())) if up => {
                ensure_bound(ctx, &name, &sts, &changing).await?;
                healthy = target;
            }
            Ok(Ok(())) => healthy = target,
            Ok(Err(why)) => return Err(Error::stopped(format!("scale of statefulset \"{name}\" stopped at {healthy} replicas: {why}"))),
            Err(WaitEnd::Interrupted) => {
                return Err(Error::Interrupted(format!(
                    "stopped during the step to {target} replicas (the controller finishes that step by itself); re-run `kubectl sts-safe scale {name} -n {} --replicas {}` to continue",
                    ctx.namespace, plan.to
                )))
            }
            Err(WaitEnd::Timeout) => {
                let cause = stuck_cause(ctx, &tracker, &name, &changing).await;
                // Leave replicas at the last healthy count.
                let s = guarded_patch(ctx, &name, gen, tracker.statefulset(), false, |s| s.spec.replicas == Some(healthy), |_| replicas_patch(gen, healthy)).await?;
                let _ = s;
                return Err(Error::stopped(format!(
                    "scale of statefulset \"{name}\" stopped: step to {target} replicas did not become healthy within {}s: {cause}; replicas set back to {healthy}",
                    args.step_timeout.as_secs()
                )));
            }
        }
    }
    summary(ctx, &name, plan, started).await?;
    Ok(0)
}

/// After a scale-up step: the new pods' PVCs must be Bound.
async fn ensure_bound(ctx: &Ctx, name: &str, sts: &StatefulSet, ordinals: &[i32]) -> Result<()> {
    let pvcs = ctx.namespace_pvcs().await?;
    for o in ordinals {
        for t in model::claim_templates(sts) {
            let pvc = model::pvc_name(&t, name, *o);
            match pvcs.iter().find(|p| p.name_any() == pvc) {
                Some(p) if model::pvc_phase(p) == "Bound" => {}
                Some(p) => {
                    return Err(Error::stopped(format!(
                        "PVC {pvc} is {} after its pod became Ready",
                        model::pvc_phase(p)
                    )))
                }
                None => {
                    return Err(Error::stopped(format!(
                        "PVC {pvc} does not exist after its pod became Ready"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Why new pods did not come up: the first one's PVC, events, or the ordinal before it.
async fn stuck_cause(ctx: &Ctx, tracker: &Tracker, name: &str, ordinals: &[i32]) -> String {
    let pods = tracker.pods();
    let Some(first) = ordinals
        .iter()
        .find(|o| !pods.get(o).is_some_and(model::is_available))
    else {
        return "unknown".into();
    };
    let pod_name = model::pod_name(name, *first);
    let Some(pod) = pods.get(first) else {
        let before = first - 1;
        return match pods.get(&before) {
            Some(p) if !model::is_available(p) => format!(
                "{pod_name} was not created because {} is not Ready",
                p.name_any()
            ),
            _ => format!("{pod_name} was not created"),
        };
    };
    let pvcs = ctx.namespace_pvcs().await.unwrap_or_default();
    let events: Vec<Event> = ctx
        .list("events", &ListParams::default())
        .await
        .unwrap_or_default();
    let sc_api: Api<StorageClass> = Api::all(ctx.client.clone());
    let classes = list_all(&sc_api, &ListParams::default()).await.ok();
    let inputs = DoctorInputs {
        pvcs,
        events,
        storage_classes: classes,
        ..Default::default()
    };
    for claim in model::mounted_claims(pod) {
        if let Some(pvc) = inputs.pvcs.iter().find(|p| p.name_any() == claim) {
            if model::pvc_phase(pvc) != "Bound" {
                return format!(
                    "{pod_name} is {}: {}",
                    model::phase(pod),
                    doctor::pvc_pending_cause(pvc, &inputs)
                );
            }
        }
    }
    scale::pod_stuck_cause(
        pod,
        &doctor::events_for(&inputs.events, "Pod", &pod_name, 2),
    )
}

async fn summary(ctx: &Ctx, name: &str, plan: ScalePlan, started: Instant) -> Result<()> {
    let sts = ctx.get_statefulset(name).await?;
    let (pods, pvcs) = futures::try_join!(ctx.statefulset_pods(&sts), ctx.namespace_pvcs())?;
    let mut report = ScaleReport::new(plan, &sts, &pvcs, &pods, started.elapsed().as_secs_f64());
    report.lock = ctx.lock_holder();
    render::show(ctx.output, &report)
}

/// Reads PVs and StorageClasses (cluster-scoped: an identity that may not list them
/// gets a plan without reclaim policies) and plans the scale.
pub async fn gather_plan(
    ctx: &Ctx,
    sts: &StatefulSet,
    to: i32,
    step: i32,
    pvcs: &[PersistentVolumeClaim],
) -> ScalePlan {
    let pv_api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let sc_api: Api<StorageClass> = Api::all(ctx.client.clone());
    let lp = ListParams::default();
    let (pvs, classes) = futures::join!(list_all(&pv_api, &lp), list_all(&sc_api, &lp));
    let inputs = scale::ScaleInputs {
        sts,
        pvcs,
        pvs: pvs.as_deref().ok(),
        classes: classes.as_deref().ok(),
        now: Timestamp::now(),
    };
    scale::plan(&inputs, to, step, &ctx.namespace)
}

/// Sends the first step with dryRun=All: the API server validates it, nothing changes.
pub async fn dry_run(ctx: &Ctx, sts: &StatefulSet, replicas: i32) -> Result<()> {
    let gen = sts.metadata.generation.unwrap_or(0);
    super::write::dry_run(ctx, sts, |_| replicas_patch(gen, replicas)).await
}
