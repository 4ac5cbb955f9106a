//! One module per subcommand: snapshot → plan → confirm → execute.

pub mod completion;
pub mod doctor;
pub mod status;

use crate::cli::Command;
use crate::context::Ctx;
use crate::error::Result;

/// Runs a subcommand that needs the cluster; returns the exit code.
pub async fn run(ctx: &Ctx, command: &Command) -> Result<i32> {
    match command {
        Command::Status(a) => status::run(ctx, a).await,
        Command::Doctor(a) => doctor::run(ctx, a).await,
        Command::Completion(_) => unreachable!("completion runs without a cluster"),
        _ => Err(crate::error::Error::usage("not implemented yet")),
    }
}
