//! `kubectl sts-safe rollback STS`: restore the template of `currentRevision`, reset
//! the partition, and delete pods stuck on the bad revision — the step `kubectl rollout
//! undo` misses (kubernetes issue 67250) — then wait until every pod is Ready again.

use crate::cli::{DryRun, RollbackArgs};
use crate::context::Ctx;
use crate::error::Result;
use crate::exec::{access, lease, rollback, write};
use crate::plan::owners;
use crate::plan::rollback::RollbackReport;
use crate::render::{self, Output};
use crate::ui;

pub async fn run(ctx: &Ctx, args: &RollbackArgs) -> Result<i32> {
    let sts = ctx.get_statefulset(&args.name).await?;
    super::refuse_owned(&sts, &args.owner)?;
    if args.mutate.dry_run == DryRun::None {
        access::require(ctx, access::CANARY).await?;
        lease::refuse_if_held(ctx, &ctx.namespace, &args.name, args.mutate.break_lock).await?;
    }
    let Some((mut plan, template)) = rollback::gather_plan(ctx, &sts).await? else {
        render::note(format!(
            "no rollout is pending on statefulset \"{}\": nothing to roll back",
            args.name
        ));
        return Ok(0);
    };
    plan.warnings
        .extend(owners::gitops_warning(&sts, "the template"));
    // -o json|yaml: a real run ends with its report (the plan inside), a dry run with
    // the plan.
    if ctx.output == Output::Text || args.mutate.dry_run != DryRun::None {
        render::show(ctx.output, &plan)?;
    }
    match args.mutate.dry_run {
        DryRun::Client => return Ok(0),
        DryRun::Server => {
            write::dry_run_freeze(ctx, &sts, &template, 0, None).await?;
            return Ok(super::server_accepted("the rollback"));
        }
        DryRun::None => {}
    }
    ui::confirm(
        ctx,
        args.mutate.yes,
        &format!(
            "Roll back statefulset \"{}\" to revision {}?",
            args.name, plan.restore_revision
        ),
    )?;
    let guard = super::lock(ctx, &args.name, &args.mutate).await?;
    let started = std::time::Instant::now();
    let run = async {
        rollback::execute(ctx, sts, &plan, &template, args.timeout).await?;
        if ctx.output != Output::Text {
            let seconds = started.elapsed().as_secs_f64();
            let report = RollbackReport::new(plan.clone(), ctx.lock_holder(), seconds);
            render::show(ctx.output, &report)?;
        }
        Ok(0)
    };
    super::under_lock(ctx, guard, &args.name, "rollback", run).await
}
