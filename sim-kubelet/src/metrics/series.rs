//! Pure: the metrics vocabulary (the annotation [`METRICS_ANNOTATION`]) and the series of
//! one simulated application at a given time after its containers started.
//!
//! Every value is a deterministic function of the time since the containers started, so
//! a page is computed at scrape time: no loop counts requests in the background, and a
//! restarted simulator (which keeps the pod's `startTime`) continues the same counters.

use std::fmt::Write as _;
use std::time::Duration;

/// Annotation selecting what the pod's application exports (in the pod template).
pub const METRICS_ANNOTATION: &str = "sim.sts-safe.dev/metrics";
/// Requests per second every simulated application serves.
pub const REQUESTS_PER_SECOND: f64 = 20.0;
/// The error ratio of `errors` without a value.
pub const DEFAULT_ERROR_RATIO: f64 = 0.5;
/// The error ratio of `burst-after=` once the burst began.
pub const BURST_ERROR_RATIO: f64 = 0.5;

/// Upper bounds of the latency histogram's buckets (seconds), `+Inf` besides.
pub const BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Cumulative share of successful requests at or below each bucket's bound.
const OK_SHARES: [f64; 8] = [0.10, 0.50, 0.90, 0.97, 0.99, 1.0, 1.0, 1.0];
/// Cumulative share of failed (500) requests at or below each bucket's bound: slow.
const ERROR_SHARES: [f64; 8] = [0.0, 0.0, 0.0, 0.05, 0.20, 0.60, 0.90, 1.0];
/// Mean latency of a successful and of a failed request (seconds), for `_sum`.
const OK_MEAN: f64 = 0.012;
const ERROR_MEAN: f64 = 0.3;

/// What the application of a pod does, as its metrics show.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricsBehavior {
    /// No errors, low latency (the default).
    Healthy,
    /// This fraction of the requests fail with code 500, from the start.
    Errors(f64),
    /// Healthy, then [`BURST_ERROR_RATIO`] of the requests fail from this long after the
    /// containers started.
    BurstAfter(Duration),
    /// No metrics at all: no scrape target, no series.
    None,
}

impl MetricsBehavior {
    /// Short name used in logs.
    pub fn name(self) -> String {
        match self {
            MetricsBehavior::Healthy => "healthy".into(),
            MetricsBehavior::Errors(r) => format!("errors={r}"),
            MetricsBehavior::BurstAfter(d) => {
                format!("burst-after={}", humantime::format_duration(d))
            }
            MetricsBehavior::None => "none".into(),
        }
    }
}

/// Parses the annotation's value: `healthy`, `errors`, `errors=0.25` (or `errors=25%`),
/// `burst-after=20s`, `none`.
pub fn parse_annotation(value: &str) -> Result<MetricsBehavior, String> {
    let value = value.trim();
    match value {
        "healthy" => return Ok(MetricsBehavior::Healthy),
        "errors" => return Ok(MetricsBehavior::Errors(DEFAULT_ERROR_RATIO)),
        "none" => return Ok(MetricsBehavior::None),
        _ => {}
    }
    if let Some(r) = value.strip_prefix("errors=") {
        let r = r.trim();
        let (number, scale) = match r.strip_suffix('%') {
            Some(p) => (p.trim(), 100.0),
            None => (r, 1.0),
        };
        let ratio = number
            .parse::<f64>()
            .ok()
            .map(|x| x / scale)
            .filter(|x| x.is_finite() && (0.0..=1.0).contains(x))
            .ok_or_else(|| {
                format!("bad error ratio {r:?}: use a number from 0 to 1, or 0% to 100%")
            })?;
        return Ok(MetricsBehavior::Errors(ratio));
    }
    if let Some(d) = value.strip_prefix("burst-after=") {
        return humantime::parse_duration(d.trim())
            .map(MetricsBehavior::BurstAfter)
            .map_err(|e| format!("bad duration {d:?}: {e}"));
    }
    Err(format!(
        "unknown metrics behaviour {value:?} (healthy, errors[=RATIO], burst-after=DURATION, none)"
    ))
}

/// Requests served since the containers started, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Code 200.
    pub ok: u64,
    /// Code 500.
    pub errors: u64,
}

impl Counts {
    pub fn total(self) -> u64 {
        self.ok + self.errors
    }
}

