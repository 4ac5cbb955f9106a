//! One thin module per subcommand: gather → plan → show → confirm → exec. Commands
//! never import each other; what two of them share lives here or below.

pub mod canary;
pub mod completion;
pub mod doctor;
pub mod prune;
pub mod rollback;
pub mod scale;
pub mod status;

use crate::cli::Command;
use crate::context::Ctx;
use crate::error::Result;

/// Runs a subcommand that needs the cluster; returns the exit code.
pub async fn run(ctx: &Ctx, command: &Command) -> Result<i32> {
    match command {
        Command::Status(a) => status::run(ctx, a).await,
        Command::Doctor(a) => doctor::run(ctx, a).await,
        Command::Canary(a) => canary::run(ctx, a).await,
        Command::Rollback(a) => rollback::run(ctx, a).await,
        Command::Scale(a) => scale::run(ctx, a).await,
        Command::PrunePvcs(a) => prune::run(ctx, a).await,
        Command::Completion(_) => unreachable!("completion runs without a cluster"),
    }
}

/// Says that a `--dry-run=server` write was accepted; the exit code.
fn server_accepted(what: &str) -> i32 {
    crate::render::note(format!(
        "server dry run: the API server accepted {what} (nothing was written)"
    ));
    crate::error::exit::OK
}
