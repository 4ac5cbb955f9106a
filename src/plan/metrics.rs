//! The Prometheus gate, with the semantics of Prometheus' alerting rules: an expression
//! "fires" when it returns any sample. `--fail-if` stops the canary as soon as it fires;
//! `--require` must fire (return a sample) for the pod to pass. Pure: the queries are
//! sent by `exec::prometheus`, and judged and counted here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a query means to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum QueryKind {
    /// The pod fails as soon as the query returns any sample.
    FailIf,
    /// The pod does not pass while the query returns no sample.
    Require,
}

impl QueryKind {
    pub fn flag(self) -> &'static str {
        match self {
            QueryKind::FailIf => "--fail-if",
            QueryKind::Require => "--require",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricQuery {
    pub kind: QueryKind,
    pub expr: String,
}

/// The values of `$POD`, `$NAMESPACE`, `$STATEFULSET`, `$ORDINAL` and `$REVISION`.
pub struct Placeholders<'a> {
    pub pod: &'a str,
    pub namespace: &'a str,
    pub statefulset: &'a str,
    pub ordinal: i32,
    pub revision: &'a str,
}

/// A value made safe inside a double-quoted PromQL string (a label matcher's value).
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The query with its placeholders filled in, each value escaped.
pub fn expand(expr: &str, p: &Placeholders) -> String {
    // Longest names first, so that no placeholder is the prefix of a longer one.
    let ordinal = p.ordinal.to_string();
    let values = [
        ("$STATEFULSET", p.statefulset),
        ("$NAMESPACE", p.namespace),
        ("$REVISION", p.revision),
        ("$ORDINAL", ordinal.as_str()),
        ("$POD", p.pod),
    ];
    let mut out = expr.to_string();
    for (name, value) in values {
        out = out.replace(name, &escape_label_value(value));
    }
    out
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: String,
}

impl Sample {
    /// `{code="500", pod="web-2"} 0.5`, as Prometheus' own console shows it.
    pub fn text(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
            .collect();
        format!("{{{}}} {}", labels.join(", "), self.value)
    }
}

/// Why a query gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The server says the expression is wrong (bad_data), or it does not return an
    /// instant vector: the operator must fix the flag.
    Invalid(String),
    /// The server could not be asked or failed to answer.
    Unavailable(String),
}

impl QueryError {
    pub fn message(&self) -> &str {
        match self {
            QueryError::Invalid(m) | QueryError::Unavailable(m) => m,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiData {
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct ApiSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// Reads an answer of `/api/v1/query`: the samples of an instant vector.
pub fn parse_response(status: u16, body: &[u8]) -> Result<Vec<Sample>, QueryError> {
    let parsed: ApiResponse = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let first = text.lines().next().unwrap_or("").trim();
            return Err(QueryError::Unavailable(format!(
                "HTTP {status}{}",
                if first.is_empty() {
                    String::new()
                } else {
                    format!(": {}", truncate(first, 200))
                }
            )));
        }
    };
    if parsed.status != "success" {
        let kind = parsed.error_type.unwrap_or_default();
        let msg = parsed.error.unwrap_or_else(|| format!("HTTP {status}"));
        return Err(if kind == "bad_data" {
            QueryError::Invalid(msg)
        } else {
            QueryError::Unavailable(format!("{kind}: {msg}"))
        });
    }
    let Some(data) = parsed.data else {
        return Err(QueryError::Unavailable("an answer without data".into()));
    };
    if data.result_type != "vector" {
        return Err(QueryError::Invalid(format!(
            "it returns a {}, not an instant vector; write it like an alerting rule's expression, e.g. `rate(errors_total{{pod=\"$POD\"}}[1m]) > 0.01`",
            data.result_type
        )));
    }
    let samples: Vec<ApiSample> = serde_json::from_value(data.result)
        .map_err(|e| QueryError::Unavailable(format!("an unreadable vector: {e}")))?;
    Ok(samples
        .into_iter()
        .map(|s| Sample {
            labels: s.metric,
            value: s.value.1,
        })
        .collect())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One query of one evaluation, expanded for a pod, and its answer.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    pub kind: QueryKind,
    pub expanded: String,
    pub result: Result<Vec<Sample>, QueryError>,
}

/// Why the gate stopped a pod: the query, what it returned and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricFailure {
    pub kind: QueryKind,
    pub query: String,
    pub samples: Vec<Sample>,
    /// RFC 3339 time of the evaluation.
    pub evaluated_at: String,
    /// The server's error when the query could not be evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MetricFailure {
    /// One line: what fired (or failed) and when.
    pub fn reason(&self) -> String {
        match (&self.error, self.kind) {
            (Some(e), k) => format!(
                "{} `{}` could not be evaluated at {}: {e}",
                k.flag(),
                self.query,
                self.evaluated_at
            ),
            (None, QueryKind::FailIf) => format!(
                "--fail-if `{}` returned {} sample(s) at {}",
                self.query,
                self.samples.len(),
                self.evaluated_at
            ),
            (None, QueryKind::Require) => format!(
                "--require `{}` returned no sample at {}",
                self.query, self.evaluated_at
            ),
        }
    }

    /// The diagnosis: each returned sample's labels and value.
    pub fn diagnosis(&self) -> Vec<String> {
        let mut lines = vec![format!("query: {}", self.query)];
        lines.extend(self.samples.iter().map(|s| format!("sample: {}", s.text())));
        lines.push(format!("evaluated at {}", self.evaluated_at));
        lines
    }
}

/// The verdict of one evaluation of every query for one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every `--fail-if` returned nothing and every `--require` returned a sample.
    Pass,
    /// A `--require` returned nothing (no data yet, or its condition is false): not yet.
    Hold(MetricFailure),
    /// A `--fail-if` fired, or a query could not be evaluated: the gate fails.
    Fail(MetricFailure),
}

