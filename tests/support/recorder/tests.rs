//! The recorder's checks on made-up recordings (no cluster needed).

use super::*;

fn pod(available: bool, revision: &str, claim: &str) -> Option<State> {
    Some(State::Pod(PodState {
        available,
        revision: Some(revision.into()),
        claims: vec![claim.into()],
    }))
}

fn sts(partition: i32, replicas: i32, image: &str, update: Option<&str>) -> Option<State> {
    Some(State::Sts(Box::new(StsState {
        partition,
        replicas,
        template: serde_json::json!({"spec": {"containers": [{"name": "redis", "image": image}]}}),
        update: update.map(str::to_string),
        claims: vec!["redis-data".into()],
    })))
}

fn check(step: usize) -> Check<'static> {
    Check {
        sts: "redis",
        step,
        rollback_to: vec![],
    }
}

/// redis-0..2 available on `old` with their PVCs, partition 0, image redis:1, and
/// the orphan PVC redis-data-redis-3: listed up to rv 8, the baseline.
fn listed() -> Log {
    let mut l = Log::default();
    for o in 0..3u64 {
        let claim = format!("redis-data-redis-{o}");
        l.push(
            Kind::Pod,
            format!("redis-{o}"),
            1 + o,
            pod(true, "old", &claim),
        );
        l.push(
            Kind::Pvc,
            claim,
            4 + o,
            Some(State::Pvc {
                deleting: false,
                held: false,
            }),
        );
    }
    let orphan = Some(State::Pvc {
        deleting: false,
        held: false,
    });
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 7, orphan);
    l.push(
        Kind::Sts,
        "redis".into(),
        8,
        sts(0, 3, "redis:1", Some("old")),
    );
    l.baseline = 8;
    l
}

/// Pushes the canary of one pod at rv `rv`..`rv + 3`: gone, back unavailable, available.
fn replace(l: &mut Log, o: i32, rv: u64) {
    let (name, claim) = (format!("redis-{o}"), format!("redis-data-redis-{o}"));
    l.push(Kind::Pod, name.clone(), rv, pod(false, "old", &claim));
    l.push(Kind::Pod, name.clone(), rv + 1, None);
    l.push(Kind::Pod, name.clone(), rv + 2, pod(false, "new", &claim));
    l.push(Kind::Pod, name, rv + 3, pod(true, "new", &claim));
}

#[test]
fn a_canary_that_waits_for_each_pod_is_safe() {
    let mut l = listed();
    l.push(
        Kind::Sts,
        "redis".into(),
        9,
        sts(3, 3, "redis:2", Some("old")),
    );
    l.push(
        Kind::Sts,
        "redis".into(),
        10,
        sts(3, 3, "redis:2", Some("new")),
    );
    l.push(
        Kind::Sts,
        "redis".into(),
        11,
        sts(2, 3, "redis:2", Some("new")),
    );
    replace(&mut l, 2, 12);
    l.push(
        Kind::Sts,
        "redis".into(),
        16,
        sts(1, 3, "redis:2", Some("new")),
    );
    replace(&mut l, 1, 17);
    l.push(
        Kind::Sts,
        "redis".into(),
        21,
        sts(0, 3, "redis:2", Some("new")),
    );
    replace(&mut l, 0, 22);
    let f = l.analyse(&check(1));
    f.assert_safe(&check(1), "a safe canary");
    assert_eq!(f.max_unavailable, 1);
    assert_eq!(f.partitions, [0, 3, 2, 1, 0]);
    assert_eq!(l.partitions("redis"), [0, 3, 2, 1, 0]);
    assert_eq!(l.partitions_after("redis", 11), [1, 0]);
    assert_eq!(l.ready_order("new"), ["redis-2", "redis-1", "redis-0"]);
    let names: Vec<String> = (0..3).map(|o| format!("redis-{o}")).collect();
    assert_eq!(l.max_unavailable(&names), 1);
    assert!(l.saw_image("redis", "redis:2") && !l.saw_image("redis", "redis:3"));
}

#[test]
fn lowering_the_partition_before_the_canary_is_available_is_a_violation() {
    let mut l = listed();
    l.push(
        Kind::Sts,
        "redis".into(),
        9,
        sts(3, 3, "redis:2", Some("new")),
    );
    l.push(
        Kind::Sts,
        "redis".into(),
        10,
        sts(2, 3, "redis:2", Some("new")),
    );
    l.push(Kind::Pod, "redis-2".into(), 11, pod(false, "new", "x"));
    l.push(
        Kind::Sts,
        "redis".into(),
        12,
        sts(1, 3, "redis:2", Some("new")),
    );
    let f = l.analyse(&check(2));
    assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
    assert!(f.violations[0].contains("2 → 1 while redis-2 was not available"));
    // Available, but on the old revision, is no better.
    let mut l = listed();
    l.push(
        Kind::Sts,
        "redis".into(),
        9,
        sts(3, 3, "redis:2", Some("new")),
    );
    l.push(
        Kind::Sts,
        "redis".into(),
        10,
        sts(2, 3, "redis:2", Some("new")),
    );
    l.push(
        Kind::Sts,
        "redis".into(),
        11,
        sts(1, 3, "redis:2", Some("new")),
    );
    let f = l.analyse(&check(1));
    assert!(f.violations[0].contains("redis-2 was on revision"), "{f:?}");
}

