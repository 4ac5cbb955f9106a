//! Canary steps: which partition each step sets and which ordinals it exposes.
//!
//! `--steps` lists **cumulative** targets: after step i, that many pods (or that
//! percentage of replicas, rounded up) run the new revision. Entries that do not
//! increase the count are dropped with a warning; a final step to 100% is added
//! when the list stops short. Partition values are in index space (ordinal − start),
//! as the StatefulSet controller compares them.

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTarget {
    Count(i32),
    Percent(i32),
}

pub fn parse_target(s: &str) -> Result<StepTarget> {
    let bad = || {
        Error::usage(format!(
            "--steps entry \"{s}\" is not a pod count (e.g. 2) or a percentage (e.g. 50%)"
        ))
    };
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        let n: i32 = p.trim().parse().map_err(|_| bad())?;
        if !(1..=100).contains(&n) {
            return Err(Error::usage(format!(
                "--steps entry \"{s}\": a percentage must be between 1% and 100%"
            )));
        }
        Ok(StepTarget::Percent(n))
    } else {
        let n: i32 = t.parse().map_err(|_| bad())?;
        if n < 1 {
            return Err(Error::usage(format!(
                "--steps entry \"{s}\": a count must be at least 1"
            )));
        }
        Ok(StepTarget::Count(n))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// 1-based position in the run.
    pub number: usize,
    /// Pods on the new revision once this step is done.
    pub updated: i32,
    /// The partition this step sets ([`NO_PARTITION`] when pods are deleted instead).
    #[serde(skip_serializing_if = "no_partition")]
    pub partition: i32,
    /// Ordinals this step exposes, in the order the controller updates them (highest first).
    pub ordinals: Vec<i32>,
    /// How many of them the controller can take down at the same time: 1, or up to
    /// `rollingUpdate.maxUnavailable` where the server honours it.
    pub max_down: i32,
}

/// The partition of a step that deletes its pod instead (mechanism `onDelete`).
pub const NO_PARTITION: i32 = -1;

pub fn no_partition(p: &i32) -> bool {
    *p == NO_PARTITION
}

/// Steps for `replicas` pods from ordinal `start`, given optional cumulative targets.
/// Returns the steps and warnings about entries that were merged or clamped.
pub fn compute(
    replicas: i32,
    start: i32,
    targets: Option<&[StepTarget]>,
) -> (Vec<Step>, Vec<String>) {
    let mut warnings = vec![];
    let mut counts: Vec<i32> = match targets {
        None => (1..=replicas).collect(),
        Some(ts) => ts
            .iter()
            .map(|t| match *t {
                StepTarget::Count(n) => {
                    if n > replicas {
                        warnings.push(format!("--steps entry {n} is more than the {replicas} replicas; using {replicas}"));
                    }
                    n.min(replicas)
                }
                StepTarget::Percent(p) => ((p as i64 * replicas as i64 + 99) / 100) as i32,
            })
            .collect(),
    };
    let mut last = 0;
    counts.retain(|&c| {
        let keep = c > last;
        if !keep && replicas > 0 {
            warnings.push(format!(
                "--steps entry for {c} pod(s) adds no pod after {last}; merged"
            ));
        }
        last = last.max(c);
        keep
    });
    if replicas > 0 && counts.last() != Some(&replicas) {
        counts.push(replicas);
    }
    let mut prev = 0;
    let steps = counts
        .into_iter()
        .enumerate()
        .map(|(i, updated)| {
            let partition = replicas - updated;
            let ordinals = (replicas - updated..replicas - prev)
                .rev()
                .map(|idx| start + idx)
                .collect();
            prev = updated;
            Step {
                number: i + 1,
                updated,
                partition,
                ordinals,
                max_down: 1,
            }
        })
        .collect();
    (steps, warnings)
}

/// Whether the StatefulSet controller of this server release honours
/// `rollingUpdate.maxUnavailable` by default (feature gate MaxUnavailableStatefulSet): on
/// in 1.35.0–1.35.3, off in 1.35.4 and 1.36 (kubernetes 137409), on again from 1.37.
pub fn max_unavailable_on(minor: u32, patch: u32) -> bool {
    minor >= 37 || (minor == 35 && patch <= 3)
}

