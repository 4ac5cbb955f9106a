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
