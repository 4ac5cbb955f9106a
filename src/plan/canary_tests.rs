//! Fixture tests of the canary's decisions.

use super::*;

#[test]
fn resume_keeps_the_recorded_gates_unless_flags_override() {
    let recorded = RunSettings {
        template: "t".into(),
        steps: Some(vec!["1".into(), "50%".into()]),
        soak_seconds: 30,
        step_timeout_seconds: 60,
        max_restarts: 1,
        check_cmd: Some("redis-cli ping".into()),
        on_failure: OnFailure::Rollback,
        metrics: None,
        order: Order::Ordinal,
        primary_selector: None,
        role_cmd: None,
        before_pod: None,
        after_pod: None,
    };
    let bare = RunSettings::resolve(&SettingsFlags::default(), Some(&recorded), "t".into());
    assert_eq!(bare, recorded);
    let over = RunSettings::resolve(
        &SettingsFlags {
            soak: Some(Duration::from_secs(5)),
            on_failure: Some(OnFailure::Pause),
            ..Default::default()
        },
        Some(&recorded),
        "t".into(),
    );
    assert_eq!(
        (
            over.soak_seconds,
            over.on_failure,
            over.check_cmd.as_deref()
        ),
        (5, OnFailure::Pause, Some("redis-cli ping"))
    );
    let fresh = RunSettings::resolve(&SettingsFlags::default(), None, "t".into());
    assert_eq!(
        (
            fresh.soak_seconds,
            fresh.step_timeout_seconds,
            fresh.max_restarts,
            fresh.on_failure
        ),
        (0, 300, 0, OnFailure::Pause)
    );
}

#[test]
fn recorded_settings_belong_to_one_template() {
    let mut sts: k8s_openapi::api::apps::v1::StatefulSet = serde_yaml::from_str(
        "metadata: {name: r}\nspec: {selector: {}, serviceName: r, template: {spec: {containers: [{name: r, image: 'redis:7.4'}]}}}",
    )
    .unwrap();
    let s = RunSettings::resolve(
        &SettingsFlags {
            soak: Some(Duration::from_secs(9)),
            ..Default::default()
        },
        None,
        template_digest(&sts.spec.template),
    );
    sts.metadata.annotations = Some(
        [(
            SETTINGS_ANNOTATION.to_string(),
            serde_json::to_string(&s).unwrap(),
        )]
        .into(),
    );
    assert_eq!(recorded_settings(&sts).map(|r| r.soak_seconds), Some(9));
    sts.spec.template.spec.as_mut().unwrap().containers[0].image = Some("redis:7.2".into());
    assert_eq!(
        recorded_settings(&sts),
        None,
        "a different template is a different rollout"
    );
}

fn midway() -> (StatefulSet, Vec<Pod>) {
    let f = crate::fixtures::load("redis-canary-midway.yaml");
    (f.sts(), f.pods())
}

fn with_image(sts: &StatefulSet, image: &str) -> PodTemplateSpec {
    let mut t = sts.spec.template.clone();
    t.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    t
}

#[test]
fn start_resume_or_nothing() {
    let (pending, _) = midway();
    let running = pending.spec.template.clone();
    assert_eq!(
        decide_start(&pending, &[], None, "db").unwrap(),
        Start::Resume
    );
    assert_eq!(
        decide_start(&pending, &[], Some(&running), "db").unwrap(),
        Start::Resume,
        "asking again for the template being rolled out continues it"
    );
    let other = with_image(&pending, "redis:8");
    let e = decide_start(&pending, &[], Some(&other), "db").unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(
        e.to_string()
            .contains("already has a rollout pending (redis-aaa → redis-bbb, partition 2)"),
        "{e}"
    );
    assert!(e.to_string().contains("canary redis -n db --resume"), "{e}");

    let mut converged = pending.clone();
    converged.status.as_mut().unwrap().current_revision = Some("redis-bbb".into());
    assert!(
        matches!(decide_start(&converged, &[], None, "db").unwrap(), Start::Nothing(w) if w.contains("nothing to resume"))
    );
    assert!(
        matches!(decide_start(&converged, &[], Some(&running), "db").unwrap(), Start::Nothing(w) if w.contains("already runs this template"))
    );
    assert_eq!(
        decide_start(&converged, &[], Some(&other), "db").unwrap(),
        Start::Fresh
    );
}

