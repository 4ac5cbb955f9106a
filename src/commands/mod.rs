//! One thin module per subcommand: gather → plan → show → confirm → exec. Commands
//! never import each other; what two of them share lives here or below.

pub mod canary;
pub mod completion;
pub mod doctor;
pub mod prune;
pub mod recover;
pub mod resize;
pub mod rollback;
pub mod scale;
pub mod status;

use std::future::Future;

use k8s_openapi::api::apps::v1::StatefulSet;

use crate::cli::{Command, MutateArgs, OwnerArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exec::lease::{self, LeaseGuard};
use crate::exec::verdict;
use crate::plan::owners;

/// Runs a subcommand that needs the cluster; returns the exit code.
pub async fn run(ctx: &Ctx, command: &Command) -> Result<i32> {
    match command {
        Command::Status(a) => status::run(ctx, a).await,
        Command::Doctor(a) => doctor::run(ctx, a).await,
        Command::Canary(a) => canary::run(ctx, a).await,
        Command::Rollback(a) => rollback::run(ctx, a).await,
        Command::Scale(a) => scale::run(ctx, a).await,
        Command::PrunePvcs(a) => prune::run(ctx, a).await,
        Command::ResizePvcs(a) => resize::run(ctx, a).await,
        Command::Recover(a) => recover::run(ctx, a).await,
        Command::Completion(_) => unreachable!("completion runs without a cluster"),
    }
}

/// Says what a `--dry-run=server` proved when no write could be sent; the exit code.
fn server_accepted_note(what: &str) -> i32 {
    crate::render::note(format!("server dry run: {what} (nothing was written)"));
    crate::error::exit::OK
}

/// Says that a `--dry-run=server` write was accepted; the exit code.
fn server_accepted(what: &str) -> i32 {
    crate::render::note(format!(
        "server dry run: the API server accepted {what} (nothing was written)"
    ));
    crate::error::exit::OK
}

/// Refuses to write a StatefulSet that a controller owns, unless `--allow-owned`.
fn refuse_owned(sts: &StatefulSet, owner: &OwnerArgs) -> Result<()> {
    match owners::controller_owner(sts) {
        Some(o) if !owner.allow_owned => Err(Error::stopped(owners::owned_message(
            sts.metadata.name.as_deref().unwrap_or_default(),
            &o,
        ))),
        _ => Ok(()),
    }
}

/// Takes the lock of StatefulSet `sts` (in the context's namespace) for this run; a live
/// lock only with `--break-lock`, after a question that names its holder (`--yes`
/// answers it, `--yes` alone never breaks a lock).
async fn lock(ctx: &Ctx, sts: &str, mutate: &MutateArgs) -> Result<LeaseGuard> {
    let op = lease::operation(ctx).await;
    lease::take(ctx, &ctx.namespace, sts, op, mutate.break_lock, mutate.yes).await
}

/// Runs `work` (command `command` on StatefulSet `sts`) while holding `guard`; records
/// how it ended on the StatefulSet (`sts-safe.dev/last-operation`) and gives the lock
/// back, whatever the outcome.
async fn under_lock(
    ctx: &Ctx,
    guard: LeaseGuard,
    sts: &str,
    command: &str,
    work: impl Future<Output = Result<i32>>,
) -> Result<i32> {
    let result = work.await;
    let code = match &result {
        Ok(c) => *c,
        Err(e) => e.exit_code(),
    };
    verdict::record(ctx, sts, command, code).await;
    guard.release(ctx).await;
    result
}
