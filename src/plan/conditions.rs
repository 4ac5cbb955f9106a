//! The conditions the step engines wait for, as named pure functions over what the watch
//! shows (the StatefulSet, its pods by ordinal, the time). Modelled on kube-runtime's
//! `wait::conditions`: each is re-evaluated on every watch event and tested here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::gate::{Gate, GateStatus};
use super::metrics::MetricBook;
use crate::model;

/// Whether the controller has seen the spec at `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Not yet (or the watch still shows an older copy).
    Pending,
    /// Observed: the update revision it computed for that spec.
    Revision(String),
    /// Someone else changed the spec after our write (the new generation).
    MovedOn(i64),
}

/// The controller observed our write at `generation` and named its update revision.
pub fn controller_observed(sts: Option<&StatefulSet>, generation: i64) -> Observed {
    let Some(s) = sts else {
        return Observed::Pending;
    };
    let gen = s.metadata.generation.unwrap_or(0);
    if gen > generation {
        return Observed::MovedOn(gen);
    }
    match model::update_revision(s) {
        Some(u) if gen == generation && model::observed(s) => Observed::Revision(u.to_string()),
        _ => Observed::Pending,
    }
}

/// Every pod runs `revision` and the controller made it the current revision.
pub fn revision_promoted(sts: &StatefulSet, revision: &str, replicas: i32) -> bool {
    model::current_revision(sts) == Some(revision)
        && sts
            .status
            .as_ref()
            .and_then(|st| st.updated_replicas)
            .unwrap_or(0)
            >= replicas
}

/// One canary step being waited for.
pub struct CanaryStep<'a> {
    pub statefulset: &'a str,
    /// The spec generation of our last write.
    pub generation: i64,
    pub gate: Gate<'a>,
    /// Ordinals this step exposes.
    pub ordinals: &'a [i32],
    /// Ordinals that passed earlier steps: they must stay healthy.
    pub passed: &'a BTreeSet<i32>,
    /// Whether a `--check-cmd` must also pass, and for which ordinals it already did.
    pub check_cmd: bool,
    pub checked: &'a BTreeSet<i32>,
    /// The metric gate's evaluations, when the run has one.
    pub metrics: Option<&'a MetricBook>,
}

/// What one evaluation of a step says.
#[derive(Debug, Clone, PartialEq)]
pub enum StepState {
    Passed,
    Failed {
        ordinal: Option<i32>,
        reason: String,
    },
    /// Not yet: re-evaluate on the next event, after `wake` at the latest; run the
    /// check command for `to_check` (Ready pods whose check has not passed).
    Waiting {
        wake: Option<Duration>,
        to_check: Vec<i32>,
    },
}

/// A pod's progress line, as the step engine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodProgress {
    /// Still going: the current state.
    Waiting(String),
    /// Settled for this step: the final state.
    Finished(String),
    /// Passed its gate (the engine adds how long it took).
    Passed,
}

/// Progress lines by ordinal.
pub type PodLines = BTreeMap<i32, PodProgress>;

/// The text for a pod's gate status.
pub fn describe(v: &GateStatus, restarts: i32) -> String {
    let r = if restarts > 0 {
        format!(", restarts {restarts}")
    } else {
        String::new()
    };
    match v {
        GateStatus::Waiting(s) => format!("{s}{r}"),
        GateStatus::Soaking(d) => format!(
            "Ready, soaking {}s more{r}",
            d.as_secs() + u64::from(d.subsec_millis() > 0)
        ),
        GateStatus::Passed => "Ready".into(),
        GateStatus::Failed(s) => format!("FAILED: {s}"),
    }
}

