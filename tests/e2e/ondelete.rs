//! The canary's OnDelete mechanism on the current server: `--order primary-last` (the
//! primary found by `--role-cmd` or `--primary-selector`, replaced last, with
//! `--before-pod` run just before each delete), and StatefulSets that use OnDelete
//! (canary, a bad image that stops after the first pod, rollback).

pub mod current {
    use std::time::Duration;

    use k8s_openapi::jiff::Timestamp;
    use kube::ResourceExt;
    use sts_safe::model;

    use crate::support::{
        audit_events, audit_received, by_plugin, pod_names, Recorder, TestNs, SEED_REDIS,
    };

    /// The pods the plugin deleted, in order, with when the API server got each delete.
    pub fn plugin_pod_deletes(ns: &str) -> Vec<(String, Timestamp)> {
        let mut v: Vec<(String, Timestamp)> = audit_events(ns)
            .into_iter()
            .filter(|e| {
                by_plugin(e)
                    && e["verb"] == "delete"
                    && e["objectRef"]["resource"] == "pods"
                    && e["responseStatus"]["code"].as_i64().unwrap_or(0) < 300
            })
            .filter_map(|e| {
                Some((
                    e["objectRef"]["name"].as_str()?.to_string(),
                    audit_received(&e)?,
                ))
            })
            .collect();
        v.sort_by_key(|(_, t)| *t);
        v
    }

