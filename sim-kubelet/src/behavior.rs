//! Pure parsing of the per-pod behaviour vocabulary.
//!
//! A pod's behaviour comes from the annotation [`BEHAVIOR_ANNOTATION`] when present and
//! valid, otherwise from the image tag suffix of its containers (the first container whose
//! tag names a non-healthy behaviour wins).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::metrics::series::{self, MetricsBehavior, METRICS_ANNOTATION};

/// Annotation selecting the behaviour of a pod; takes precedence over image tags.
pub const BEHAVIOR_ANNOTATION: &str = "sim.sts-safe.dev/behavior";
/// Annotation overriding the ready delay of a pod (a humantime duration such as `2s`).
pub const READY_DELAY_ANNOTATION: &str = "sim.sts-safe.dev/ready-delay";

/// What the simulated kubelet makes the containers of a pod do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Running, and Ready after the ready delay.
    Healthy,
    /// Running and started, but never Ready.
    NeverReady,
    /// Running phase, containers in CrashLoopBackOff with a growing restart count.
    CrashLoop,
    /// Running, Ready only this long after the containers started.
    ReadyAfter(Duration),
    /// Ready after the ready delay, then not Ready this long after the containers started.
    UnreadyAfter(Duration),
    /// Pending, containers waiting in ErrImagePull then ImagePullBackOff.
    ImagePullFail,
}

impl Behavior {
    pub fn is_healthy(self) -> bool {
        self == Behavior::Healthy
    }

    /// Short name used in logs.
    pub fn name(self) -> String {
        match self {
            Behavior::Healthy => "healthy".into(),
            Behavior::NeverReady => "never-ready".into(),
            Behavior::CrashLoop => "crashloop".into(),
            Behavior::ReadyAfter(d) => format!("ready-after={}", humantime::format_duration(d)),
            Behavior::UnreadyAfter(d) => {
                format!("unready-after={}", humantime::format_duration(d))
            }
            Behavior::ImagePullFail => "image-pull-fail".into(),
        }
    }
}

/// Parses the value of the behaviour annotation, e.g. `crashloop` or `ready-after=3s`.
pub fn parse_annotation(value: &str) -> Result<Behavior, String> {
    let value = value.trim();
    let parse_dur = |s: &str| {
        humantime::parse_duration(s.trim()).map_err(|e| format!("bad duration {s:?}: {e}"))
    };
    match value {
        "healthy" => return Ok(Behavior::Healthy),
        "never-ready" => return Ok(Behavior::NeverReady),
        "crashloop" => return Ok(Behavior::CrashLoop),
        "image-pull-fail" | "pull-fail" => return Ok(Behavior::ImagePullFail),
        _ => {}
    }
    if let Some(d) = value.strip_prefix("ready-after=") {
        return parse_dur(d).map(Behavior::ReadyAfter);
    }
    if let Some(d) = value.strip_prefix("unready-after=") {
        return parse_dur(d).map(Behavior::UnreadyAfter);
    }
    Err(format!("unknown behaviour {value:?}"))
}

/// Returns the tag of an image reference, if it has one.
///
/// `registry:5000/x/redis:7` → `Some("7")`; `redis` → `None`; a digest (`@sha256:…`) is
/// ignored, so `redis:7@sha256:…` → `Some("7")` and `redis@sha256:…` → `None`.
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_component_start = without_digest.rfind('/').map_or(0, |i| i + 1);
    let last_component = &without_digest[last_component_start..];
    last_component
        .rfind(':')
        .map(|i| &last_component[i + 1..])
        .filter(|t| !t.is_empty())
}

/// Matches `tag` against a suffix `word` that is either the whole tag or follows a `-`.
fn tag_has_suffix(tag: &str, word: &str) -> bool {
    tag == word || tag.ends_with(&format!("-{word}"))
}

/// Finds `<word>-<duration>` at the end of a tag (the whole tag or after a `-`).
fn tag_duration_suffix(tag: &str, word: &str) -> Option<Duration> {
    let pattern = format!("{word}-");
    let mut search_from = 0;
    while let Some(pos) = tag[search_from..].find(&pattern) {
        let start = search_from + pos;
        let at_boundary = start == 0 || tag.as_bytes()[start - 1] == b'-';
        let rest = &tag[start + pattern.len()..];
        if at_boundary
            && rest.starts_with(|c: char| c.is_ascii_digit())
            && rest.chars().all(|c| c.is_ascii_alphanumeric())
        {
            if let Ok(d) = humantime::parse_duration(rest) {
                return Some(d);
            }
        }
        search_from = start + 1;
    }
    None
}

