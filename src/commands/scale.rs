//! `kubectl sts-safe scale STS --replicas N`: preflight → plan → confirm → step by
//! step, each guarded by resourceVersion and gated on pod health and bound PVCs.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch};
use kube::ResourceExt;

use crate::cli::{DryRun, Output, ScaleArgs};
use crate::commands::doctor;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::orphan;
use crate::plan::scale::{self, ScalePlan};
use crate::tracker::{guarded_patch, Interrupt, Poll, Tracker, WaitEnd};
use crate::ui::{self, Progress};

/// Sets spec.replicas while the spec is still at `generation` (see `generation_guarded`).
fn replicas_patch(generation: i64, replicas: i32) -> Patch<serde_json::Value> {
    crate::tracker::generation_guarded(
        generation,
        serde_json::json!([{"op": "replace", "path": "/spec/replicas", "value": replicas}]),
    )
}

/// Stops on a PodDisruptionBudget that the scale-down would violate.
async fn check_pdbs(ctx: &Ctx, sts: &StatefulSet, to: i32, step: i32) -> Result<()> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let from = model::replicas(sts);
    if to >= from {
        return Ok(());
    }
    let resolve = |v: &IntOrString, total: i32| match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let pct: i32 = s.trim_end_matches('%').parse().unwrap_or(0);
            (pct * total + 99) / 100
        }
    };
    let pdbs = ctx.list_pdbs().await?;
    for pdb in model::pdbs_over(sts, &pdbs) {
        let Some(spec) = pdb.spec.as_ref() else {
            continue;
        };
        if let Some(min) = &spec.min_available {
            let need = resolve(min, from);
            if to < need {
                return Err(Error::stopped(format!(
                    "PodDisruptionBudget \"{}\" requires minAvailable {need}; scaling statefulset \"{}\" to {to} would violate it — change the PDB first if this is intended",
                    pdb.name_any(),
                    sts.name_any()
                )));
            }
        }
        if let Some(max) = &spec.max_unavailable {
            let allowed = resolve(max, from);
            if step > allowed {
                return Err(Error::stopped(format!(
                    "PodDisruptionBudget \"{}\" allows {allowed} pod(s) unavailable at once; --step {step} would remove more — use --step {allowed}",
                    pdb.name_any()
                )));
            }
        }
    }
    Ok(())
}

async fn load_plan(
    ctx: &Ctx,
    sts: &StatefulSet,
    args: &ScaleArgs,
    pvcs: &[PersistentVolumeClaim],
) -> ScalePlan {
    let pv_api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let sc_api: Api<StorageClass> = Api::all(ctx.client.clone());
    let lp = ListParams::default();
    let (pvs, classes) = futures::join!(
        crate::k8s::list_all(&pv_api, &lp),
        crate::k8s::list_all(&sc_api, &lp)
    );
    let inputs = scale::Inputs {
        sts,
        pvcs,
        pvs: pvs.as_deref().ok(),
        classes: classes.as_deref().ok(),
        now: Timestamp::now(),
    };
    scale::plan(&inputs, args.replicas, args.step, &ctx.namespace)
}