    /// Lines `POD NANOS` a hook appended to `file`.
    fn hook_log(file: &std::path::Path) -> Vec<(String, Timestamp)> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (pod, ns) = l.split_once(' ')?;
                let t = Timestamp::from_nanosecond(ns.trim().parse().ok()?).ok()?;
                Some((pod.to_string(), t))
            })
            .collect()
    }

    pub fn hook(file: &std::path::Path) -> String {
        format!("echo \"$POD_NAME $(date +%s%N)\" >> {}", file.display())
    }

    /// Every pod on the update revision, the strategy as `want`, no record left.
    pub async fn converged(ns: &TestNs, want: serde_json::Value) {
        let sts = ns.wait_ready("redis", Duration::from_secs(60)).await;
        assert_eq!(
            serde_json::to_value(&sts.spec.update_strategy).unwrap(),
            want,
            "the strategy at the end"
        );
        assert!(
            !sts.annotations()
                .contains_key("sts-safe.dev/original-strategy"),
            "the record is removed"
        );
        let update = model::update_revision(&sts).unwrap().to_string();
        for p in ns.pods().await {
            assert_eq!(
                model::revision(&p),
                Some(update.as_str()),
                "{}",
                p.name_any()
            );
        }
    }

    fn order_of(report: &serde_json::Value) -> Vec<i64> {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ordinals"][0].as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn primary_last_by_role_cmd_replaces_the_primary_at_ordinal_1_last() {
        let ns = TestNs::new("od-primary1").await;
        ns.ready_redis(3).await;
        let before = std::env::temp_dir().join(format!("{}-before.log", ns.name));
        let after = std::env::temp_dir().join(format!("{}-after.log", ns.name));
        let rec = Recorder::start(&ns).await;
        let r = ns
            .plugin(&[
                "canary",
                "redis",
                "--image",
                "redis=redis:7.4-alpine",
                "--order",
                "primary-last",
                "--role-cmd",
                "if [ \"$POD_NAME\" = redis-1 ]; then echo primary; else echo replica; fi",
                "--before-pod",
                &hook(&before),
                "--after-pod",
                &hook(&after),
                "--yes",
                "-o",
                "json",
            ])
            .await;
        r.expect_code(0);
        let report = r.json();
        assert_eq!(report["plan"]["mechanism"], "onDelete", "{report}");
        assert_eq!(report["plan"]["primary"], "redis-1");
        // The current server defaults maxUnavailable to 1; the strategy is kept as it was.
        assert_eq!(
            report["plan"]["restoreStrategy"],
            "RollingUpdate (partition 0, maxUnavailable 1)"
        );
        assert_eq!(order_of(&report), [2, 0, 1]);
        assert!(
            report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .chain(report["plan"]["steps"].as_array().unwrap())
                .all(|s| s.get("partition").is_none()),
            "no partition under OnDelete: {report}"
        );
        assert!(
            r.stderr
                .contains("step 3/3: deleted redis-1 (the primary, last)"),
            "{}",
            r.stderr
        );

        // The audit log: the primary deleted last, each delete right after its hook.
        let deletes = plugin_pod_deletes(&ns.name);
        let names: Vec<&str> = deletes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["redis-2", "redis-0", "redis-1"]);
        let hooks = hook_log(&before);
        assert_eq!(
            hooks.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            names,
            "--before-pod once per pod, in the same order"
        );
        for (i, ((pod, hooked), (_, deleted))) in hooks.iter().zip(&deletes).enumerate() {
            assert!(hooked < deleted, "{pod}: hook before its delete");
            if i > 0 {
                assert!(
                    deletes[i - 1].1 < *hooked,
                    "{pod}: hook after the previous pod's delete"
                );
            }
        }
        let afters = hook_log(&after);
        assert_eq!(
            afters.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            names,
            "--after-pod once per pod, after it passed"
        );
        converged(
            &ns,
            serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}}),
        )
        .await;
        rec.caught_up().await;
        assert_eq!(
            rec.max_unavailable(&pod_names("redis", 3)),
            1,
            "one pod down at a time"
        );
    }

    #[tokio::test]
    async fn primary_last_by_selector_with_the_primary_at_ordinal_0_keeps_max_unavailable() {
        let ns = TestNs::new("od-primary0").await;
        let yaml = SEED_REDIS.replace(
            "  replicas: 3\n",
            "  replicas: 3\n  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 0, maxUnavailable: 2}}\n",
        );
        ns.apply(&yaml).await;
        ns.wait_ready("redis", Duration::from_secs(60)).await;
        ns.kubectl(&["label", "pod", "redis-0", "role=primary"])
            .expect_code(0);
        let before = std::env::temp_dir().join(format!("{}-before.log", ns.name));
        let r = ns
            .plugin(&[
                "canary",
                "redis",
                "--image",
                "redis=redis:7.4-alpine",
                "--order",
                "primary-last",
                "--primary-selector",
                "role=primary",
                "--before-pod",
                &hook(&before),
                "--yes",
                "-o",
                "json",
            ])
            .await;
        r.expect_code(0);
        let report = r.json();
        assert_eq!(report["plan"]["primary"], "redis-0");
        assert_eq!(order_of(&report), [2, 1, 0]);
        let deletes = plugin_pod_deletes(&ns.name);
        assert_eq!(
            deletes.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["redis-2", "redis-1", "redis-0"]
        );
        let hooks = hook_log(&before);
        let (last_pod, last_hook) = hooks.last().unwrap();
        assert_eq!(last_pod, "redis-0");
        assert!(
            deletes[1].1 < *last_hook && *last_hook < deletes[2].1,
            "--before-pod of the primary just before its delete"
        );
        // The original strategy, maxUnavailable included, is back.
        converged(
            &ns,
            serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}),
        )
        .await;
    }

    #[tokio::test]
    async fn an_ondelete_statefulset_gets_a_canary_a_stop_at_a_bad_image_and_a_rollback() {
        let ns = TestNs::new("od-native").await;
        let yaml = SEED_REDIS.replace(
            "  replicas: 3\n",
            "  replicas: 3\n  updateStrategy: {type: OnDelete}\n",
        );
        ns.apply(&yaml).await;
        ns.wait_ready("redis", Duration::from_secs(60)).await;
        let rec = Recorder::start(&ns).await;
        let r = ns
            .plugin(&[
                "canary",
                "redis",
                "--image",
                "redis=redis:7.4-alpine",
                "--yes",
            ])
            .await;
        r.expect_code(0);
        assert!(
            r.stdout.contains("Mechanism: updateStrategy OnDelete")
                && r.stdout.contains("1. delete redis-2"),
            "{}",
            r.stdout
        );
        converged(&ns, serde_json::json!({"type": "OnDelete"})).await;
        rec.caught_up().await;
        assert_eq!(rec.max_unavailable(&pod_names("redis", 3)), 1);
        let good = model::update_revision(&ns.sts("redis").await)
            .unwrap()
            .to_string();

        // A crash-looping image stops after the first pod.
        let r = ns
            .plugin(&[
                "canary",
                "redis",
                "--image",
                "redis=redis:7.4-crashloop",
                "--step-timeout",
                "60s",
                "--yes",
            ])
            .await;
        r.expect_code(3)
            .expect_error_line("It stays on updateStrategy OnDelete");
        let sts = ns.sts("redis").await;
        let bad = model::update_revision(&sts).unwrap().to_string();
        assert_ne!(bad, good);
        let revs: Vec<(String, bool)> = {
            let mut v: Vec<(String, bool)> = ns
                .pods()
                .await
                .iter()
                .map(|p| (p.name_any(), model::revision(p) == Some(bad.as_str())))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            revs,
            [
                ("redis-0".to_string(), false),
                ("redis-1".to_string(), false),
                ("redis-2".to_string(), true)
            ],
            "only the first pod got the bad image"
        );

        // rollback: the template back, the bad pod replaced, OnDelete kept.
        let r = ns.plugin(&["rollback", "redis", "--yes"]).await;
        r.expect_code(0);
        assert!(
            r.stdout.contains("updateStrategy stays OnDelete")
                || r.stderr.contains("updateStrategy OnDelete"),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
        converged(&ns, serde_json::json!({"type": "OnDelete"})).await;
        assert_eq!(
            model::update_revision(&ns.sts("redis").await),
            Some(good.as_str()),
            "back on the good revision"
        );
    }
}