/// Judges one evaluation. A query that could not be evaluated fails the gate: a metric
/// gate never passes silently.
pub fn judge(outcomes: &[QueryOutcome], evaluated_at: &str) -> Verdict {
    let failure = |o: &QueryOutcome, samples: Vec<Sample>, error: Option<String>| MetricFailure {
        kind: o.kind,
        query: o.expanded.clone(),
        samples,
        evaluated_at: evaluated_at.to_string(),
        error,
    };
    let mut hold = None;
    for o in outcomes {
        match (&o.result, o.kind) {
            (Err(e), _) => return Verdict::Fail(failure(o, vec![], Some(e.message().into()))),
            (Ok(s), QueryKind::FailIf) if !s.is_empty() => {
                return Verdict::Fail(failure(o, s.clone(), None))
            }
            (Ok(s), QueryKind::Require) if s.is_empty() && hold.is_none() => {
                hold = Some(failure(o, vec![], None));
            }
            _ => {}
        }
    }
    hold.map_or(Verdict::Pass, Verdict::Hold)
}

/// How the metric gate runs: every `interval` from a pod's Ready on; a pod passes once
/// the last `passes` evaluations in a row passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    pub interval: Duration,
    pub passes: u32,
}

#[derive(Debug, Default, Clone)]
struct PodRecord {
    streak: u32,
    evaluations: u32,
    last: Option<Instant>,
    hold: Option<MetricFailure>,
}

/// The evaluations of one step's pods: which are due, which passed.
#[derive(Debug, Clone)]
pub struct MetricBook {
    cadence: Cadence,
    pods: BTreeMap<i32, PodRecord>,
}

impl MetricBook {
    pub fn new(cadence: Cadence) -> Self {
        MetricBook {
            cadence,
            pods: BTreeMap::new(),
        }
    }

    /// Whether the pod (Ready now) is due for an evaluation.
    pub fn due(&self, ordinal: i32, now: Instant) -> bool {
        self.until_due(ordinal, now).is_zero()
    }

    /// Time until the pod's next evaluation.
    pub fn until_due(&self, ordinal: i32, now: Instant) -> Duration {
        match self.pods.get(&ordinal).and_then(|p| p.last) {
            None => Duration::ZERO,
            Some(last) => (last + self.cadence.interval).saturating_duration_since(now),
        }
    }

    /// Records an evaluation. A hold breaks the streak; a failure is the caller's to act on.
    pub fn record(&mut self, ordinal: i32, now: Instant, verdict: &Verdict) {
        let p = self.pods.entry(ordinal).or_default();
        p.last = Some(now);
        p.evaluations += 1;
        match verdict {
            Verdict::Pass => {
                p.streak += 1;
                p.hold = None;
            }
            Verdict::Hold(f) | Verdict::Fail(f) => {
                p.streak = 0;
                p.hold = Some(f.clone());
            }
        }
    }

    /// A pod that was not Ready starts its count again when it is Ready once more.
    pub fn forget(&mut self, ordinal: i32) {
        self.pods.remove(&ordinal);
    }

    pub fn passed(&self, ordinal: i32) -> bool {
        self.pods
            .get(&ordinal)
            .is_some_and(|p| p.streak >= self.cadence.passes)
    }

    /// Progress for the pod's line, e.g. `metrics 1/3`.
    pub fn describe(&self, ordinal: i32) -> String {
        let need = self.cadence.passes;
        match self.pods.get(&ordinal) {
            None => format!("metrics 0/{need}"),
            Some(p) => match &p.hold {
                Some(h) => format!("metrics 0/{need}: {} returned no sample", h.kind.flag()),
                None => format!("metrics {}/{need}", p.streak.min(need)),
            },
        }
    }

    /// The last evaluation that did not pass, if the pod's streak is broken.
    pub fn last_hold(&self, ordinal: i32) -> Option<&MetricFailure> {
        self.pods.get(&ordinal)?.hold.as_ref()
    }

    /// Why the pod has not passed, for the step timeout's message.
    pub fn why_not(&self, ordinal: i32) -> Option<String> {
        let p = self.pods.get(&ordinal);
        match p {
            None => Some("never evaluated by the metric gate (not Ready long enough)".into()),
            Some(p) if p.streak >= self.cadence.passes => None,
            Some(p) => Some(match &p.hold {
                Some(h) => format!(
                    "{} `{}` returned no sample (last of {} evaluation(s), at {})",
                    h.kind.flag(),
                    h.query,
                    p.evaluations,
                    h.evaluated_at
                ),
                None => format!(
                    "{} of {} metric evaluations passed in a row",
                    p.streak, self.cadence.passes
                ),
            }),
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