pub async fn run(ctx: &Ctx, args: &ScaleArgs) -> Result<i32> {
    let dry_run = args.mutate.dry_run;
    let sts = ctx.get_statefulset(&args.name).await?;
    let name = sts.name_any();
    let from = model::replicas(&sts);
    let to = args.replicas;
    if to == from {
        ui::note(format!(
            "statefulset \"{name}\" is already at {to} replicas: nothing to do"
        ));
        return Ok(0);
    }
    if dry_run == DryRun::None {
        if !args.mutate.yes && !ctx.interactive {
            return Err(Error::Declined(
                "no terminal to confirm the scale: re-run with --yes (or --dry-run)".into(),
            ));
        }
        if to == 0 && !ctx.interactive && !args.allow_zero {
            return Err(Error::Declined(format!(
                "scaling statefulset \"{name}\" to 0 stops every pod: without a terminal this needs both --yes and --allow-zero"
            )));
        }
    }
    let pods = ctx.statefulset_pods(&sts).await?;
    if !args.force {
        let unready: Vec<String> = model::live_range(&sts)
            .filter(|o| {
                !pods.iter().any(|p| {
                    model::ordinal_of(&name, &p.name_any()) == Some(*o) && model::is_available(p)
                })
            })
            .map(|o| model::pod_name(&name, o))
            .collect();
        if !unready.is_empty() {
            return Err(Error::stopped(format!(
                "statefulset \"{name}\" has pods that are not Running/Ready: {}; fix them first or pass --force",
                unready.join(", ")
            )));
        }
        if model::rollout_pending(&sts) {
            return Err(Error::stopped(format!(
                "statefulset \"{name}\" has a rollout pending ({} → {}): finish it (kubectl sts-safe canary {name} --resume) or roll it back first, or pass --force",
                model::current_revision(&sts).unwrap_or("?"),
                model::update_revision(&sts).unwrap_or("?")
            )));
        }
    }
    check_pdbs(ctx, &sts, to, args.step).await?;
    if dry_run == DryRun::None {
        crate::access::require(ctx, crate::access::SCALE).await?;
    }
    let pvcs = ctx.namespace_pvcs().await?;
    let plan = load_plan(ctx, &sts, args, &pvcs).await;
    match ctx.output {
        Output::Text => ui::print_stdout(&scale::render(&plan))?,
        o if dry_run != DryRun::None => ui::emit(o, &plan)?,
        _ => {}
    }
    match dry_run {
        DryRun::Client => return Ok(0),
        DryRun::Server => {
            let gen = sts.metadata.generation.unwrap_or(0);
            let first = plan.steps.first().copied().unwrap_or(to);
            guarded_patch(
                ctx,
                &name,
                gen,
                Some(sts.clone()),
                true,
                |_| false,
                |_| replicas_patch(gen, first),
            )
            .await?;
            ui::note("server dry run: the API server accepted the change (nothing was written)");
            return Ok(0);
        }
        DryRun::None => {}
    }
    let question = format!("Scale statefulset \"{name}\" from {from} to {to}?");
    if to == 0 && !(args.mutate.yes && args.allow_zero) {
        ui::confirm_by_typing(ctx, &name, &question)?;
    } else {
        ui::confirm(ctx, args.mutate.yes, &question)?;
    }
    let next = format!(
        "re-run `kubectl sts-safe scale {name} -n {} --replicas {to}` to continue from the current replicas",
        ctx.namespace
    );
    execute(ctx, sts, &plan, args)
        .await
        .map_err(|e| e.with_next_step(next))
}