/// Sets each step's `max_down`: the pods it exposes that the controller may take down at
/// once, given the StatefulSet's maxUnavailable in pods (None = not set, or not honoured).
pub fn with_max_down(mut steps: Vec<Step>, max_unavailable: Option<i32>) -> Vec<Step> {
    for s in &mut steps {
        s.max_down = max_unavailable.map_or(1, |m| m.min(s.ordinals.len() as i32).max(1));
    }
    steps
}

/// The steps still to do when the partition is already at `partition`.
pub fn remaining(steps: &[Step], partition: i32) -> Vec<Step> {
    steps
        .iter()
        .filter(|s| s.partition < partition)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ords(steps: &[Step]) -> Vec<Vec<i32>> {
        steps.iter().map(|s| s.ordinals.clone()).collect()
    }

    #[test]
    fn max_down_follows_max_unavailable_where_the_server_honours_it() {
        let targets = [
            StepTarget::Count(1),
            StepTarget::Count(4),
            StepTarget::Count(6),
        ];
        let (s, _) = compute(6, 0, Some(&targets));
        assert_eq!(
            with_max_down(s.clone(), Some(2))
                .iter()
                .map(|s| s.max_down)
                .collect::<Vec<_>>(),
            vec![1, 2, 2]
        );
        assert!(with_max_down(s, None).iter().all(|s| s.max_down == 1));
        assert!(max_unavailable_on(37, 0) && max_unavailable_on(35, 3));
        assert!(!max_unavailable_on(35, 4) && !max_unavailable_on(36, 1));
        assert!(!max_unavailable_on(20, 2));
    }

    #[test]
    fn default_is_one_pod_per_step_from_the_top() {
        let (s, w) = compute(4, 0, None);
        assert!(w.is_empty());
        assert_eq!(ords(&s), vec![vec![3], vec![2], vec![1], vec![0]]);
        assert_eq!(
            s.iter().map(|s| s.partition).collect::<Vec<_>>(),
            vec![3, 2, 1, 0]
        );
    }

    #[test]
    fn percentages_are_cumulative_and_round_up() {
        let t: Vec<_> = ["1", "50%", "100%"]
            .iter()
            .map(|s| parse_target(s).unwrap())
            .collect();
        let (s, _) = compute(6, 0, Some(&t));
        assert_eq!(
            s.iter().map(|s| s.updated).collect::<Vec<_>>(),
            vec![1, 3, 6]
        );
        assert_eq!(ords(&s), vec![vec![5], vec![4, 3], vec![2, 1, 0]]);
        let (s, _) = compute(5, 0, Some(&[StepTarget::Percent(30)]));
        assert_eq!(
            s.iter().map(|s| s.updated).collect::<Vec<_>>(),
            vec![2, 5],
            "30% of 5 rounds up to 2; 100% appended"
        );
    }

    #[test]
    fn duplicates_merge_and_counts_clamp() {
        let t: Vec<_> = ["1", "1", "50%", "100%"]
            .iter()
            .map(|s| parse_target(s).unwrap())
            .collect();
        let (s, w) = compute(4, 0, Some(&t));
        assert_eq!(
            s.iter().map(|s| s.updated).collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
        assert_eq!(w.len(), 1);
        let (s, w) = compute(3, 0, Some(&[StepTarget::Count(9)]));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].ordinals, vec![2, 1, 0]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn one_replica_and_shifted_ordinals() {
        let (s, _) = compute(1, 0, None);
        assert_eq!(ords(&s), vec![vec![0]]);
        let (s, _) = compute(3, 5, None);
        assert_eq!(ords(&s), vec![vec![7], vec![6], vec![5]]);
        assert_eq!(s[0].partition, 2, "partition stays in index space");
        assert!(compute(0, 0, None).0.is_empty());
    }

    #[test]
    fn resume_skips_steps_already_exposed() {
        let (s, _) = compute(4, 0, None);
        let r = remaining(&s, 2);
        assert_eq!(ords(&r), vec![vec![1], vec![0]]);
        assert_eq!(
            remaining(&s, 9).len(),
            4,
            "a partition above replicas: everything remains"
        );
        assert!(remaining(&s, 0).is_empty());
    }

    #[test]
    fn bad_targets_are_usage_errors() {
        for bad in ["0", "-1", "0%", "101%", "half", "", "5x"] {
            assert_eq!(parse_target(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