#[test]
fn pods_to_be_ready_before_start() {
    let (sts, pods) = midway();
    // Fresh: every live ordinal, and redis-1 is missing.
    assert_eq!(unready_before_start(&sts, &pods, false), vec!["redis-1"]);
    // Resuming at partition 2: redis-2 is re-verified by the run; redis-1 must be Ready.
    assert_eq!(unready_before_start(&sts, &pods, true), vec!["redis-1"]);
    let healthy: Vec<Pod> = pods
        .iter()
        .filter(|p| crate::model::name(*p) != "redis-0")
        .cloned()
        .collect();
    assert_eq!(
        unready_before_start(&sts, &healthy, true),
        vec!["redis-0", "redis-1"]
    );
    assert_eq!(exposed(&sts, 2), vec![2]);
    assert_eq!(exposed(&sts, 0), vec![2, 1, 0]);
}

#[test]
fn a_resumed_plan_keeps_only_the_remaining_steps() {
    let (sts, _) = midway();
    let settings = RunSettings::resolve(&SettingsFlags::default(), None, "t".into());
    let p = build_plan(PlanInputs {
        sts: &sts,
        namespace: "db",
        requested: None,
        resume: true,
        settings: &settings,
        recorded: false,
        unready: &[],
        pdbs: &[],
        max_unavailable_on: true,
        ondelete: None,
    })
    .unwrap();
    assert_eq!(
        p.steps.iter().map(|s| s.partition).collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert!(p.changes.is_empty());
    assert_eq!(p.freeze_partition, 3);
    assert!(
        p.warnings[0].contains("no record of how this rollout was started"),
        "{:?}",
        p.warnings
    );
}

#[test]
fn a_fresh_plan_freezes_above_the_top_ordinal_and_lists_the_change() {
    let (mut sts, _) = midway();
    sts.status.as_mut().unwrap().current_revision = Some("redis-bbb".into());
    sts.spec.update_strategy = None;
    sts.spec.min_ready_seconds = Some(10);
    let new = with_image(&sts, "redis:8");
    let flags = SettingsFlags {
        steps: Some(vec!["1".into(), "100%".into()]),
        soak: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let settings = RunSettings::resolve(&flags, None, template_digest(&new));
    let p = build_plan(PlanInputs {
        sts: &sts,
        namespace: "db",
        requested: Some(&new),
        resume: false,
        settings: &settings,
        recorded: false,
        unready: &["redis-1".to_string()],
        pdbs: &[],
        max_unavailable_on: true,
        ondelete: None,
    })
    .unwrap();
    assert_eq!(p.freeze_partition, 3);
    assert_eq!(
        p.steps.iter().map(|s| s.partition).collect::<Vec<_>>(),
        vec![2, 0]
    );
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].to, "redis:8");
    assert_eq!((p.gates.soak_seconds, p.gates.min_ready_seconds), (15, 10));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("--allow-unready): redis-1")));
    let bad = RunSettings {
        steps: Some(vec!["0%".into()]),
        ..settings
    };
    let e = build_plan(PlanInputs {
        sts: &sts,
        namespace: "db",
        requested: Some(&new),
        resume: false,
        settings: &bad,
        recorded: false,
        unready: &[],
        pdbs: &[],
        max_unavailable_on: true,
        ondelete: None,
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(p.gates.metrics.is_none());
    let gated = RunSettings::resolve(
        &SettingsFlags {
            fail_if: vec!["errors > 0".into()],
            prometheus: Some("http://p:9090".into()),
            ..flags
        },
        None,
        template_digest(&new),
    );
    let p = build_plan(PlanInputs {
        sts: &sts,
        namespace: "db",
        requested: Some(&new),
        resume: false,
        settings: &gated,
        recorded: false,
        unready: &[],
        pdbs: &[],
        max_unavailable_on: true,
        ondelete: None,
    })
    .unwrap();
    let m = p.gates.metrics.as_ref().unwrap();
    assert_eq!((m.fail_if.len(), m.require.len(), m.passes), (1, 0, 3));
    assert_eq!(m.interval_seconds, 10.0);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.starts_with("--fail-if without any --require")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn the_metric_gate_is_recorded_and_resumed() {
    let flags = SettingsFlags {
        fail_if: vec!["errors{pod=\"$POD\"} > 0".into()],
        require: vec!["up{pod=\"$POD\"} == 1".into()],
        metric_interval: Some(Duration::from_millis(1500)),
        prometheus: Some("http://127.0.0.1:9090".into()),
        ..Default::default()
    };
    let first = RunSettings::resolve(&flags, None, "t".into());
    let m = first.metrics.clone().unwrap();
    assert_eq!(
        m.queries.iter().map(|q| q.kind).collect::<Vec<_>>(),
        vec![QueryKind::FailIf, QueryKind::Require]
    );
    assert_eq!((m.interval_ms, m.passes), (1500, 3));
    // The record round-trips through the annotation's JSON; an older record has no metrics.
    let json = serde_json::to_string(&first).unwrap();
    let back: RunSettings = serde_json::from_str(&json).unwrap();
    assert_eq!(back, first);
    let old: RunSettings = serde_json::from_str(r#"{"template":"t","steps":null,"soakSeconds":0,"stepTimeoutSeconds":300,"maxRestarts":0,"checkCmd":null,"onFailure":"pause"}"#).unwrap();
    assert_eq!(old.metrics, None);
    assert!(!serde_json::to_string(&old).unwrap().contains("metrics"));
    // --resume keeps the queries; a flag given now wins.
    let resumed = RunSettings::resolve(
        &SettingsFlags {
            metric_passes: Some(1),
            ..Default::default()
        },
        Some(&first),
        "t".into(),
    );
    let r = resumed.metrics.unwrap();
    assert_eq!((r.queries.len(), r.passes, r.interval_ms), (2, 1, 1500));
    assert_eq!(r.prometheus.as_deref(), Some("http://127.0.0.1:9090"));
    let replaced = RunSettings::resolve(
        &SettingsFlags {
            require: vec!["x".into()],
            ..Default::default()
        },
        Some(&first),
        "t".into(),
    );
    assert_eq!(
        replaced.metrics.unwrap().queries.len(),
        1,
        "given queries replace the recorded ones"
    );
    assert_eq!(
        RunSettings::resolve(&SettingsFlags::default(), None, "t".into()).metrics,
        None
    );
}

#[test]
fn pdbs_are_checked_against_the_most_pods_a_step_takes_down() {
    let (mut sts, _) = midway();
    let labels = crate::model::template_labels(&sts);
    let (k, v) = labels.iter().next().expect("template labels");
    let pdb = |name: &str, allowed: i32| -> PodDisruptionBudget {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {k: v}}},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}
        }))
        .unwrap()
    };
    let pdbs = [pdb("none", 0), pdb("one", 1), pdb("two", 2)];
    let w = pdb_warnings(&sts, &pdbs, 1);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("PodDisruptionBudget \"none\" allows 0 disruptions"),
        "{w:?}"
    );
    let w = pdb_warnings(&sts, &pdbs, 2);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[1].contains(
        "\"one\" allows 1 disruption(s) right now, but a step takes up to 2 pods down at once"
    ));

    // The plan: maxUnavailable 2 and --steps 1,100% on 3 replicas → step 2 takes 2 down.
    let ru = sts
        .spec
        .update_strategy
        .get_or_insert_with(Default::default)
        .rolling_update
        .get_or_insert_with(Default::default);
    ru.max_unavailable = Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2));
    ru.partition = Some(0);
    sts.status.as_mut().unwrap().current_revision =
        sts.status.as_ref().unwrap().update_revision.clone();
    let new = with_image(&sts, "redis:8");
    let settings = RunSettings::resolve(
        &SettingsFlags {
            steps: Some(vec!["1".into(), "100%".into()]),
            ..Default::default()
        },
        None,
        template_digest(&new),
    );
    let plan = |on: bool| {
        build_plan(PlanInputs {
            sts: &sts,
            namespace: "db",
            requested: Some(&new),
            resume: false,
            settings: &settings,
            recorded: false,
            unready: &[],
            pdbs: &pdbs,
            max_unavailable_on: on,
            ondelete: None,
        })
        .unwrap()
    };
    let on = plan(true);
    assert_eq!(
        on.steps.iter().map(|s| s.max_down).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(on.warnings.iter().any(|w| w.contains("\"one\" allows 1")));
    let off = plan(false);
    assert!(off.steps.iter().all(|s| s.max_down == 1));
    assert!(off
        .warnings
        .iter()
        .any(|w| w.contains("maxUnavailable 2, which this server's controller ignores")));
    assert!(!off.warnings.iter().any(|w| w.contains("\"one\" allows 1")));
}
