//! Pure decisions: what a command will change, in what order, behind which gates.
//! No module here reads flags, talks to the cluster, prints or waits: every input is an
//! object already read, so each decision is unit-tested from fixtures
//! (`tests/architecture.rs` keeps it that way).

pub mod canary;
pub mod conditions;
pub mod doctor;
pub mod gate;
pub mod lease;
pub mod metrics;
pub mod ondelete;
pub mod orphan;
pub mod owners;
pub mod patch;
pub mod prune;
pub mod recover;
pub mod recreate;
pub mod resize;
pub mod rollback;
pub mod scale;
pub mod status;
pub mod steps;
pub mod template;
pub mod verdict;

/// The `apiVersion` of every document the plugin writes with `-o json|yaml`.
pub const API_VERSION: &str = "sts-safe/v1";
