//! The canary's metric gate as the step engine runs it: the queries of `--fail-if` and
//! `--require`, asked of Prometheus for one pod at a time and judged by `plan::metrics`.

use k8s_openapi::api::core::v1::Pod;

use super::prometheus::Prometheus;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::metrics::{
    judge, Cadence, MetricQuery, Placeholders, QueryError, QueryKind, QueryOutcome, Verdict,
};

pub struct MetricGate {
    pub prometheus: Prometheus,
    pub queries: Vec<MetricQuery>,
    pub cadence: Cadence,
}

/// Which pod the queries are asked about.
pub struct Subject<'a> {
    pub statefulset: &'a str,
    pub namespace: &'a str,
    pub ordinal: i32,
    /// The pod's revision (its `controller-revision-hash`).
    pub revision: &'a str,
}

impl<'a> Subject<'a> {
    pub fn of(
        statefulset: &'a str,
        namespace: &'a str,
        ordinal: i32,
        pod: Option<&'a Pod>,
    ) -> Self {
        Subject {
            statefulset,
            namespace,
            ordinal,
            revision: pod.and_then(model::revision).unwrap_or(""),
        }
    }
}

impl MetricGate {
    /// One evaluation of every query for the pod.
    pub async fn evaluate(&self, s: &Subject<'_>) -> Verdict {
        let (outcomes, at) = self.ask(s).await;
        judge(&outcomes, &at)
    }

    /// Every query, its placeholders filled for the pod, asked now.
    async fn ask(&self, s: &Subject<'_>) -> (Vec<QueryOutcome>, String) {
        let pod = model::pod_name(s.statefulset, s.ordinal);
        let ph = Placeholders {
            pod: &pod,
            namespace: s.namespace,
            statefulset: s.statefulset,
            ordinal: s.ordinal,
            revision: s.revision,
        };
        self.prometheus.evaluate(&self.queries, &ph).await
    }

    /// Before any write: every query is asked once for the first pod to update. An
    /// invalid expression is a usage error (exit 2); a Prometheus that cannot be asked
    /// stops the run before it starts. Returns warnings for the plan: a `--fail-if` that
    /// already fires on the old revision would stop the canary at its first pod.
    pub async fn preflight(&self, s: &Subject<'_>) -> Result<Vec<String>> {
        let pod = model::pod_name(s.statefulset, s.ordinal);
        let (outcomes, _) = self.ask(s).await;
        let mut warnings = vec![];
        for o in outcomes {
            match o.result {
                Err(QueryError::Invalid(m)) => {
                    return Err(Error::usage(format!(
                        "{} `{}` is not a valid query for Prometheus at {}: {m}",
                        o.kind.flag(),
                        o.expanded,
                        self.prometheus.url()
                    )))
                }
                Err(QueryError::Unavailable(m)) => {
                    return Err(Error::Prometheus(format!(
                        "the metric gate cannot run: {m}; nothing was written"
                    )))
                }
                Ok(samples) if o.kind == QueryKind::FailIf && !samples.is_empty() => {
                    warnings.push(format!(
                        "--fail-if `{}` already returns {} sample(s) for {pod} before its update: the canary would stop at its first pod",
                        o.expanded,
                        samples.len()
                    ));
                }
                Ok(_) => {}
            }
        }
        Ok(warnings)
    }
}