fn whole(x: f64) -> u64 {
    // Non-negative and far below 2^53 for any realistic uptime.
    x.max(0.0).floor() as u64
}

/// The request counters `since_start` after the containers started. Both counters are
/// non-decreasing in time.
pub fn counts_at(behavior: MetricsBehavior, since_start: Duration) -> Counts {
    let t = since_start.as_secs_f64();
    let r = REQUESTS_PER_SECOND;
    match behavior {
        MetricsBehavior::Healthy => Counts {
            ok: whole(r * t),
            errors: 0,
        },
        MetricsBehavior::Errors(ratio) => Counts {
            ok: whole(r * (1.0 - ratio) * t),
            errors: whole(r * ratio * t),
        },
        MetricsBehavior::BurstAfter(burst) => {
            let b = burst.as_secs_f64();
            if t <= b {
                Counts {
                    ok: whole(r * t),
                    errors: 0,
                }
            } else {
                let after = t - b;
                Counts {
                    ok: whole(r * b + r * (1.0 - BURST_ERROR_RATIO) * after),
                    errors: whole(r * BURST_ERROR_RATIO * after),
                }
            }
        }
        MetricsBehavior::None => Counts::default(),
    }
}

/// Cumulative bucket counts of the latency histogram (one per [`BUCKETS`] bound; `+Inf`
/// is the total).
pub fn bucket_counts(c: Counts) -> [u64; 8] {
    let mut out = [0; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = whole(c.ok as f64 * OK_SHARES[i]) + whole(c.errors as f64 * ERROR_SHARES[i]);
    }
    out
}

