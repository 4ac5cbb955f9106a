//! kubectl sts-safe: safe StatefulSet operations against the live Kubernetes API.

pub mod cli;
pub mod commands;
pub mod context;
pub mod error;
pub mod k8s;
pub mod model;
pub mod orphan;
pub mod plan;
pub mod ui;

#[cfg(test)]
pub mod fixtures;
