//! kubectl sts-safe: safe StatefulSet operations against the live Kubernetes API.

pub mod access;
pub mod cli;
pub mod commands;
pub mod context;
pub mod diagnose;
pub mod error;
pub mod k8s;
pub mod model;
pub mod orphan;
pub mod plan;
pub mod rollout;
pub mod tracker;
pub mod ui;

#[cfg(test)]
pub mod fixtures;