async fn execute(ctx: &Ctx, sts: StatefulSet, plan: &ScalePlan, args: &ScaleArgs) -> Result<i32> {
    let name = sts.name_any();
    let started = Instant::now();
    let mut interrupt = Interrupt::install();
    let mut tracker = Tracker::start(ctx, &sts).await?;
    let progress = Progress::new(ctx);
    let mut gen = sts.metadata.generation.unwrap_or(0);
    let start = model::ordinal_start(&sts);
    let mut healthy = plan.from;
    for (i, &target) in plan.steps.iter().enumerate() {
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
        let g = gen;
        let waited = tracker
            .wait_for(deadline, &mut interrupt, |t| {
                let Some(s) = t.statefulset() else { return Poll::Done(Err("the statefulset was deleted".to_string())) };
                if s.metadata.generation.unwrap_or(0) > g {
                    return Poll::Done(Err(format!(
                        "statefulset \"{name}\" was changed by someone else (generation {g} → {}), e.g. by an autoscaler or another operator",
                        s.metadata.generation.unwrap_or(0)
                    )));
                }
                let pods = t.pods();
                let now = Timestamp::now();
                let mut wake = None;
                let mut done = true;
                for (o, line) in &lines {
                    let pod = pods.get(o);
                    if up {
                        match pod {
                            Some(p) if model::is_available(p) => {
                                let since = model::ready_since(p).map(|r| now.as_second() - r.as_second()).unwrap_or(0).max(0) as u64;
                                if Duration::from_secs(since) >= soak {
                                    line.finish("Ready");
                                } else {
                                    done = false;
                                    wake = Some(soak - Duration::from_secs(since));
                                    line.set(format!("Ready, soaking {}s more", (soak - Duration::from_secs(since)).as_secs()));
                                }
                            }
                            Some(p) => {
                                done = false;
                                line.set(model::bad_container_state(p).unwrap_or_else(|| model::phase(p).to_string()));
                            }
                            None => {
                                done = false;
                                line.set("not created yet");
                            }
                        }
                    } else {
                        match pod {
                            None => line.finish("removed"),
                            Some(p) => {
                                done = false;
                                line.set(if model::is_terminating(p) { "Terminating" } else { "waiting for the controller" });
                            }
                        }
                    }
                }
                // Pods that stay must stay Ready.
                let remaining = start..start + target.min(healthy);
                if let Some((o, _)) = pods.iter().find(|(o, p)| remaining.contains(o) && !model::is_available(p)) {
                    return Poll::Done(Err(format!("{} stopped being Ready during the scale", model::pod_name(&name, *o))));
                }
                if model::live_range(&s).any(|o| !pods.contains_key(&o)) && !up {
                    return Poll::Done(Err(format!("a pod of statefulset \"{name}\" disappeared during the scale")));
                }
                if done {
                    Poll::Done(Ok(()))
                } else {
                    Poll::Pending(wake)
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
    let classes = crate::k8s::list_all(&sc_api, &ListParams::default())
        .await
        .ok();
    let inputs = doctor::Inputs {
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
    let evs = doctor::events_for(&inputs.events, "Pod", &pod_name, 2);
    let state = model::bad_container_state(pod)
        .unwrap_or_else(|| format!("{}, not Ready", model::phase(pod)));
    if evs.is_empty() {
        format!("{pod_name} is {state}")
    } else {
        format!("{pod_name} is {state}; events: {}", evs.join(" | "))
    }
}

async fn summary(ctx: &Ctx, name: &str, plan: &ScalePlan, started: Instant) -> Result<()> {
    let sts = ctx.get_statefulset(name).await?;
    let (pods, pvcs) = futures::try_join!(ctx.statefulset_pods(&sts), ctx.namespace_pvcs())?;
    let orphans = orphan::orphans_of(&sts, &pvcs, &pods);
    let total = orphan::total_capacity(&orphans);
    let report = serde_json::json!({
        "apiVersion": "sts-safe/v1",
        "kind": "ScaleReport",
        "plan": plan,
        "replicas": model::replicas(&sts),
        "readyReplicas": sts.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
        "orphanPvcs": orphans.iter().map(|c| serde_json::json!({"name": c.pvc.name_any(), "ordinal": c.ordinal, "capacity": model::pvc_capacity(c.pvc)})).collect::<Vec<_>>(),
        "orphanCapacity": total,
        "seconds": started.elapsed().as_secs_f64(),
    });
    match ctx.output {
        Output::Text => {
            let mut s = format!(
                "{} statefulset \"{name}\" runs {} replicas, all Ready ({:.1}s)\n",
                ui::green("done:"),
                model::replicas(&sts),
                started.elapsed().as_secs_f64()
            );
            if !orphans.is_empty() {
                s.push_str(&format!(
                    "{} PVC(s) left behind ({total}): {}\n  delete them when the data is no longer needed: kubectl sts-safe prune-pvcs {name} -n {}\n",
                    orphans.len(),
                    orphans.iter().map(|c| c.pvc.name_any()).collect::<Vec<_>>().join(", "),
                    ctx.namespace
                ));
            }
            ui::print_stdout(&s)
        }
        o => ui::emit(o, &report),
    }
}
