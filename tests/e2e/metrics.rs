//! The canary's Prometheus gate against a real Prometheus (started with the cluster,
//! `STS_SAFE_PROMETHEUS`) scraping sim-kubelet's per-pod exporter; the pods' metric
//! behaviour comes from the template's `sim.sts-safe.dev/metrics` annotation.
//! Prometheus stopped mid-canary is a fault test (`faults::metrics`): it stops the
//! server every test here asks.

pub mod current {
    use std::time::Duration;

    use sts_safe::model;

    use crate::support::{audit_is_write, plugin_audit_events, TestNs};

    /// The error ratio of the pod over the last 5 s, firing above 1 %.
    pub const ERROR_RATE: &str = r#"sum(rate(http_requests_total{namespace="$NAMESPACE",pod="$POD",code=~"5.."}[5s])) / sum(rate(http_requests_total{namespace="$NAMESPACE",pod="$POD"}[5s])) > 0.01"#;
    /// The pod's target is scraped. An instant selector, so an earlier pod of the same
    /// name (its series end with a staleness marker) never satisfies it.
    pub const UP: &str = r#"up{namespace="$NAMESPACE",pod="$POD"} == 1"#;

    pub fn prometheus() -> String {
        std::env::var("STS_SAFE_PROMETHEUS").expect(
            "STS_SAFE_PROMETHEUS is not set: start the cluster with `make cluster-up` (it starts Prometheus) and export its line",
        )
    }

