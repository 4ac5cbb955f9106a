//! kubectl sts-safe: safe StatefulSet operations against the live Kubernetes API.
//!
//! Layers, imports pointing only down (checked by `tests/architecture.rs`):
//! `commands` (one thin module per verb) → `exec` (effects: watch, interrupt, guarded
//! writes, the step engines) → `ui` (prompts, progress) → `context` (client from flags)
//! → `cli` / `render` (flags; the one report path) → `plan` (pure decisions) → `model`
//! (pure facts) → `error`. `complete` (shell completion through kubectl) sits beside
//! `commands`, on top.

pub mod cli;
pub mod commands;
pub mod complete;
pub mod context;
pub mod error;
pub mod exec;
pub mod model;
pub mod plan;
pub mod render;
pub mod ui;

#[cfg(test)]
pub mod fixtures;
