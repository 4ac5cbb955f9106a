//! The health gate a canary pod must pass, as a pure verdict over the pod object.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::model;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "camelCase")]
pub enum GateStatus {
    /// Still converging: being recreated, starting, not Ready yet.
    Waiting(String),
    /// Ready, soaking; this much longer to go.
    Soaking(Duration),
    /// Ready for the whole soak time and within the restart budget.
    Passed,
    /// Will not come good by waiting.
    Failed(String),
}

#[derive(Clone, Copy)]
pub struct Gate<'a> {
    pub update_revision: &'a str,
    pub soak: Duration,
    pub max_restarts: i32,
}

impl Gate<'_> {
    pub fn evaluate(&self, pod: Option<&Pod>, now: Timestamp) -> GateStatus {
        let Some(pod) = pod else {
            return GateStatus::Waiting("being recreated".into());
        };
        if model::is_terminating(pod) {
            return GateStatus::Waiting("Terminating".into());
        }
        if model::revision(pod) != Some(self.update_revision) {
            return GateStatus::Waiting("old revision, waiting for the controller".into());
        }
        if let Some(bad) = model::bad_container_state(pod) {
            return GateStatus::Failed(format!("{bad}, restarts {}", model::restarts(pod)));
        }
        let restarts = model::restarts(pod);
        if restarts > self.max_restarts {
            return GateStatus::Failed(format!(
                "restarted {restarts} time(s), more than --max-restarts {}",
                self.max_restarts
            ));
        }
        match model::phase(pod) {
            "Failed" | "Succeeded" => {
                return GateStatus::Failed(format!("phase {}", model::phase(pod)))
            }
            "Pending" => return GateStatus::Waiting("Pending".into()),
            _ => {}
        }
        let Some(since) = model::ready_since(pod) else {
            return GateStatus::Waiting(format!("{}, not Ready", model::phase(pod)));
        };
        let ready_for = ready_for(since, now);
        if ready_for >= self.soak {
            GateStatus::Passed
        } else {
            GateStatus::Soaking(self.soak - ready_for)
        }
    }
}

/// How long a pod that turned Ready at `since` has surely been Ready at `now`. The API
/// keeps condition times in whole seconds (truncated), so the pod may have turned Ready up
/// to a second after `since`: the soak counts from that latest possible moment, and never
/// passes early (the controller's own `availableReplicas` may count one second sooner).
pub fn ready_for(since: Timestamp, now: Timestamp) -> Duration {
    let secs = now.as_second().saturating_sub(since.as_second()) - 1;
    let nanos = i64::from(now.subsec_nanosecond());
    let total = secs.saturating_mul(1_000_000_000).saturating_add(nanos);
    Duration::from_nanos(total.max(0) as u64)
}

/// Soak time: the StatefulSet's minReadySeconds plus --soak.
pub fn soak(min_ready_seconds: i32, extra: Duration) -> Duration {
    Duration::from_secs(min_ready_seconds.max(0) as u64) + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    const READY: &str = r#"
metadata: {name: redis-2, labels: {controller-revision-hash: new}}
spec: {containers: [{name: redis, image: "redis:7.4"}]}
status:
  phase: Running
  conditions: [{type: Ready, status: "True", lastTransitionTime: "2026-11-20T11:59:50Z"}]
  containerStatuses: [{name: redis, image: "redis:7.4", imageID: "", ready: true, restartCount: 0}]
"#;

    fn gate(soak: u64) -> Gate<'static> {
        Gate {
            update_revision: "new",
            soak: Duration::from_secs(soak),
            max_restarts: 0,
        }
    }

    #[test]
    fn ready_pod_passes_after_its_soak() {
        // Ready at 11:59:50 (whole seconds: really between :50 and :51); now 12:00:00.
        let now = crate::fixtures::now();
        assert_eq!(gate(0).evaluate(Some(&pod(READY)), now), GateStatus::Passed);
        assert_eq!(gate(9).evaluate(Some(&pod(READY)), now), GateStatus::Passed);
        assert_eq!(
            gate(10).evaluate(Some(&pod(READY)), now),
            GateStatus::Soaking(Duration::from_secs(1)),
            "10 s of readiness are certain only a second later"
        );
        assert_eq!(
            gate(30).evaluate(Some(&pod(READY)), now),
            GateStatus::Soaking(Duration::from_secs(21))
        );
        let later: Timestamp = "2026-11-20T12:00:01.250Z".parse().unwrap();
        assert_eq!(
            gate(10).evaluate(Some(&pod(READY)), later),
            GateStatus::Passed
        );
        assert_eq!(ready_for(later, later), Duration::ZERO, "never negative");
    }

    #[test]
    fn old_revision_missing_and_terminating_wait() {
        let now = crate::fixtures::now();
        assert!(matches!(
            gate(0).evaluate(None, now),
            GateStatus::Waiting(_)
        ));
        let old = pod(&READY.replace(
            "controller-revision-hash: new",
            "controller-revision-hash: old",
        ));
        assert_eq!(
            gate(0).evaluate(Some(&old), now),
            GateStatus::Waiting("old revision, waiting for the controller".into())
        );
        let term = pod(&READY.replace(
            "metadata: {",
            "metadata: {deletionTimestamp: \"2026-11-20T11:59:59Z\", ",
        ));
        assert_eq!(
            gate(0).evaluate(Some(&term), now),
            GateStatus::Waiting("Terminating".into())
        );
    }

    #[test]
    fn crashloop_and_restarts_fail() {
        let now = crate::fixtures::now();
        let crash = pod(r#"
metadata: {name: redis-2, labels: {controller-revision-hash: new}}
status:
  phase: Running
  conditions: [{type: Ready, status: "False"}]
  containerStatuses: [{name: redis, image: x, imageID: "", ready: false, restartCount: 3, state: {waiting: {reason: CrashLoopBackOff, message: back-off 10s}}}]
"#);
        match gate(0).evaluate(Some(&crash), now) {
            GateStatus::Failed(m) => assert!(
                m.contains("CrashLoopBackOff") && m.contains("restarts 3"),
                "{m}"
            ),
            v => panic!("{v:?}"),
        }
        let restarted = pod(&READY.replace("restartCount: 0", "restartCount: 2"));
        assert!(matches!(
            gate(0).evaluate(Some(&restarted), now),
            GateStatus::Failed(_)
        ));
        let tolerant = Gate {
            max_restarts: 2,
            ..gate(0)
        };
        assert_eq!(tolerant.evaluate(Some(&restarted), now), GateStatus::Passed);
    }

    #[test]
    fn running_but_not_ready_waits() {
        let now = crate::fixtures::now();
        let p = pod(&READY.replace("status: \"True\"", "status: \"False\""));
        assert_eq!(
            gate(0).evaluate(Some(&p), now),
            GateStatus::Waiting("Running, not Ready".into())
        );
        assert_eq!(soak(10, Duration::from_secs(5)), Duration::from_secs(15));
    }
}
