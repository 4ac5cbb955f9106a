//! Fixture tests of the lease decisions.

use super::*;

fn op(pid: u32) -> Operation {
    Operation {
        user: "alice".into(),
        host: "laptop".into(),
        pid,
        command: "canary redis --image redis=redis:7.4".into(),
        step: None,
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_new_lease_names_holder_command_and_duration() {
    let l = taken(None, "redis", &op(42), DURATION, at("2026-12-06T10:00:00Z"));
    assert_eq!(l.metadata.name.as_deref(), Some("sts-safe-redis"));
    let spec = l.spec.as_ref().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("alice@laptop/42"));
    assert_eq!(spec.lease_duration_seconds, Some(30));
    assert_eq!(spec.lease_transitions, None);
    let a = l.metadata.annotations.as_ref().unwrap();
    assert_eq!(a[COMMAND], "canary redis --image redis=redis:7.4");
    assert_eq!(a[PID], "42");
    assert!(!a.contains_key(STEP));
}

#[test]
fn live_expired_and_free_leases() {
    let l = taken(None, "redis", &op(42), DURATION, at("2026-12-06T10:00:00Z"));
    let Judgement::Held(i) = judge(Some(&l), at("2026-12-06T10:00:20Z")) else {
        panic!("held")
    };
    assert_eq!(i.renewed_seconds_ago, Some(20));
    assert!(!i.expired);
    // 30 s plus the 5 s clock allowance: still held at 35 s, abandoned after.
    assert!(matches!(
        judge(Some(&l), at("2026-12-06T10:00:35Z")),
        Judgement::Held(_)
    ));
    let Judgement::Expired(i) = judge(Some(&l), at("2026-12-06T10:00:36Z")) else {
        panic!("expired")
    };
    assert!(i.expired);
    assert_eq!(judge(None, at("2026-12-06T10:00:36Z")), Judgement::Free);
    let mut released = l.clone();
    released.spec.as_mut().unwrap().holder_identity = Some(String::new());
    assert_eq!(
        judge(Some(&released), at("2026-12-06T10:00:01Z")),
        Judgement::Free
    );
}

#[test]
fn renewal_keeps_the_acquire_time_and_records_the_step() {
    let l = taken(None, "redis", &op(42), DURATION, at("2026-12-06T10:00:00Z"));
    let mut o = op(42);
    o.step = Some((2, 4));
    let r = renewed(&l, "redis", &o, at("2026-12-06T10:00:15Z"));
    let spec = r.spec.as_ref().unwrap();
    assert_eq!(
        spec.acquire_time.as_ref().unwrap().0,
        at("2026-12-06T10:00:00Z")
    );
    assert_eq!(
        spec.renew_time.as_ref().unwrap().0,
        at("2026-12-06T10:00:15Z")
    );
    let i = read(&r, at("2026-12-06T10:00:18Z")).unwrap();
    assert_eq!(i.step.as_deref(), Some("2/4"));
    assert_eq!(
        describe(&i),
        "alice@laptop (pid 42): canary redis --image redis=redis:7.4, step 2/4, since \
         2026-12-06T10:00:00Z, lease renewed 3s ago"
    );
}

#[test]
fn a_takeover_counts_a_transition_and_replaces_our_annotations_only() {
    let mut old = taken(None, "redis", &op(42), DURATION, at("2026-12-06T10:00:00Z"));
    old.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("team.example/keep".into(), "yes".into());
    old.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(STEP.into(), "3/4".into());
    let new = taken(
        Some(&old),
        "redis",
        &op(7),
        DURATION,
        at("2026-12-06T10:01:00Z"),
    );
    let spec = new.spec.as_ref().unwrap();
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.holder_identity.as_deref(), Some("alice@laptop/7"));
    let a = new.metadata.annotations.as_ref().unwrap();
    assert_eq!(a["team.example/keep"], "yes");
    assert!(!a.contains_key(STEP), "the old run's step is not ours");
}

#[test]
fn messages_name_the_holder_and_the_way_out() {
    let l = taken(None, "redis", &op(42), DURATION, at("2026-12-06T10:00:00Z"));
    let i = read(&l, at("2026-12-06T10:00:04Z")).unwrap();
    let m = locked_message("redis", &i);
    assert!(
        m.starts_with("statefulset \"redis\" is being changed by alice@laptop (pid 42): canary"),
        "{m}"
    );
    assert!(
        m.contains("renewed 4s ago") && m.contains("--break-lock"),
        "{m}"
    );
    assert!(takeover_notice("redis", &i).contains("--resume"));
    assert!(break_question("redis", &i).contains("waits 30s"));
}

#[test]
fn the_duration_comes_from_the_environment_within_bounds() {
    assert_eq!(duration_from(None), Ok(DURATION));
    assert_eq!(duration_from(Some("")), Ok(DURATION));
    assert_eq!(duration_from(Some("6s")), Ok(Duration::from_secs(6)));
    assert!(duration_from(Some("1s"))
        .unwrap_err()
        .contains("between 3s and 1h"));
    assert!(duration_from(Some("soon"))
        .unwrap_err()
        .contains("STS_SAFE_LEASE_DURATION=soon"));
    assert_eq!(renew_every(DURATION), Duration::from_secs(15));
    assert_eq!(valid_for(DURATION), Duration::from_secs(28));
    assert_eq!(
        valid_for(Duration::from_secs(6)),
        Duration::from_millis(5400)
    );
    let l = taken(
        None,
        "redis",
        &op(1),
        Duration::from_secs(6),
        at("2026-12-06T10:00:00Z"),
    );
    // Others judge by the lease's own duration: 6 s + 5 s allowance.
    assert!(matches!(
        judge(Some(&l), at("2026-12-06T10:00:11Z")),
        Judgement::Held(_)
    ));
    assert!(matches!(
        judge(Some(&l), at("2026-12-06T10:00:12Z")),
        Judgement::Expired(_)
    ));
}