/// Renders one pod's page in the Prometheus text exposition format (version 0.0.4).
pub fn render(c: Counts, ready: bool) -> String {
    let mut s = String::with_capacity(1024);
    let _ = writeln!(
        s,
        "# HELP http_requests_total Requests served by the simulated application, by status code.\n\
         # TYPE http_requests_total counter\n\
         http_requests_total{{code=\"200\"}} {}\n\
         http_requests_total{{code=\"500\"}} {}",
        c.ok, c.errors
    );
    let _ = writeln!(
        s,
        "# HELP http_request_duration_seconds Latency of the simulated application's requests.\n\
         # TYPE http_request_duration_seconds histogram"
    );
    for (le, n) in BUCKETS.iter().zip(bucket_counts(c)) {
        let _ = writeln!(s, "http_request_duration_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let sum = c.ok as f64 * OK_MEAN + c.errors as f64 * ERROR_MEAN;
    let _ = writeln!(
        s,
        "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}\n\
         http_request_duration_seconds_sum {sum:.3}\n\
         http_request_duration_seconds_count {total}",
        total = c.total()
    );
    let _ = writeln!(
        s,
        "# HELP sim_pod_ready Whether the simulated application considers itself ready (1) or not (0).\n\
         # TYPE sim_pod_ready gauge\n\
         sim_pod_ready {}",
        u8::from(ready)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn annotation_values() {
        assert_eq!(parse_annotation("healthy"), Ok(MetricsBehavior::Healthy));
        assert_eq!(parse_annotation(" none "), Ok(MetricsBehavior::None));
        assert_eq!(parse_annotation("errors"), Ok(MetricsBehavior::Errors(0.5)));
        assert_eq!(
            parse_annotation("errors=0.25"),
            Ok(MetricsBehavior::Errors(0.25))
        );
        assert_eq!(
            parse_annotation("errors=10%"),
            Ok(MetricsBehavior::Errors(0.1))
        );
        assert_eq!(
            parse_annotation("errors=1"),
            Ok(MetricsBehavior::Errors(1.0))
        );
        assert_eq!(
            parse_annotation("burst-after=20s"),
            Ok(MetricsBehavior::BurstAfter(Duration::from_secs(20)))
        );
        assert_eq!(
            parse_annotation("burst-after=1m 30s"),
            Ok(MetricsBehavior::BurstAfter(Duration::from_secs(90)))
        );
        for bad in [
            "errors=1.5",
            "errors=-0.1",
            "errors=NaN",
            "errors=half",
            "errors=",
            "burst-after=soon",
            "burst-after=",
            "broken",
            "",
        ] {
            assert!(parse_annotation(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn healthy_counts_requests_without_errors() {
        let b = MetricsBehavior::Healthy;
        assert_eq!(counts_at(b, Duration::ZERO), Counts::default());
        assert_eq!(counts_at(b, secs(10.0)), Counts { ok: 200, errors: 0 });
        assert_eq!(counts_at(b, secs(0.51)).ok, 10);
    }

    #[test]
    fn errors_fail_that_share_from_the_start() {
        let c = counts_at(MetricsBehavior::Errors(0.5), secs(10.0));
        assert_eq!(
            c,
            Counts {
                ok: 100,
                errors: 100
            }
        );
        let c = counts_at(MetricsBehavior::Errors(0.25), secs(100.0));
        assert_eq!(
            c,
            Counts {
                ok: 1500,
                errors: 500
            }
        );
        assert!(counts_at(MetricsBehavior::Errors(0.5), secs(0.2)).errors > 0);
        assert_eq!(
            counts_at(MetricsBehavior::None, secs(100.0)),
            Counts::default()
        );
    }

    #[test]
    fn burst_starts_after_its_delay() {
        let b = MetricsBehavior::BurstAfter(Duration::from_secs(20));
        for t in [0.0, 1.0, 10.0, 19.9, 20.0] {
            assert_eq!(counts_at(b, secs(t)).errors, 0, "errors at {t}s");
        }
        assert_eq!(counts_at(b, secs(20.0)).ok, 400);
        assert!(counts_at(b, secs(20.2)).errors > 0);
        // The error rate over a window after the burst is the burst's ratio of all requests.
        let (a, z) = (counts_at(b, secs(30.0)), counts_at(b, secs(40.0)));
        let errors = (z.errors - a.errors) as f64;
        let total = (z.total() - a.total()) as f64;
        assert_eq!(total, REQUESTS_PER_SECOND * 10.0);
        assert!(
            (errors / total - BURST_ERROR_RATIO).abs() < 0.01,
            "{errors}/{total}"
        );
        // Before the burst, a window has no errors at all.
        let (a, z) = (counts_at(b, secs(5.0)), counts_at(b, secs(15.0)));
        assert_eq!(z.errors - a.errors, 0);
        assert_eq!(z.ok - a.ok, 200);
    }

    #[test]
    fn counters_never_decrease() {
        for b in [
            MetricsBehavior::Healthy,
            MetricsBehavior::Errors(0.3),
            MetricsBehavior::Errors(1.0),
            MetricsBehavior::BurstAfter(Duration::from_millis(2500)),
        ] {
            let mut prev = Counts::default();
            let mut prev_buckets = [0; 8];
            for ms in (0..20_000).step_by(37) {
                let c = counts_at(b, Duration::from_millis(ms));
                assert!(
                    c.ok >= prev.ok && c.errors >= prev.errors,
                    "{b:?} at {ms}ms"
                );
                let buckets = bucket_counts(c);
                for i in 0..8 {
                    assert!(buckets[i] >= prev_buckets[i], "{b:?} bucket {i} at {ms}ms");
                    if i > 0 {
                        assert!(
                            buckets[i] >= buckets[i - 1],
                            "{b:?} bucket {i} not cumulative"
                        );
                    }
                }
                assert!(buckets[7] <= c.total());
                prev = c;
                prev_buckets = buckets;
            }
        }
    }

    #[test]
    fn page_has_every_series() {
        let page = render(
            Counts {
                ok: 100,
                errors: 10,
            },
            true,
        );
        for line in [
            "# TYPE http_requests_total counter",
            "http_requests_total{code=\"200\"} 100",
            "http_requests_total{code=\"500\"} 10",
            "# TYPE http_request_duration_seconds histogram",
            "http_request_duration_seconds_bucket{le=\"0.005\"} 10",
            "http_request_duration_seconds_bucket{le=\"1\"} 110",
            "http_request_duration_seconds_bucket{le=\"+Inf\"} 110",
            "http_request_duration_seconds_sum 4.200",
            "http_request_duration_seconds_count 110",
            "# TYPE sim_pod_ready gauge",
            "sim_pod_ready 1",
        ] {
            assert!(
                page.lines().any(|l| l == line),
                "missing {line:?} in\n{page}"
            );
        }
        assert!(render(Counts::default(), false).contains("\nsim_pod_ready 0\n"));
        assert!(page.ends_with('\n'));
    }
}