    /// A --patch file: the new image and the pods' simulated metric behaviour.
    pub fn release(ns: &TestNs, metrics: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("{}-release.yaml", ns.name));
        std::fs::write(
            &path,
            format!(
                "metadata:\n  annotations:\n    sim.sts-safe.dev/metrics: \"{metrics}\"\nspec:\n  containers:\n    - name: redis\n      image: redis:7.4-alpine\n"
            ),
        )
        .unwrap();
        path
    }

    pub fn gate_args<'a>(prom: &'a str, patch: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "canary",
            "redis",
            "--patch",
            patch,
            "--prometheus",
            prom,
            "--fail-if",
            ERROR_RATE,
            "--require",
            UP,
            "--metric-interval",
            "1s",
            "--yes",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        args
    }

    async fn revisions(ns: &TestNs, update: &str) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = ns
            .pods()
            .await
            .iter()
            .map(|p| {
                (
                    kube::ResourceExt::name_any(p),
                    model::revision(p) == Some(update),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_healthy_release_passes_the_metric_gate() {
        let ns = TestNs::new("metrics-ok").await;
        ns.ready_redis(3).await;
        let prom = prometheus();
        let patch = release(&ns, "healthy");
        let patch = patch.to_str().unwrap();
        let r = ns
            .plugin(&gate_args(&prom, patch, &["--metric-passes", "2"]))
            .await;
        r.expect_code(0);
        let report = r.json();
        assert_eq!(report["outcome"], "completed", "{report}");
        let metrics = &report["plan"]["gates"]["metrics"];
        assert_eq!(metrics["failIf"][0], ERROR_RATE);
        assert_eq!(metrics["require"][0], UP);
        assert_eq!(metrics["passes"], 2);
        let steps = report["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 3);
        for s in steps {
            // Two queries per evaluation, at least two evaluations per pod.
            let q = s["prometheusQueries"].as_u64().unwrap();
            assert!(q >= 4, "{s}");
        }
        assert!(
            r.stderr.contains("passed in") && r.stderr.contains("(metrics 2/2)"),
            "{}",
            r.stderr
        );
        let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
        let update = model::update_revision(&sts).unwrap().to_string();
        assert_eq!(model::current_revision(&sts), Some(update.as_str()));
        assert!(revisions(&ns, &update).await.iter().all(|(_, new)| *new));
    }

    #[tokio::test]
    async fn a_release_whose_pods_report_errors_stops_at_the_first_pod() {
        let ns = TestNs::new("metrics-errors").await;
        ns.ready_redis(3).await;
        let prom = prometheus();
        let patch = release(&ns, "errors");
        let patch = patch.to_str().unwrap();
        // The soak keeps the pod from passing before its exporter has two scrapes.
        let r = ns.plugin(&gate_args(&prom, patch, &["--soak", "3s"])).await;
        r.expect_code(3);
        let report = r.json();
        assert_eq!(report["outcome"], "failed", "{report}");
        let failure = &report["failure"];
        assert_eq!(failure["pod"], "redis-2");
        let metric = &failure["metric"];
        assert_eq!(metric["kind"], "failIf");
        assert!(
            metric["query"]
                .as_str()
                .unwrap()
                .contains(&format!("namespace=\"{}\",pod=\"redis-2\"", ns.name)),
            "placeholders filled: {metric}"
        );
        let value: f64 = metric["samples"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (0.2..=0.8).contains(&value),
            "half the requests fail: {metric}"
        );
        assert!(metric["evaluatedAt"].as_str().is_some());
        // The diagnosis on the terminal: the query, the sample and its value.
        assert!(
            r.stderr.contains("query: sum(rate(http_requests_total{")
                && r.stderr.contains("sample: {} ")
                && r.stderr.contains("evaluated at "),
            "{}",
            r.stderr
        );
        let sts = ns.sts("redis").await;
        assert_eq!(model::partition(&sts), 2, "stopped after the first pod");
        let update = model::update_revision(&sts).unwrap().to_string();
        assert_eq!(
            revisions(&ns, &update).await,
            [
                ("redis-0".to_string(), false),
                ("redis-1".to_string(), false),
                ("redis-2".to_string(), true)
            ]
        );
    }

    #[tokio::test]
    async fn an_error_burst_after_the_soak_is_caught_before_the_next_step() {
        let ns = TestNs::new("metrics-burst").await;
        ns.ready_redis(3).await;
        let prom = prometheus();
        // Healthy for 8 s after the container starts: redis-2 passes (Ready, 5 s soak,
        // 2 passes) before its burst, which begins while redis-1 soaks in step 2.
        let patch = release(&ns, "burst-after=8s");
        let patch = patch.to_str().unwrap();
        let r = ns
            .plugin(&gate_args(
                &prom,
                patch,
                &["--soak", "5s", "--metric-passes", "2"],
            ))
            .await;
        r.expect_code(3);
        let report = r.json();
        let steps = report["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "steps 1 and 2 passed: {report}");
        let failure = &report["failure"];
        assert_eq!(failure["pod"], "redis-2", "{report}");
        assert!(
            failure["reason"].as_str().unwrap().contains(
                "redis-2 passed an earlier step, but before step 3 its metric gate says: --fail-if"
            ),
            "{failure}"
        );
        assert_eq!(
            model::partition(&ns.sts("redis").await),
            1,
            "redis-0 was never exposed"
        );
    }

    #[tokio::test]
    async fn a_pod_without_series_fails_its_require_at_the_step_timeout() {
        let ns = TestNs::new("metrics-none").await;
        ns.ready_redis(2).await;
        let prom = prometheus();
        let patch = release(&ns, "none");
        let patch = patch.to_str().unwrap();
        let r = ns
            .plugin(&gate_args(&prom, patch, &["--step-timeout", "8s"]))
            .await;
        r.expect_code(3);
        let report = r.json();
        let failure = &report["failure"];
        assert_eq!(failure["pod"], "redis-1");
        let reason = failure["reason"].as_str().unwrap();
        assert!(
            reason.contains("step timeout (8s) reached")
                && reason.contains("--require `up{namespace=")
                && reason.contains("returned no sample"),
            "{reason}"
        );
        assert_eq!(failure["metric"]["kind"], "require", "{failure}");
        assert_eq!(model::partition(&ns.sts("redis").await), 1);
    }

    #[tokio::test]
    async fn an_invalid_query_is_a_usage_error_before_any_write() {
        let ns = TestNs::new("metrics-invalid").await;
        ns.ready_redis(2).await;
        let prom = prometheus();
        let before = ns.sts("redis").await.metadata.resource_version;
        let r = ns
            .plugin(&[
                "canary",
                "redis",
                "--image",
                "redis=redis:7.4-alpine",
                "--prometheus",
                &prom,
                "--fail-if",
                "rate(http_requests_total{pod=\"$POD\"}[1m]",
                "--yes",
            ])
            .await;
        r.expect_code(2)
            .expect_error_line("--fail-if `rate(http_requests_total{pod=\"redis-1\"}[1m]` is not a valid query for Prometheus at");
        assert!(r.stderr.contains("parse error"), "{}", r.stderr);
        assert_eq!(ns.sts("redis").await.metadata.resource_version, before);
        let writes: Vec<_> = plugin_audit_events(&ns.name)
            .into_iter()
            .filter(audit_is_write)
            .collect();
        assert!(writes.is_empty(), "nothing written: {writes:?}");

        // Without a Prometheus to ask, the gate is a usage error too.
        let r = ns
            .plugin(&[
                "canary",
                "redis",
                "--image",
                "redis=redis:7.4-alpine",
                "--prometheus",
                "http://127.0.0.1:1",
                "--require",
                UP,
                "--yes",
            ])
            .await;
        r.expect_code(1).expect_error_line(
            "the metric gate cannot run: cannot reach Prometheus at http://127.0.0.1:1",
        );
        assert_eq!(ns.sts("redis").await.metadata.resource_version, before);
    }

    #[tokio::test]
    async fn the_plan_shows_the_gate_and_warns_without_a_require() {
        let ns = TestNs::new("metrics-plan").await;
        ns.ready_redis(2).await;
        let prom = prometheus();
        let r = ns
            .plugin(&[
                "canary",
                "redis",
                "--image",
                "redis=redis:7.4-alpine",
                "--prometheus",
                &prom,
                "--fail-if",
                ERROR_RATE,
                "--dry-run",
            ])
            .await;
        r.expect_code(0);
        assert!(
            r.stdout.contains(&format!(
                "Metric gate (Prometheus {prom}): every 10s from Ready, passed after 3 passing evaluation(s) in a row and the soak"
            )) && r.stdout.contains(&format!("fail at once if it returns a sample: {ERROR_RATE}")),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout
                .contains("warning: --fail-if without any --require"),
            "{}",
            r.stdout
        );
    }
}
