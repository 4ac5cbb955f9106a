//! The verdict a writing command leaves on the StatefulSet: the annotation
//! `sts-safe.dev/last-operation`, a JSON document (schema in the README) that engines
//! running waves across clusters (Argo CD progressive syncs, Rancher Fleet, Open Cluster
//! Management) can gate on with a health check: which command ran, how it ended, on
//! which revision, who held the lock, when.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::exit;
use crate::model;

pub const ANNOTATION: &str = "sts-safe.dev/last-operation";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastOperation {
    /// canary | rollback | scale
    pub command: String,
    /// succeeded | stopped | failed | interrupted
    pub outcome: String,
    /// The command's exit code (see the README's table).
    pub exit_code: i32,
    /// The StatefulSet's updateRevision and currentRevision when the command ended.
    pub update_revision: Option<String>,
    pub current_revision: Option<String>,
    pub replicas: i32,
    pub partition: i32,
    /// The lock holder (`user@host/pid`).
    pub holder: Option<String>,
    pub finished: String,
}

/// How a command ended, from its exit code.
pub fn outcome(exit_code: i32) -> &'static str {
    match exit_code {
        exit::OK => "succeeded",
        exit::STOPPED => "stopped",
        exit::INTERRUPTED => "interrupted",
        _ => "failed",
    }
}

pub fn last_operation(
    command: &str,
    exit_code: i32,
    sts: &StatefulSet,
    holder: Option<String>,
    now: Timestamp,
) -> LastOperation {
    LastOperation {
        command: command.into(),
        outcome: outcome(exit_code).into(),
        exit_code,
        update_revision: model::update_revision(sts).map(str::to_string),
        current_revision: model::current_revision(sts).map(str::to_string),
        replicas: model::replicas(sts),
        partition: model::partition(sts),
        holder,
        finished: now.to_string(),
    }
}

/// The merge patch that records `op`, guarded by the resourceVersion it was read at.
pub fn annotation_patch(resource_version: &str, op: &LastOperation) -> serde_json::Value {
    serde_json::json!({"metadata": {
        "resourceVersion": resource_version,
        "annotations": {ANNOTATION: serde_json::to_string(op).unwrap_or_default()},
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_says_how_the_command_ended_on_which_revision() {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "redis"},
            "spec": {"replicas": 3, "selector": {}, "template": {}, "serviceName": "redis",
                     "updateStrategy": {"rollingUpdate": {"partition": 0}}},
            "status": {"replicas": 3, "updateRevision": "redis-b", "currentRevision": "redis-b"}
        }))
        .unwrap();
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let op = last_operation("canary", 0, &sts, Some("alice@laptop/42".into()), now);
        assert_eq!(op.outcome, "succeeded");
        assert_eq!(op.update_revision.as_deref(), Some("redis-b"));
        let patch = annotation_patch("17", &op);
        assert_eq!(patch["metadata"]["resourceVersion"], "17");
        let back: LastOperation = serde_json::from_str(
            patch["metadata"]["annotations"][ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(back, op);
        assert_eq!(
            serde_json::to_value(&op).unwrap()["exitCode"],
            0,
            "camelCase, as every document"
        );
        assert_eq!(outcome(3), "stopped");
        assert_eq!(outcome(130), "interrupted");
        assert_eq!(outcome(1), "failed");
    }
}
