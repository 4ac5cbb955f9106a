//! sim-kubelet's metrics exporter as the real Prometheus of the cluster sees it
//! (`scripts/cluster.sh up` starts Prometheus scraping sim-kubelet's file_sd targets and
//! exports its URL as `STS_SAFE_PROMETHEUS`). The pods' behaviour comes from the
//! template's `sim.sts-safe.dev/metrics` annotation.

use std::time::{Duration, Instant};

use hyper::body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::support::TestNs;

/// How long a new pod may take to show in Prometheus: its file_sd file is read within a
/// second, but Prometheus hands new targets to its scrapers at most every 5 s, and a
/// 5 s rate needs two samples.
const SEEN_WITHIN: Duration = Duration::from_secs(30);

fn prometheus() -> String {
    match std::env::var("STS_SAFE_PROMETHEUS") {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
        _ => panic!(
            "STS_SAFE_PROMETHEUS is not set: these tests need the cluster's Prometheus. Run \
             `make cluster-up` and `eval \"$(scripts/cluster.sh env)\"`, or run `make test`."
        ),
    }
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One sample of an instant vector: the series' labels and its value.
#[derive(Debug)]
struct Sample {
    labels: Value,
    value: f64,
}

/// Evaluates `promql` now through Prometheus' HTTP API; fails the test on any error.
async fn query(promql: &str) -> Vec<Sample> {
    let url = format!("{}/api/v1/query?query={}", prometheus(), encode(promql));
    let client = Client::builder(TokioExecutor::new()).build_http::<String>();
    let req = http::Request::get(&url)
        .body(String::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .unwrap_or_else(|_| panic!("no answer from Prometheus within 5 s: GET {url}"))
        .unwrap_or_else(|e| panic!("Prometheus unreachable (GET {url}): {e}"));
    let status = resp.status();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame.expect("reading Prometheus' answer").into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(status, 200, "GET {url}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["status"], "success", "{promql}: {text}");
    assert_eq!(v["data"]["resultType"], "vector", "{promql}: {text}");
    v["data"]["result"]
        .as_array()
        .expect("result array")
        .iter()
        .map(|s| Sample {
            labels: s["metric"].clone(),
            value: s["value"][1]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or_else(|| panic!("bad sample in {text}")),
        })
        .collect()
}

/// Polls `promql` every 500 ms until its result satisfies `ok`, or fails the test after
/// `within` showing the last result.
async fn until(what: &str, promql: &str, within: Duration, ok: impl Fn(&[Sample]) -> bool) {
    let start = Instant::now();
    loop {
        let result = query(promql).await;
        if ok(&result) {
            return;
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}: `{promql}` = {result:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The single value of `promql` (which must select exactly one series).
async fn single(promql: &str) -> f64 {
    let result = query(promql).await;
    assert_eq!(result.len(), 1, "`{promql}` = {result:?}");
    result[0].value
}

/// A StatefulSet of one pod without volumes, its template annotated with `metrics`.
async fn app(ns: &TestNs, name: &str, metrics: Option<&str>) {
    let annotations = metrics.map_or_else(String::new, |m| {
        format!("      annotations:\n        sim.sts-safe.dev/metrics: \"{m}\"\n")
    });
    ns.apply(&format!(
        "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: {name}
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
{annotations}    spec:
      containers:
        - name: app
          image: nginx:1.27
"
    ))
    .await;
}

#[tokio::test]
async fn pods_are_scraped_with_their_request_rates() {
    prometheus(); // fails at once without the cluster's Prometheus
    let ns = TestNs::new("simmetrics-rates").await;
    app(&ns, "web", None).await;
    app(&ns, "bad", Some("errors")).await;
    ns.wait_ready("web", Duration::from_secs(60)).await;
    ns.wait_ready("bad", Duration::from_secs(60)).await;
    let n = &ns.name;

    for pod in ["web-0", "bad-0"] {
        until(
            &format!("{pod} scraped"),
            &format!(r#"up{{namespace="{n}",pod="{pod}"}}"#),
            SEEN_WITHIN,
            |r| r.len() == 1 && r[0].value == 1.0,
        )
        .await;
        // A full 5 s window of samples (1 s scrapes), so that a 5 s rate is not a
        // partial window's underestimate.
        until(
            &format!("6 s of {pod}'s samples"),
            &format!(
                r#"count_over_time(http_requests_total{{namespace="{n}",pod="{pod}"}}[6s]) >= 6"#
            ),
            SEEN_WITHIN,
            |r| r.len() == 2,
        )
        .await;
    }
    // The target carries the pod's labels (Prometheus adds job and instance).
    let up = query(&format!(r#"up{{namespace="{n}",pod="web-0"}}"#)).await;
    assert_eq!(up[0].labels["statefulset"], "web", "{up:?}");
    assert_eq!(up[0].labels["job"], "sim-pods", "{up:?}");

    // 20 requests/s; all successful on the default pod, half failing with `errors`.
    let rate = |pod: &str, code: &str| {
        format!(r#"rate(http_requests_total{{namespace="{n}",pod="{pod}",code="{code}"}}[5s])"#)
    };
    let ok = single(&rate("web-0", "200")).await;
    assert!((15.0..=25.0).contains(&ok), "web-0 200 rate {ok}");
    assert_eq!(single(&rate("web-0", "500")).await, 0.0, "web-0 fails");
    let failing = single(&rate("bad-0", "500")).await;
    assert!((7.0..=13.0).contains(&failing), "bad-0 500 rate {failing}");
    let bad_ok = single(&rate("bad-0", "200")).await;
    assert!((7.0..=13.0).contains(&bad_ok), "bad-0 200 rate {bad_ok}");
    // The gate's usual error ratio, and the application's readiness.
    let ratio = single(&format!(
        r#"sum(rate(http_requests_total{{namespace="{n}",pod="bad-0",code="500"}}[5s])) / sum(rate(http_requests_total{{namespace="{n}",pod="bad-0"}}[5s]))"#
    ))
    .await;
    assert!((0.4..=0.6).contains(&ratio), "bad-0 error ratio {ratio}");
    let ready = single(&format!(r#"sim_pod_ready{{namespace="{n}",pod="web-0"}}"#)).await;
    assert_eq!(ready, 1.0);
    // Failed requests are slow: the latency histogram shows it.
    let p99 = |pod: &str| {
        format!(
            r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{namespace="{n}",pod="{pod}"}}[5s])))"#
        )
    };
    let fast = single(&p99("web-0")).await;
    let slow = single(&p99("bad-0")).await;
    assert!(
        fast <= 0.25 && slow > 0.25,
        "p99 latency: web-0 {fast}, bad-0 {slow}"
    );
}

#[tokio::test]
async fn a_pod_with_metrics_none_has_no_series_and_a_stopped_pod_goes_stale() {
    prometheus(); // fails at once without the cluster's Prometheus
    let ns = TestNs::new("simmetrics-none").await;
    app(&ns, "quiet", Some("none")).await;
    app(&ns, "loud", None).await;
    ns.wait_ready("quiet", Duration::from_secs(60)).await;
    ns.wait_ready("loud", Duration::from_secs(60)).await;
    let n = &ns.name;

    // The sibling started at the same time is scraped with a rate; the silent pod's
    // target would have been handed to the scrapers with it.
    until(
        "loud-0's request rate",
        &format!(r#"rate(http_requests_total{{namespace="{n}",pod="loud-0",code="200"}}[5s]) > 0"#),
        SEEN_WITHIN,
        |r| r.len() == 1,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let quiet = query(&format!(r#"{{namespace="{n}",pod="quiet-0"}}"#)).await;
    assert!(quiet.is_empty(), "quiet-0 has series: {quiet:?}");
    let all = query(&format!(r#"count by (pod) ({{namespace="{n}"}})"#)).await;
    let pods: Vec<&Value> = all.iter().map(|s| &s.labels["pod"]).collect();
    assert_eq!(pods, [&Value::from("loud-0")], "{all:?}");

    // A pod that stops leaves the targets: its series go stale (instant queries no
    // longer return them).
    ns.patch_sts("loud", serde_json::json!({"spec": {"replicas": 0}}))
        .await;
    until(
        "loud-0's series to go stale",
        &format!(r#"up{{namespace="{n}",pod="loud-0"}}"#),
        SEEN_WITHIN,
        <[Sample]>::is_empty,
    )
    .await;
}
