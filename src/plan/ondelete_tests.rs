use super::*;

fn sts(strategy: &str, annotations: &str) -> StatefulSet {
    serde_yaml::from_str(&format!(
        "metadata: {{name: db, generation: 4, resourceVersion: '77'{annotations}}}\nspec:\n  replicas: 3\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n  {strategy}\n  template: {{metadata: {{labels: {{app: db}}}}, spec: {{containers: [{{name: db, image: 'pg:16'}}]}}}}\n"
    ))
    .unwrap()
}

#[test]
fn the_primary_goes_last() {
    let s = sts("updateStrategy: {type: RollingUpdate}", "");
    assert_eq!(delete_order(&s, None), vec![2, 1, 0]);
    assert_eq!(delete_order(&s, Some(0)), vec![2, 1, 0]);
    assert_eq!(delete_order(&s, Some(1)), vec![2, 0, 1]);
    assert_eq!(
        delete_order(&s, Some(7)),
        vec![2, 1, 0],
        "a primary out of range is ignored"
    );
}

#[test]
fn strategies_are_recorded_and_restored() {
    let ru = sts(
        "updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 0, maxUnavailable: 2}}",
        "",
    );
    let original = current_strategy(&ru);
    assert_eq!(
        describe_strategy(&original),
        "RollingUpdate (partition 0, maxUnavailable 2)"
    );
    assert_eq!(
        strategy_to_restore(
            &serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 3}})
        ),
        serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        "every pod runs the new template at the end: partition 0"
    );
    assert_eq!(
        strategy_to_restore(&serde_json::json!({"type": "OnDelete"})),
        serde_json::json!({"type": "OnDelete"})
    );
    assert_eq!(
        current_strategy(&sts("", "")),
        serde_json::json!({"type": "RollingUpdate"})
    );
    let template = ru.spec.template.clone();
    let mut new = template.clone();
    new.spec.as_mut().unwrap().containers[0].image = Some("pg:17".into());
    let Patch::Merge(p) = freeze_patch("77", Some(&new), &ru, &original, Some("{}")) else {
        panic!("a merge patch")
    };
    assert_eq!(p["metadata"]["resourceVersion"], "77");
    assert_eq!(
        p["spec"]["updateStrategy"],
        serde_json::json!({"type": "OnDelete", "rollingUpdate": null})
    );
    assert_eq!(
        p["spec"]["template"]["spec"]["containers"][0]["image"],
        "pg:17"
    );
    let recorded = p["metadata"]["annotations"][ORIGINAL_STRATEGY_ANNOTATION]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(p["metadata"]["annotations"][SETTINGS_ANNOTATION], "{}");

    // The interrupted run's state: OnDelete with the record.
    let frozen = sts(
        "updateStrategy: {type: OnDelete}",
        &format!(
            ", annotations: {{sts-safe.dev/original-strategy: '{}'}}",
            recorded
        ),
    );
    assert_eq!(recorded_strategy(&frozen), Some(original.clone()));
    assert!(!restored(&frozen, &original));
    let Patch::Json(ops) = restore_patch(4, &original, true) else {
        panic!("a JSON patch")
    };
    let ops = serde_json::to_value(ops).unwrap();
    assert_eq!(ops[0]["op"], "test");
    assert_eq!(
        ops[1]["value"],
        serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}})
    );
    assert_eq!(
        ops[2]["path"],
        "/metadata/annotations/sts-safe.dev~1original-strategy"
    );
    assert!(restored(&ru, &original));
    let native = sts("updateStrategy: {type: OnDelete}", "");
    assert!(restored(&native, &serde_json::json!({"type": "OnDelete"})));
}

#[test]
fn pods_on_the_update_revision_are_done() {
    let pod = |name: &str, rev: &str| -> Pod {
        serde_yaml::from_str(&format!(
            "metadata: {{name: {name}, labels: {{controller-revision-hash: {rev}}}}}"
        ))
        .unwrap()
    };
    let pods = [pod("db-0", "new"), pod("db-1", "old"), pod("db-2", "new")];
    assert_eq!(
        split_done("db", &[2, 0, 1], &pods, "new"),
        (vec![2, 0], vec![1])
    );
}

#[test]
fn exactly_one_primary() {
    assert_eq!(
        one_primary("db", &[(0, false), (1, true), (2, false)], "x").unwrap(),
        1
    );
    let none = one_primary("db", &[(0, false)], "label role=primary").unwrap_err();
    assert_eq!(none.exit_code(), 3);
    assert!(none
        .to_string()
        .contains("no pod of statefulset \"db\" is the primary by label role=primary"));
    let two = one_primary("db", &[(0, true), (2, true)], "x").unwrap_err();
    assert!(two
        .to_string()
        .contains("2 pods of statefulset \"db\" are the primary by x (db-0, db-2)"));
    assert_eq!(
        parse_selector("role = primary").unwrap(),
        ("role".into(), "primary".into())
    );
    assert_eq!(parse_selector("role").unwrap_err().exit_code(), 2);
}
