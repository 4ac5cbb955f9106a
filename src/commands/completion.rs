//! `kubectl sts-safe completion bash|zsh|fish`.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionArgs};

pub fn run(args: &CompletionArgs) {
    let mut cmd = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut cmd,
        "kubectl-sts_safe",
        &mut std::io::stdout(),
    );
}