/// Derives a behaviour from an image reference's tag suffix.
pub fn behavior_from_image(image: &str) -> Behavior {
    let Some(tag) = image_tag(image) else {
        return Behavior::Healthy;
    };
    if tag_has_suffix(tag, "never-ready") {
        Behavior::NeverReady
    } else if tag_has_suffix(tag, "crashloop") {
        Behavior::CrashLoop
    } else if tag_has_suffix(tag, "pull-fail") {
        Behavior::ImagePullFail
    } else if let Some(d) = tag_duration_suffix(tag, "unready-after") {
        Behavior::UnreadyAfter(d)
    } else if let Some(d) = tag_duration_suffix(tag, "ready-after") {
        Behavior::ReadyAfter(d)
    } else {
        Behavior::Healthy
    }
}

/// The behaviour of a pod, and a warning when its annotation was present but invalid.
#[derive(Clone, Debug, PartialEq)]
pub struct PodBehavior {
    pub behavior: Behavior,
    /// Ready delay override from [`READY_DELAY_ANNOTATION`].
    pub ready_delay: Option<Duration>,
    /// What its application's metrics show, from [`METRICS_ANNOTATION`] (default healthy).
    pub metrics: MetricsBehavior,
    /// Problems found in the annotations (they are then ignored).
    pub warnings: Vec<String>,
}