#[test]
fn template_and_partition_in_one_write_only_for_a_rollback() {
    let mut l = listed();
    l.push(
        Kind::Sts,
        "redis".into(),
        9,
        sts(3, 3, "redis:2", Some("new")),
    );
    l.push(
        Kind::Sts,
        "redis".into(),
        10,
        sts(0, 3, "redis:1", Some("new")),
    );
    let f = l.analyse(&check(1));
    assert!(f.violations[0].contains("in the same write"), "{f:?}");
    let allowed = Check {
        rollback_to: vec![vec!["redis:1".into()]],
        ..check(1)
    };
    assert!(l.analyse(&allowed).violations.is_empty());
}

#[test]
fn lowering_the_partition_before_an_update_revision_is_a_violation() {
    let mut l = listed();
    l.push(Kind::Sts, "redis".into(), 9, sts(3, 3, "redis:2", None));
    l.push(Kind::Sts, "redis".into(), 10, sts(2, 3, "redis:2", None));
    let f = l.analyse(&check(1));
    assert!(
        f.violations[0].contains("before the controller reported"),
        "{f:?}"
    );
}

#[test]
fn deleting_a_live_or_mounted_pvc_is_a_violation() {
    let mut l = listed();
    let deleting = || {
        Some(State::Pvc {
            deleting: true,
            held: false,
        })
    };
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 9, deleting());
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 10, None);
    assert!(l.analyse(&check(1)).violations.is_empty(), "the orphan");
    l.push(Kind::Pvc, "redis-data-redis-1".into(), 11, deleting());
    l.push(
        Kind::Sts,
        "redis".into(),
        12,
        sts(0, 1, "redis:1", Some("old")),
    );
    l.push(Kind::Pvc, "redis-data-redis-2".into(), 13, None);
    let f = l.analyse(&check(1));
    assert_eq!(f.violations.len(), 2, "{:?}", f.violations);
    assert!(f.violations[0].contains("ordinal 1 of redis was live (replicas 3)"));
    assert!(f.violations[1].contains("pod redis-2 mounted it"));
}

#[test]
fn a_held_mark_while_live_is_safe_until_the_claim_goes() {
    let mut l = listed();
    // The scale-up lands first; prune's mark (under its hold) comes after.
    l.push(
        Kind::Sts,
        "redis".into(),
        9,
        sts(0, 4, "redis:1", Some("old")),
    );
    let held = |deleting| {
        Some(State::Pvc {
            deleting,
            held: true,
        })
    };
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 10, held(false));
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 11, held(true));
    let f = l.analyse(&check(1));
    assert!(
        f.violations.is_empty(),
        "held, volume kept: {:?}",
        f.violations
    );
    // ... but a held claim marked while live must never go away.
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 12, None);
    let f = l.analyse(&check(1));
    assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
    assert!(
        f.violations[0].contains("went away after being marked while ordinal 3"),
        "{:?}",
        f.violations
    );
    // A mark while not live, then a scale-up, then the claim goes: the decision was
    // made at the mark, before the scale-up.
    let mut l = listed();
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 9, held(false));
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 10, held(true));
    l.push(
        Kind::Sts,
        "redis".into(),
        11,
        sts(0, 4, "redis:1", Some("old")),
    );
    l.push(Kind::Pvc, "redis-data-redis-3".into(), 12, None);
    assert!(l.analyse(&check(1)).violations.is_empty());
}

#[test]
fn missing_pods_count_as_unavailable_after_the_baseline() {
    let mut l = listed();
    l.push(Kind::Pod, "redis-0".into(), 9, None);
    l.push(Kind::Pod, "redis-1".into(), 10, None);
    let f = l.analyse(&check(1));
    assert_eq!(f.max_unavailable, 2);
    assert_eq!(f.worst, "at rv 10: redis-0, redis-1");
    let names: Vec<String> = (0..4).map(|o| format!("redis-{o}")).collect();
    assert_eq!(l.max_unavailable(&names), 3, "redis-3 never existed");
    // Before the baseline nothing is counted.
    let mut early = Log::default();
    early.push(Kind::Pod, "redis-0".into(), 1, pod(false, "old", "x"));
    early.baseline = 1;
    assert_eq!(early.max_unavailable(&names[..1]), 0);
}

#[test]
fn a_relist_records_what_vanished_while_the_watch_was_away() {
    let p = |name: &str, rv: &str| -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": name, "resourceVersion": rv}}),
        )
        .unwrap()
    };
    let mut l = listed();
    l.handle(Kind::Pod, watcher::Event::Init, pod_state);
    l.handle(
        Kind::Pod,
        watcher::Event::InitApply(p("redis-0", "20")),
        pod_state,
    );
    l.handle(
        Kind::Pod,
        watcher::Event::InitApply(p("redis-1", "21")),
        pod_state,
    );
    l.handle(Kind::Pod, watcher::Event::InitDone, pod_state);
    let last = l.events.last().unwrap();
    assert_eq!((last.name.as_str(), last.rv), ("redis-2", 21));
    assert!(last.state.is_none());
    assert!(!l.live.contains(&(Kind::Pod, "redis-2".to_string())));
}