impl CanaryStep<'_> {
    /// Judges the step: nobody else changed the spec, earlier canaries are still
    /// healthy, and every exposed pod passes its gate (and its check command).
    pub fn evaluate(
        &self,
        sts: Option<&StatefulSet>,
        pods: &BTreeMap<i32, Pod>,
        now: Timestamp,
    ) -> (StepState, PodLines) {
        let mut lines = PodLines::new();
        let name = self.statefulset;
        let Some(sts) = sts else {
            let reason = format!("statefulset \"{name}\" was deleted");
            return (
                StepState::Failed {
                    ordinal: None,
                    reason,
                },
                lines,
            );
        };
        // A lower generation is only the watch cache lagging behind our own write.
        let gen = sts.metadata.generation.unwrap_or(0);
        if gen > self.generation {
            let reason = format!(
                "statefulset \"{name}\" was changed by someone else (generation {} → {gen}); stopped without lowering the partition further",
                self.generation
            );
            return (
                StepState::Failed {
                    ordinal: None,
                    reason,
                },
                lines,
            );
        }
        let steady = Gate {
            soak: Duration::ZERO,
            ..self.gate
        };
        for o in self.passed {
            let v = steady.evaluate(pods.get(o), now);
            if v != GateStatus::Passed {
                let reason = format!(
                    "{} passed an earlier step but is now: {}",
                    model::pod_name(name, *o),
                    describe(&v, 0)
                );
                return (
                    StepState::Failed {
                        ordinal: Some(*o),
                        reason,
                    },
                    lines,
                );
            }
        }
        let mut wake: Option<Duration> = None;
        let mut to_check = vec![];
        let mut all_passed = true;
        for o in self.ordinals {
            let pod = pods.get(o);
            let v = self.gate.evaluate(pod, now);
            let restarts = pod.map(model::restarts).unwrap_or(0);
            match &v {
                GateStatus::Failed(r) => {
                    lines.insert(*o, PodProgress::Finished(describe(&v, restarts)));
                    let reason = format!("{}: {r}", model::pod_name(name, *o));
                    return (
                        StepState::Failed {
                            ordinal: Some(*o),
                            reason,
                        },
                        lines,
                    );
                }
                GateStatus::Passed if self.check_cmd && !self.checked.contains(o) => {
                    all_passed = false;
                    to_check.push(*o);
                }
                GateStatus::Passed => match self.metrics.filter(|m| !m.passed(*o)) {
                    Some(m) => {
                        all_passed = false;
                        lines.insert(
                            *o,
                            PodProgress::Waiting(format!("Ready, {}", m.describe(*o))),
                        );
                    }
                    None => {
                        lines.insert(*o, PodProgress::Passed);
                    }
                },
                GateStatus::Soaking(d) => {
                    all_passed = false;
                    wake = Some(wake.map_or(*d, |w| w.min(*d)));
                    let text = match self.metrics {
                        Some(m) => format!("{}, {}", describe(&v, restarts), m.describe(*o)),
                        None => describe(&v, restarts),
                    };
                    lines.insert(*o, PodProgress::Waiting(text));
                }
                GateStatus::Waiting(_) => {
                    all_passed = false;
                    lines.insert(*o, PodProgress::Waiting(describe(&v, restarts)));
                }
            }
        }
        if all_passed {
            (StepState::Passed, lines)
        } else {
            (StepState::Waiting { wake, to_check }, lines)
        }
    }

    /// Ordinals that have not passed (gate or check) — named when the step times out.
    pub fn stuck(&self, pods: &BTreeMap<i32, Pod>, now: Timestamp) -> Vec<i32> {
        self.ordinals
            .iter()
            .copied()
            .filter(|o| {
                self.gate.evaluate(pods.get(o), now) != GateStatus::Passed
                    || self.check_cmd && !self.checked.contains(o)
                    || self.metrics.is_some_and(|m| !m.passed(*o))
            })
            .collect()
    }
}

/// One scale step being waited for: pods `changing` come (up) or go (down), while the
/// `staying` ones stay Ready.
pub struct ScaleStep<'a> {
    pub statefulset: &'a str,
    pub generation: i64,
    pub up: bool,
    pub changing: &'a [i32],
    pub staying: std::ops::Range<i32>,
    pub soak: Duration,
}

/// What one evaluation of a scale step says.
#[derive(Debug, Clone, PartialEq)]
pub enum ScaleState {
    Done,
    Failed(String),
    Waiting(Option<Duration>),
}

impl ScaleStep<'_> {
    pub fn evaluate(
        &self,
        sts: Option<&StatefulSet>,
        pods: &BTreeMap<i32, Pod>,
        now: Timestamp,
    ) -> (ScaleState, PodLines) {
        let name = self.statefulset;
        let mut lines = PodLines::new();
        let Some(s) = sts else {
            return (
                ScaleState::Failed("the statefulset was deleted".into()),
                lines,
            );
        };
        let gen = s.metadata.generation.unwrap_or(0);
        if gen > self.generation {
            let why = format!(
                "statefulset \"{name}\" was changed by someone else (generation {} → {gen}), e.g. by an autoscaler or another operator",
                self.generation
            );
            return (ScaleState::Failed(why), lines);
        }
        let mut wake = None;
        let mut done = true;
        for o in self.changing {
            let pod = pods.get(o);
            let (text, finished) = if self.up {
                match pod {
                    Some(p) if model::is_available(p) => {
                        let ready_for = model::ready_since(p)
                            .map(|since| super::gate::ready_for(since, now))
                            .unwrap_or_default();
                        if ready_for >= self.soak {
                            ("Ready".to_string(), true)
                        } else {
                            let left = self.soak - ready_for;
                            wake = Some(left);
                            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                            (format!("Ready, soaking {secs}s more"), false)
                        }
                    }
                    Some(p) => (
                        model::bad_container_state(p)
                            .unwrap_or_else(|| model::phase(p).to_string()),
                        false,
                    ),
                    None => ("not created yet".to_string(), false),
                }
            } else {
                match pod {
                    None => ("removed".to_string(), true),
                    Some(p) if model::is_terminating(p) => ("Terminating".to_string(), false),
                    Some(_) => ("waiting for the controller".to_string(), false),
                }
            };
            done &= finished;
            lines.insert(
                *o,
                if finished {
                    PodProgress::Finished(text)
                } else {
                    PodProgress::Waiting(text)
                },
            );
        }
        if let Some((o, _)) = pods
            .iter()
            .find(|(o, p)| self.staying.contains(o) && !model::is_available(p))
        {
            let why = format!(
                "{} stopped being Ready during the scale",
                model::pod_name(name, *o)
            );
            return (ScaleState::Failed(why), lines);
        }
        if !self.up && model::live_range(s).any(|o| !pods.contains_key(&o)) {
            let why = format!("a pod of statefulset \"{name}\" disappeared during the scale");
            return (ScaleState::Failed(why), lines);
        }
        if done {
            (ScaleState::Done, lines)
        } else {
            (ScaleState::Waiting(wake), lines)
        }
    }
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
