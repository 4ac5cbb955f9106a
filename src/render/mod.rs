//! The one report path: every command's result is a typed document that renders as text
//! or is written as JSON/YAML (`-o`), plus the styling shared by all text.
//!
//! Documents (all `apiVersion: sts-safe/v1`; fields are listed in the README's
//! "Machine-readable output" section):
//! `StatusReport` (plan::status), `DoctorReport` (plan::doctor), `CanaryPlan` and
//! `RollbackPlan` (plan::canary, plan::rollback), `CanaryReport` (exec::canary),
//! `ScalePlan` and `ScaleReport` (plan::scale), `PrunePlan` and `PruneReport`
//! (plan::prune), `ResizePlan` and `ResizeReport` (plan::resize), `RecoverPlan` and `RecoverReport`
//! (plan::recover). Text renderers live in this module's files, one per command.

use std::io::Write;

use console::{style, StyledObject};
use serde::Serialize;

use crate::error::{Error, Result};

pub mod canary;
pub mod doctor;
pub mod prune;
pub mod recover;
pub mod resize;
pub mod scale;
pub mod status;

pub use crate::plan::API_VERSION;

/// `-o`: how documents are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
    Yaml,
}

/// A document a command prints: text for people, JSON/YAML for programs.
pub trait Report: Serialize {
    fn text(&self) -> String;
}

/// Prints `doc` in the requested form on stdout.
pub fn show(output: Output, doc: &impl Report) -> Result<()> {
    match output {
        Output::Text => print_stdout(&doc.text()),
        o => emit(o, doc),
    }
}

pub fn init_colors(no_color_flag: bool) {
    let off = no_color_flag || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if off {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

pub fn red<D>(d: D) -> StyledObject<D> {
    style(d).red().bold()
}
pub fn yellow<D>(d: D) -> StyledObject<D> {
    style(d).yellow()
}
pub fn green<D>(d: D) -> StyledObject<D> {
    style(d).green()
}
pub fn bold<D>(d: D) -> StyledObject<D> {
    style(d).bold()
}
pub fn dim<D>(d: D) -> StyledObject<D> {
    style(d).dim()
}

/// Writes `value` to stdout as JSON or YAML.
pub fn emit<T: Serialize>(output: Output, value: &T) -> Result<()> {
    let text = match output {
        Output::Json => {
            serde_json::to_string_pretty(value).map_err(|e| Error::Io(e.to_string()))? + "\n"
        }
        Output::Yaml => serde_yaml::to_string(value).map_err(|e| Error::Io(e.to_string()))?,
        Output::Text => unreachable!("text output goes through Report::text"),
    };
    print_stdout(&text)
}

/// Prints to stdout, treating a closed pipe (`| head`) as success.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Io(format!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// A message for the operator (stderr).
pub fn note(msg: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "{}", msg.as_ref());
}

/// Left-aligned columns, kubectl style: header in capitals, two spaces between columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(console::measure_text_width(c));
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&console::pad_str(
                    c,
                    width[i],
                    console::Alignment::Left,
                    None,
                ));
                l.push_str("  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for r in rows {
        line(r.clone(), &mut out);
    }
    out
}
