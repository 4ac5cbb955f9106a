//! Fixture tests of the wait conditions: a canary halfway (partition 2 of 3, redis-2
//! Ready on the update revision since 11:50:02, redis-1 being recreated).

use super::*;
use crate::fixtures;

fn midway() -> (StatefulSet, BTreeMap<i32, Pod>) {
    let f = fixtures::load("redis-canary-midway.yaml");
    let pods = f
        .pods()
        .into_iter()
        .filter_map(|p| Some((model::ordinal_of("redis", &model::name(&p))?, p)))
        .collect();
    (f.sts(), pods)
}

fn gate(soak_secs: u64) -> Gate<'static> {
    Gate {
        update_revision: "redis-bbb",
        soak: Duration::from_secs(soak_secs),
        max_restarts: 0,
    }
}

fn step<'a>(
    ordinals: &'a [i32],
    passed: &'a BTreeSet<i32>,
    checked: &'a BTreeSet<i32>,
) -> CanaryStep<'a> {
    CanaryStep {
        statefulset: "redis",
        generation: 5,
        gate: gate(0),
        ordinals,
        passed,
        check_cmd: false,
        checked,
        metrics: None,
    }
}

#[test]
fn controller_observed_names_the_update_revision_or_who_moved_on() {
    let (sts, _) = midway();
    assert_eq!(
        controller_observed(Some(&sts), 5),
        Observed::Revision("redis-bbb".into())
    );
    assert_eq!(
        controller_observed(Some(&sts), 4),
        Observed::MovedOn(5),
        "someone wrote after us"
    );
    assert_eq!(
        controller_observed(Some(&sts), 6),
        Observed::Pending,
        "the watch lags our write"
    );
    assert_eq!(controller_observed(None, 5), Observed::Pending);
    let mut unobserved = sts.clone();
    unobserved.status.as_mut().unwrap().observed_generation = Some(4);
    assert_eq!(controller_observed(Some(&unobserved), 5), Observed::Pending);
}

#[test]
fn revision_is_promoted_only_when_current_and_every_pod_updated() {
    let (mut sts, _) = midway();
    assert!(!revision_promoted(&sts, "redis-bbb", 3));
    let st = sts.status.as_mut().unwrap();
    st.current_revision = Some("redis-bbb".into());
    st.updated_replicas = Some(2);
    assert!(
        !revision_promoted(&sts, "redis-bbb", 3),
        "one pod still to update"
    );
    sts.status.as_mut().unwrap().updated_replicas = Some(3);
    assert!(revision_promoted(&sts, "redis-bbb", 3));
}

#[test]
fn a_ready_pod_on_the_update_revision_passes() {
    let (sts, pods) = midway();
    let none = BTreeSet::new();
    let (state, lines) = step(&[2], &none, &none).evaluate(Some(&sts), &pods, fixtures::now());
    assert_eq!(state, StepState::Passed);
    assert_eq!(lines[&2], PodProgress::Passed);
}

#[test]
fn soaking_wakes_when_the_soak_ends() {
    let (sts, pods) = midway();
    let none = BTreeSet::new();
    let mut s = step(&[2], &none, &none);
    s.gate = gate(600); // Ready for 598 s at the fixtures' now, surely for 597
    let (state, lines) = s.evaluate(Some(&sts), &pods, fixtures::now());
    assert_eq!(
        state,
        StepState::Waiting {
            wake: Some(Duration::from_secs(3)),
            to_check: vec![]
        }
    );
    assert_eq!(
        lines[&2],
        PodProgress::Waiting("Ready, soaking 3s more".into())
    );
}

#[test]
fn a_ready_pod_waits_for_its_check_command() {
    let (sts, pods) = midway();
    let none = BTreeSet::new();
    let mut s = step(&[2], &none, &none);
    s.check_cmd = true;
    let (state, _) = s.evaluate(Some(&sts), &pods, fixtures::now());
    assert_eq!(
        state,
        StepState::Waiting {
            wake: None,
            to_check: vec![2]
        }
    );
    assert_eq!(s.stuck(&pods, fixtures::now()), vec![2]);
    let checked: BTreeSet<i32> = [2].into();
    s.checked = &checked;
    assert_eq!(
        s.evaluate(Some(&sts), &pods, fixtures::now()).0,
        StepState::Passed
    );
}

#[test]
fn a_ready_pod_waits_for_its_metric_passes() {
    use crate::plan::metrics::{Cadence, MetricBook, Verdict};
    let (sts, pods) = midway();
    let none = BTreeSet::new();
    let book = MetricBook::new(Cadence {
        interval: Duration::from_secs(1),
        passes: 2,
    });
    let mut s = step(&[2], &none, &none);
    s.metrics = Some(&book);
    let (state, lines) = s.evaluate(Some(&sts), &pods, fixtures::now());
    assert_eq!(
        state,
        StepState::Waiting {
            wake: None,
            to_check: vec![]
        }
    );
    assert_eq!(lines[&2], PodProgress::Waiting("Ready, metrics 0/2".into()));
    assert_eq!(s.stuck(&pods, fixtures::now()), vec![2]);
    let t0 = std::time::Instant::now();
    let mut book = book.clone();
    book.record(2, t0, &Verdict::Pass);
    book.record(2, t0 + Duration::from_secs(1), &Verdict::Pass);
    s.metrics = Some(&book);
    assert_eq!(
        s.evaluate(Some(&sts), &pods, fixtures::now()).0,
        StepState::Passed
    );
    assert!(s.stuck(&pods, fixtures::now()).is_empty());
}