/// Chooses the behaviour of a pod from its annotations and container images.
pub fn pod_behavior<'a>(
    annotations: Option<&BTreeMap<String, String>>,
    images: impl IntoIterator<Item = &'a str>,
) -> PodBehavior {
    let mut warnings = Vec::new();
    let mut from_annotation = None;
    let mut ready_delay = None;
    let mut metrics = MetricsBehavior::Healthy;
    if let Some(annotations) = annotations {
        if let Some(v) = annotations.get(BEHAVIOR_ANNOTATION) {
            match parse_annotation(v) {
                Ok(b) => from_annotation = Some(b),
                Err(e) => warnings.push(format!("{BEHAVIOR_ANNOTATION}: {e}")),
            }
        }
        if let Some(v) = annotations.get(READY_DELAY_ANNOTATION) {
            match humantime::parse_duration(v.trim()) {
                Ok(d) => ready_delay = Some(d),
                Err(e) => {
                    warnings.push(format!("{READY_DELAY_ANNOTATION}: bad duration {v:?}: {e}"))
                }
            }
        }
        if let Some(v) = annotations.get(METRICS_ANNOTATION) {
            match series::parse_annotation(v) {
                Ok(m) => metrics = m,
                Err(e) => warnings.push(format!("{METRICS_ANNOTATION}: {e} (taken as healthy)")),
            }
        }
    }
    let behavior = from_annotation.unwrap_or_else(|| {
        images
            .into_iter()
            .map(behavior_from_image)
            .find(|b| !b.is_healthy())
            .unwrap_or(Behavior::Healthy)
    });
    PodBehavior {
        behavior,
        ready_delay,
        metrics,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn image_tags() {
        let table: &[(&str, Option<&str>)] = &[
            ("redis:7.4-alpine", Some("7.4-alpine")),
            ("redis", None),
            ("redis:", None),
            ("registry:5000/x/redis", None),
            (
                "registry:5000/x/redis:7-ready-after-3s",
                Some("7-ready-after-3s"),
            ),
            ("redis@sha256:0123456789abcdef", None),
            (
                "redis:7-crashloop@sha256:0123456789abcdef",
                Some("7-crashloop"),
            ),
            ("docker.io/library/busybox:1-crashloop", Some("1-crashloop")),
        ];
        for (image, tag) in table {
            assert_eq!(image_tag(image), *tag, "{image}");
        }
    }

    #[test]
    fn behaviours_from_images() {
        let table: &[(&str, Behavior)] = &[
            ("redis:7.4-alpine", Behavior::Healthy),
            ("redis:7.4-crashloop", Behavior::CrashLoop),
            ("busybox:1-crashloop", Behavior::CrashLoop),
            ("busybox:crashloop", Behavior::CrashLoop),
            ("redis:7-never-ready", Behavior::NeverReady),
            ("redis:7-pull-fail", Behavior::ImagePullFail),
            (
                "registry:5000/x/redis:7-ready-after-3s",
                Behavior::ReadyAfter(secs(3)),
            ),
            ("redis:7-unready-after-5s", Behavior::UnreadyAfter(secs(5))),
            (
                "redis:7-ready-after-500ms",
                Behavior::ReadyAfter(Duration::from_millis(500)),
            ),
            ("redis:unready-after-1m", Behavior::UnreadyAfter(secs(60))),
            ("redis:7-ready-after-xs", Behavior::Healthy),
            ("redis:7-ready-after-", Behavior::Healthy),
            ("redis:7-notready-after-3s", Behavior::Healthy),
            ("redis", Behavior::Healthy),
            (
                "redis@sha256:0123456789abcdef0123456789abcdef",
                Behavior::Healthy,
            ),
            ("redis-crashloop", Behavior::Healthy),
            ("registry:5000/crashloop/redis", Behavior::Healthy),
            ("redis:7-crashloop@sha256:0123", Behavior::CrashLoop),
            ("redis:7-crashloopx", Behavior::Healthy),
        ];
        for (image, behavior) in table {
            assert_eq!(behavior_from_image(image), *behavior, "{image}");
        }
    }

    #[test]
    fn annotations() {
        assert_eq!(parse_annotation("healthy"), Ok(Behavior::Healthy));
        assert_eq!(parse_annotation("never-ready"), Ok(Behavior::NeverReady));
        assert_eq!(parse_annotation(" crashloop "), Ok(Behavior::CrashLoop));
        assert_eq!(
            parse_annotation("image-pull-fail"),
            Ok(Behavior::ImagePullFail)
        );
        assert_eq!(
            parse_annotation("ready-after=3s"),
            Ok(Behavior::ReadyAfter(secs(3)))
        );
        assert_eq!(
            parse_annotation("unready-after=1m 30s"),
            Ok(Behavior::UnreadyAfter(secs(90)))
        );
        assert!(parse_annotation("ready-after=soon").is_err());
        assert!(parse_annotation("sleepy").is_err());
    }

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotation_takes_precedence_over_images() {
        let a = ann(&[(BEHAVIOR_ANNOTATION, "never-ready")]);
        let pb = pod_behavior(Some(&a), ["redis:7-crashloop"]);
        assert_eq!(pb.behavior, Behavior::NeverReady);
        assert!(pb.warnings.is_empty());
    }

    #[test]
    fn first_non_healthy_image_wins() {
        let pb = pod_behavior(
            None,
            ["redis:7", "busybox:1-crashloop", "nginx:1-never-ready"],
        );
        assert_eq!(pb.behavior, Behavior::CrashLoop);
        assert_eq!(
            pod_behavior(None, ["redis:7", "nginx"]).behavior,
            Behavior::Healthy
        );
    }

    #[test]
    fn invalid_annotation_falls_back_with_warning() {
        let a = ann(&[
            (BEHAVIOR_ANNOTATION, "bogus"),
            (READY_DELAY_ANNOTATION, "2s"),
        ]);
        let pb = pod_behavior(Some(&a), ["redis:7-pull-fail"]);
        assert_eq!(pb.behavior, Behavior::ImagePullFail);
        assert_eq!(pb.ready_delay, Some(secs(2)));
        assert_eq!(pb.warnings.len(), 1);

        let a = ann(&[(READY_DELAY_ANNOTATION, "later")]);
        let pb = pod_behavior(Some(&a), ["redis"]);
        assert_eq!(pb.ready_delay, None);
        assert_eq!(pb.warnings.len(), 1);
    }

    #[test]
    fn metrics_annotation() {
        assert_eq!(
            pod_behavior(None, ["redis"]).metrics,
            MetricsBehavior::Healthy
        );
        let a = ann(&[(METRICS_ANNOTATION, "errors=0.2")]);
        let pb = pod_behavior(Some(&a), ["redis:7-crashloop"]);
        assert_eq!(pb.metrics, MetricsBehavior::Errors(0.2));
        assert_eq!(pb.behavior, Behavior::CrashLoop);
        assert!(pb.warnings.is_empty());
        let a = ann(&[(METRICS_ANNOTATION, "on-fire")]);
        let pb = pod_behavior(Some(&a), ["redis"]);
        assert_eq!(pb.metrics, MetricsBehavior::Healthy);
        assert_eq!(pb.warnings.len(), 1);
        assert!(
            pb.warnings[0].starts_with(METRICS_ANNOTATION),
            "{:?}",
            pb.warnings
        );
    }
}
