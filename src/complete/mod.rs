//! Shell completion through kubectl: `kubectl_complete-sts_safe` (and
//! `kubectl-sts_safe __complete`) answer kubectl's plugin-completion protocol (kubectl
//! 1.26+): given the words after `kubectl sts-safe`, the last one being completed, print
//! the candidates one per line (`value<TAB>help`), then `:<directive>` as cobra does.
//!
//! Subcommands, flags and flag values come from the clap definition (`words`); names
//! (StatefulSets, pods, containers, nodes, namespaces) from the cluster the line points at
//! (`live`), under a short deadline: a slow or unreachable cluster yields no candidates
//! rather than a hung shell.

mod live;
pub mod words;

use std::io::Write;
use std::time::Duration;

use clap::CommandFactory;

use crate::cli::Cli;
use words::{Candidate, Want};

/// How long live names may take by default (`STS_SAFE_COMPLETION_TIMEOUT` overrides).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// cobra's ShellCompDirective bits.
pub mod directive {
    /// Let the shell complete file names.
    pub const FILES: u32 = 0;
    /// Do not add a space after the candidate (it continues, as `CONTAINER=`).
    pub const NO_SPACE: u32 = 2;
    /// Do not fall back to file names.
    pub const NO_FILES: u32 = 4;
}

/// Completes `words` and writes the answer to stdout. Always exits 0: kubectl ignores
/// the output of a failing completion executable.
pub fn main(words: &[String]) -> i32 {
    let mut root = Cli::command();
    root.build();
    let line = words::parse(&root, words);
    let (candidates, directive) = match &line.want {
        Want::Subcommands => (words::subcommands(&root), directive::NO_FILES),
        Want::Flags => (words::flags(&root, &line), directive::NO_FILES),
        Want::Choices(c) => (c.clone(), directive::NO_FILES),
        Want::Files => (Vec::new(), directive::FILES),
        Want::Nothing => (Vec::new(), directive::NO_FILES),
        Want::Contexts => (live::contexts(&line.scope), directive::NO_FILES),
        Want::Containers(_) => (
            live::names(&line, deadline()),
            directive::NO_SPACE | directive::NO_FILES,
        ),
        _ => (live::names(&line, deadline()), directive::NO_FILES),
    };
    let mut out = String::new();
    for c in candidates
        .iter()
        .filter(|c| c.value.starts_with(&line.prefix))
    {
        out.push_str(&render(&line.lead, c));
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    let _ = std::io::stdout().write_all(out.as_bytes());
    0
}

fn render(lead: &str, c: &Candidate) -> String {
    match &c.help {
        Some(h) if !h.is_empty() => format!("{lead}{}\t{h}", c.value),
        _ => format!("{lead}{}", c.value),
    }
}

fn deadline() -> Duration {
    std::env::var("STS_SAFE_COMPLETION_TIMEOUT")
        .ok()
        .and_then(|s| humantime::parse_duration(&s).ok())
        .unwrap_or(DEFAULT_DEADLINE)
}
