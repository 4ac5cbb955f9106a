//! `kubectl sts-safe rollback STS`: restore the template of `currentRevision`, reset
//! the partition, and delete pods stuck on the bad revision — the step `kubectl rollout
//! undo` misses (kubernetes issue 67250) — then wait until every pod is Ready again.

use crate::cli::{DryRun, RollbackArgs};
use crate::context::Ctx;
use crate::error::Result;
use crate::exec::{access, rollback, write};
use crate::render;
use crate::ui;

pub async fn run(ctx: &Ctx, args: &RollbackArgs) -> Result<i32> {
    let sts = ctx.get_statefulset(&args.name).await?;
    let Some((plan, template)) = rollback::gather_plan(ctx, &sts).await? else {
        render::note(format!(
            "no rollout is pending on statefulset \"{}\": nothing to roll back",
            args.name
        ));
        return Ok(0);
    };
    render::show(ctx.output, &plan)?;
    match args.mutate.dry_run {
        DryRun::Client => return Ok(0),
        DryRun::Server => {
            write::dry_run_freeze(ctx, &sts, &template, 0, None).await?;
            return Ok(super::server_accepted("the rollback"));
        }
        DryRun::None => {}
    }
    access::require(ctx, access::CANARY).await?;
    ui::confirm(
        ctx,
        args.mutate.yes,
        &format!(
            "Roll back statefulset \"{}\" to revision {}?",
            args.name, plan.restore_revision
        ),
    )?;
    rollback::execute(ctx, sts, &plan, &template, args.timeout).await?;
    Ok(0)
}
