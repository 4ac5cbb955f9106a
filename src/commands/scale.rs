//! `kubectl sts-safe scale STS --replicas N`: preflight → plan → confirm → the step
//! engine (`exec::scale`), each step guarded by the spec generation and gated on pod
//! health and bound PVCs.

use kube::ResourceExt;

use crate::cli::{DryRun, ScaleArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exec::scale::{self as engine, ScaleOptions};
use crate::exec::{access, lease};
use crate::model;
use crate::plan::{owners, scale};
use crate::render::{self, Output};
use crate::ui;

pub async fn run(ctx: &Ctx, args: &ScaleArgs) -> Result<i32> {
    let dry_run = args.mutate.dry_run;
    let sts = ctx.get_statefulset(&args.name).await?;
    let name = sts.name_any();
    let from = model::replicas(&sts);
    let to = args.replicas;
    if to == from {
        render::note(format!(
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
    super::refuse_owned(&sts, &args.owner)?;
    if dry_run == DryRun::None {
        // Rights, then the lock: a run in progress explains unready pods better than the
        // health check below would.
        access::require(ctx, access::SCALE).await?;
        lease::refuse_if_held(ctx, &ctx.namespace, &name, args.mutate.break_lock).await?;
    }
    if !args.force {
        let pods = ctx.statefulset_pods(&sts).await?;
        if let Some(why) = scale::health_stop(&sts, &pods) {
            return Err(Error::stopped(why));
        }
    }
    if to < from {
        if let Some(why) = scale::pdb_violation(&sts, &ctx.list_pdbs().await?, to, args.step) {
            return Err(Error::stopped(why));
        }
    }
    let pvcs = ctx.namespace_pvcs().await?;
    let mut plan = engine::gather_plan(ctx, &sts, to, args.step, &pvcs).await;
    plan.warnings
        .extend(owners::gitops_warning(&sts, "replicas"));
    if ctx.output == Output::Text || dry_run != DryRun::None {
        render::show(ctx.output, &plan)?;
    }
    match dry_run {
        DryRun::Client => return Ok(0),
        DryRun::Server => {
            engine::dry_run(ctx, &sts, plan.steps.first().copied().unwrap_or(to)).await?;
            return Ok(super::server_accepted("the change"));
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
    let opts = ScaleOptions {
        soak: args.soak,
        step_timeout: args.step_timeout,
    };
    let guard = super::lock(ctx, &name, &args.mutate).await?;
    super::under_lock(
        ctx,
        guard,
        &name,
        "scale",
        engine::execute(ctx, sts, plan, &opts),
    )
    .await
    .map_err(|e| e.with_next_step(next))
}
