//! Talking with the operator on stderr: confirmations, choices and live progress lines.

use std::time::Duration;

use console::Term;
use dialoguer::theme::ColorfulTheme;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::render::{note, Output};

/// Asks a yes/no question (default No) on the terminal. `--yes` answers yes; without
/// a terminal the question is refused at once instead of hanging.
pub fn confirm(ctx: &Ctx, yes: bool, question: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !ctx.interactive {
        return Err(Error::Declined(format!(
            "refusing to proceed without confirmation: no terminal to ask \"{question}\"; re-run with --yes"
        )));
    }
    let answer = dialoguer::Confirm::with_theme(&ColorfulTheme::default())
        .with_prompt(question)
        .default(false)
        .interact_on_opt(&Term::stderr())
        .map_err(|e| Error::Io(format!("prompt failed: {e}")))?;
    match answer {
        Some(true) => Ok(()),
        _ => Err(Error::Declined("not confirmed; nothing was changed".into())),
    }
}

/// Makes the operator type `expected` (used before destroying everything).
pub fn confirm_by_typing(ctx: &Ctx, expected: &str, question: &str) -> Result<()> {
    if !ctx.interactive {
        return Err(Error::Declined(format!(
            "refusing: \"{question}\" needs a terminal"
        )));
    }
    let typed: String = dialoguer::Input::with_theme(&ColorfulTheme::default())
        .with_prompt(format!("{question} Type \"{expected}\" to confirm"))
        .allow_empty(true)
        .interact_text_on(&Term::stderr())
        .map_err(|e| Error::Io(format!("prompt failed: {e}")))?;
    if typed.trim() == expected {
        Ok(())
    } else {
        Err(Error::Declined(
            "the name did not match; nothing was changed".into(),
        ))
    }
}

/// Picks one of `choices` (index), default the first.
pub fn choose(ctx: &Ctx, prompt: &str, choices: &[&str]) -> Result<usize> {
    if !ctx.interactive {
        return Err(Error::Declined(format!("no terminal to ask \"{prompt}\"")));
    }
    dialoguer::Select::with_theme(&ColorfulTheme::default())
        .with_prompt(prompt)
        .items(choices)
        .default(0)
        .interact_on_opt(&Term::stderr())
        .map_err(|e| Error::Io(format!("prompt failed: {e}")))?
        .ok_or_else(|| Error::Declined("no choice made".into()))
}

/// Live lines per pod on a terminal; plain log lines otherwise.
pub struct Progress {
    multi: Option<MultiProgress>,
}

pub struct Line {
    bar: Option<ProgressBar>,
    label: String,
    last: std::sync::Mutex<String>,
}

impl Progress {
    pub fn new(ctx: &Ctx) -> Self {
        let multi = (ctx.stderr_tty && ctx.output == Output::Text).then(|| {
            let m = MultiProgress::new();
            m.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            m
        });
        Progress { multi }
    }

    pub fn line(&self, label: impl Into<String>) -> Line {
        let label = label.into();
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<14} {msg}")
                    .expect("static template"),
            );
            b.set_prefix(label.clone());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Line {
            bar,
            label,
            last: Default::default(),
        }
    }

    /// A line above the bars (or a plain line without a terminal).
    pub fn println(&self, msg: impl AsRef<str>) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg.as_ref());
            }
            None => note(msg),
        }
    }
}

impl Line {
    /// Updates the state text; without a terminal, prints it when it changed.
    pub fn set(&self, msg: impl Into<String>) {
        let msg = msg.into();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if *last == msg {
            return;
        }
        *last = msg.clone();
        match &self.bar {
            Some(b) => b.set_message(msg),
            None => note(format!("{}: {msg}", self.label)),
        }
    }

    pub fn finish(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.bar {
            Some(b) => b.finish_with_message(msg),
            None => self.set(msg),
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}