#[test]
fn a_missing_pod_is_waited_for_and_named_when_stuck() {
    let (sts, pods) = midway();
    let none = BTreeSet::new();
    let passed: BTreeSet<i32> = [2].into();
    let s = step(&[1], &passed, &none);
    let (state, lines) = s.evaluate(Some(&sts), &pods, fixtures::now());
    assert_eq!(
        state,
        StepState::Waiting {
            wake: None,
            to_check: vec![]
        }
    );
    assert_eq!(lines[&1], PodProgress::Waiting("being recreated".into()));
    assert_eq!(s.stuck(&pods, fixtures::now()), vec![1]);
}

#[test]
fn an_earlier_canary_that_turns_bad_fails_the_step() {
    let (sts, mut pods) = midway();
    let none = BTreeSet::new();
    let passed: BTreeSet<i32> = [2].into();
    let p = pods.get_mut(&2).unwrap();
    p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    let (state, _) = step(&[1], &passed, &none).evaluate(Some(&sts), &pods, fixtures::now());
    match state {
        StepState::Failed { ordinal, reason } => {
            assert_eq!(ordinal, Some(2));
            assert!(
                reason.contains("redis-2 passed an earlier step but is now"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_crash_looping_pod_fails_at_once() {
    let (sts, mut pods) = midway();
    let none = BTreeSet::new();
    let p = pods.get_mut(&2).unwrap();
    p.status.as_mut().unwrap().container_statuses = Some(vec![serde_yaml::from_str(
        "{name: redis, image: 'redis:7.4', imageID: '', ready: false, restartCount: 3, state: {waiting: {reason: CrashLoopBackOff}}}",
    )
    .unwrap()]);
    let (state, lines) = step(&[2], &none, &none).evaluate(Some(&sts), &pods, fixtures::now());
    assert!(
        matches!(&state, StepState::Failed { ordinal: Some(2), reason } if reason.starts_with("redis-2: ")),
        "{state:?}"
    );
    assert!(matches!(&lines[&2], PodProgress::Finished(t) if t.starts_with("FAILED")));
}

#[test]
fn a_spec_change_by_someone_else_or_a_deletion_stops_the_step() {
    let (sts, pods) = midway();
    let none = BTreeSet::new();
    let mut s = step(&[2], &none, &none);
    s.generation = 4;
    let (state, _) = s.evaluate(Some(&sts), &pods, fixtures::now());
    assert!(
        matches!(&state, StepState::Failed { ordinal: None, reason } if reason.contains("generation 4 → 5")),
        "{state:?}"
    );
    let (state, _) = step(&[2], &none, &none).evaluate(None, &pods, fixtures::now());
    assert!(matches!(&state, StepState::Failed { reason, .. } if reason.contains("was deleted")));
}

#[test]
fn scale_up_waits_for_the_new_pod_and_scale_down_for_the_removed_one() {
    let (sts, pods) = midway();
    let up = ScaleStep {
        statefulset: "redis",
        generation: 5,
        up: true,
        changing: &[1],
        staying: 0..1,
        soak: Duration::ZERO,
    };
    let (state, lines) = up.evaluate(Some(&sts), &pods, fixtures::now());
    assert_eq!(state, ScaleState::Waiting(None));
    assert_eq!(lines[&1], PodProgress::Waiting("not created yet".into()));
    let up_done = ScaleStep {
        changing: &[2],
        staying: 0..1,
        ..up
    };
    assert_eq!(
        up_done.evaluate(Some(&sts), &pods, fixtures::now()).0,
        ScaleState::Done
    );
    let soaking = ScaleStep {
        changing: &[2],
        soak: Duration::from_secs(600),
        staying: 0..1,
        ..up
    };
    assert_eq!(
        soaking.evaluate(Some(&sts), &pods, fixtures::now()).0,
        ScaleState::Waiting(Some(Duration::from_secs(3)))
    );
    let down = ScaleStep {
        up: false,
        changing: &[2],
        staying: 0..1,
        ..up
    };
    let (state, _) = down.evaluate(Some(&sts), &pods, fixtures::now());
    assert!(
        matches!(&state, ScaleState::Failed(why) if why.contains("disappeared")),
        "redis-1 is missing from the live range: {state:?}"
    );
}

#[test]
fn a_staying_pod_that_turns_unready_stops_the_scale() {
    let (sts, mut pods) = midway();
    pods.get_mut(&0)
        .unwrap()
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "False".into();
    let s = ScaleStep {
        statefulset: "redis",
        generation: 5,
        up: true,
        changing: &[2],
        staying: 0..1,
        soak: Duration::ZERO,
    };
    let (state, _) = s.evaluate(Some(&sts), &pods, fixtures::now());
    assert_eq!(
        state,
        ScaleState::Failed("redis-0 stopped being Ready during the scale".into())
    );
}
