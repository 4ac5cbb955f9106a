//! Runs the real kubectl's `__complete` against the plugin's completion executable, as
//! a shell does on <TAB>: kubectl (1.26+) finds `kubectl-sts_safe` on PATH, then runs
//! `kubectl_complete-sts_safe` with the words after `sts-safe`.
// Shared by tests/completion.rs and tests/e2e/completion.rs, which use different parts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the Cloud SDK keeps kubectl.1.27 … kubectl.1.33 side by side.
const CLOUD_SDK_BINS: &[&str] = &["/usr/lib/google-cloud-sdk/bin", "/google-cloud-sdk/bin"];
/// The kubectl minors whose plugin completion is exercised (besides the one on PATH).
pub const MINORS: std::ops::RangeInclusive<u32> = 27..=33;

/// A directory holding both executables, as an install puts them on PATH.
pub fn plugin_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sts-safe-complete-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for exe in [
        env!("CARGO_BIN_EXE_kubectl-sts_safe"),
        env!("CARGO_BIN_EXE_kubectl_complete-sts_safe"),
    ] {
        let link = dir.join(Path::new(exe).file_name().unwrap());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(exe, &link).unwrap();
    }
    dir
}

/// `kubectl.1.NN` for every minor of MINORS; fails (never skips) when one is missing.
pub fn kubectls() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<PathBuf> = CLOUD_SDK_BINS.iter().map(PathBuf::from).collect();
    if let Some(root) = std::env::var_os("CLOUDSDK_ROOT_DIR") {
        dirs.insert(0, PathBuf::from(root).join("bin"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    MINORS
        .map(|m| {
            let name = format!("kubectl.1.{m}");
            let found = dirs.iter().map(|d| d.join(&name)).find(|p| p.is_file());
            let path = found.unwrap_or_else(|| {
                panic!("{name} not found in {dirs:?}: the completion tests run every kubectl 1.27–1.33 (the Cloud SDK's bin folder)")
            });
            (format!("1.{m}"), path)
        })
        .collect()
}

/// What kubectl answered.
#[derive(Debug)]
pub struct Answer {
    /// The candidates' values (without their help).
    pub values: Vec<String>,
    /// The raw lines, help included.
    pub lines: Vec<String>,
    pub directive: Option<u32>,
    pub elapsed: Duration,
    pub stderr: String,
}

/// `kubectl __complete sts-safe WORDS…` with the plugin first on PATH and `env` set.
pub fn complete(kubectl: &Path, env: &[(&str, &str)], words: &[&str]) -> Answer {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![plugin_dir()];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = Command::new(kubectl);
    cmd.arg("__complete")
        .arg("sts-safe")
        .args(words)
        .env("PATH", std::env::join_paths(dirs).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd.output().expect("kubectl runs");
    let elapsed = start.elapsed();
    assert!(out.status.success(), "kubectl __complete failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let directive = lines
        .last()
        .and_then(|l| l.strip_prefix(':'))
        .and_then(|d| d.parse().ok());
    if directive.is_some() {
        lines.pop();
    }
    Answer {
        values: lines
            .iter()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect(),
        lines,
        directive,
        elapsed,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}
