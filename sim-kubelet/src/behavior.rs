//! Pure parsing of the per-pod behaviour vocabulary.
//!
//! A pod's behaviour comes from, in this order of precedence:
//!
//! 1. the annotation [`BEHAVIOR_ANNOTATION`], when present and valid;
//! 2. the pod spec, as a real kubelet would play it (so that real public images behave on
//!    the simulator as they would on a real cluster): the first container, in spec order,
//!    that clearly fails decides (see [`container_spec_behavior`]);
//!    - **crashloop** when its command clearly exits non-zero;
//!    - **never-ready** when its readiness probe is an `exec` probe that clearly fails;
//! 3. the image tag suffix of its containers (the first container whose tag names a
//!    non-healthy behaviour wins, see [`behavior_from_image`]);
//! 4. otherwise healthy.
//!
//! "Clearly fails" is a deliberately small, explicit rule, not a shell interpreter
//! ([`argv_clearly_fails`]): the argv (`command` + `args`, or `args` alone when `command`
//! is absent, since most images' entrypoints run their arguments) is either
//! - `false` (any path, e.g. `/bin/false`; further arguments are ignored), or
//! - a shell (`sh`, `bash`, `ash`, `dash`, `ksh`, `zsh`, any path) with `-c` (or a flag
//!   cluster such as `-ec`) and a script whose last statement (statements split on `;` and
//!   newlines) is `false` or `exit N` with N not 0 (mod 256), and none of whose earlier
//!   statements is an `exec` or an `exit`.
//!
//! So `["sh","-c","exit 1"]`, `["false"]` and `["/bin/sh","-c","echo boom; exit 3"]`
//! exit non-zero, while `["sh","-c","exit 0"]`, `["redis-server"]`,
//! `["sh","-c","test -f x || exit 1"]` and `["sh","-c","exec redis-server; exit 1"]` do
//! not count. Init containers, liveness and startup probes are not read. As with the other
//! sources, the behaviour chosen applies to every container of the pod; a crash-looping
//! container reports `lastState.terminated.exitCode` 1 whatever N was, and a never-Ready
//! one's `Unhealthy` events name its exec probe's command.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use crate::metrics::series::{self, MetricsBehavior, METRICS_ANNOTATION};

/// Annotation selecting the behaviour of a pod; takes precedence over the spec and tags.
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

/// Shells whose `-c` script [`argv_clearly_fails`] reads.
const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "ksh", "zsh"];

/// The last path component of a program name (`/bin/sh` → `sh`).
fn program(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// Whether `arg` is a shell's short-option cluster that includes `c` (`-c`, `-ec`, `-euc`).
fn is_dash_c(arg: &str) -> bool {
    arg.strip_prefix('-').is_some_and(|flags| {
        !flags.is_empty() && flags.chars().all(|c| c.is_ascii_alphabetic()) && flags.contains('c')
    })
}

/// Whether one shell statement ends the script with a non-zero status: `false`, or
/// `exit N` with N not 0 (mod 256).
fn statement_fails(statement: &str) -> bool {
    let mut words = statement.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("false"), None, None) => true,
        (Some("exit"), Some(n), None) => n.parse::<i64>().is_ok_and(|n| n.rem_euclid(256) != 0),
        _ => false,
    }
}

/// Whether a `sh -c` script clearly exits non-zero: its last statement (split on `;` and
/// newlines) fails by [`statement_fails`] and no earlier statement is an `exec` or `exit`.
fn script_fails(script: &str) -> bool {
    let statements: Vec<&str> = script
        .split([';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let Some((last, earlier)) = statements.split_last() else {
        return false;
    };
    let ends_early = |s: &&str| matches!(s.split_whitespace().next(), Some("exec" | "exit"));
    statement_fails(last) && !earlier.iter().any(ends_early)
}

/// Whether a process started with `argv` clearly exits non-zero: `false` (any path), or a
/// shell (`sh`, `bash`, … any path) run with `-c` and a script that [`script_fails`].
pub fn argv_clearly_fails<S: AsRef<str>>(argv: &[S]) -> bool {
    let Some(first) = argv.first().map(|a| program(a.as_ref())) else {
        return false;
    };
    if first == "false" {
        return true;
    }
    match (argv.get(1), argv.get(2)) {
        (Some(flag), Some(script)) if SHELLS.contains(&first) && is_dash_c(flag.as_ref()) => {
            script_fails(script.as_ref())
        }
        _ => false,
    }
}

/// The argv a container runs, as far as the spec tells: `command` + `args`, or `args`
/// alone when there is no `command` (most images' entrypoints run their arguments).
fn container_argv(c: &Container) -> Vec<&str> {
    let command = c.command.as_deref().unwrap_or_default();
    let args = c.args.as_deref().unwrap_or_default();
    command.iter().chain(args).map(String::as_str).collect()
}

/// The behaviour a real kubelet would show for one container, from its spec: crashloop
/// when its command clearly exits non-zero ([`argv_clearly_fails`]; a container that exits
/// is never probed), never-ready when its readiness probe is an `exec` probe whose command
/// clearly fails, otherwise healthy.
pub fn container_spec_behavior(c: &Container) -> Behavior {
    if argv_clearly_fails(&container_argv(c)) {
        return Behavior::CrashLoop;
    }
    let probe_fails = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.as_deref())
        .is_some_and(argv_clearly_fails);
    if probe_fails {
        Behavior::NeverReady
    } else {
        Behavior::Healthy
    }
}

/// The message of a container's `Unhealthy` event while it is not Ready: an `exec`
/// readiness probe names its command (a real kubelet shows the command's output, which a
/// simulator does not have); any other container gets an HTTP probe's 503.
pub fn readiness_failure_message(c: &Container) -> String {
    let exec = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.as_ref());
    match exec {
        Some(command) => format!("Readiness probe failed: command {command:?} exited non-zero"),
        None => "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
    }
}

/// Where a pod's behaviour came from (for the simulator's log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nothing chose one: healthy.
    Default,
    /// The annotation [`BEHAVIOR_ANNOTATION`].
    Annotation,
    /// The command or readiness probe of this container.
    Spec(String),
    /// The image tag of this container.
    ImageTag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Annotation => f.write_str("annotation"),
            Source::Spec(c) => write!(f, "spec of container {c}"),
            Source::ImageTag(c) => write!(f, "image tag of container {c}"),
        }
    }
}

/// The behaviour of a pod, and a warning when its annotation was present but invalid.
#[derive(Clone, Debug, PartialEq)]
pub struct PodBehavior {
    pub behavior: Behavior,
    /// Where [`Self::behavior`] came from.
    pub source: Source,
    /// Ready delay override from [`READY_DELAY_ANNOTATION`].
    pub ready_delay: Option<Duration>,
    /// What its application's metrics show, from [`METRICS_ANNOTATION`] (default healthy).
    pub metrics: MetricsBehavior,
    /// Problems found in the annotations (they are then ignored).
    pub warnings: Vec<String>,
}

/// Chooses the behaviour of a pod from its annotations and containers: the annotation,
/// else the first container whose spec clearly fails, else the first container whose image
/// tag names a behaviour, else healthy.
pub fn pod_behavior(
    annotations: Option<&BTreeMap<String, String>>,
    containers: &[Container],
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
    let from_spec = || {
        containers.iter().find_map(|c| {
            let b = container_spec_behavior(c);
            (!b.is_healthy()).then(|| (b, Source::Spec(c.name.clone())))
        })
    };
    let from_tags = || {
        containers.iter().find_map(|c| {
            let b = behavior_from_image(c.image.as_deref().unwrap_or_default());
            (!b.is_healthy()).then(|| (b, Source::ImageTag(c.name.clone())))
        })
    };
    let (behavior, source) = from_annotation
        .map(|b| (b, Source::Annotation))
        .or_else(from_spec)
        .or_else(from_tags)
        .unwrap_or((Behavior::Healthy, Source::Default));
    PodBehavior {
        behavior,
        source,
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

    /// Containers `c0`, `c1`, … running these images.
    fn images(images: &[&str]) -> Vec<Container> {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| Container {
                name: format!("c{i}"),
                image: Some(image.to_string()),
                ..Default::default()
            })
            .collect()
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    /// A container of `image` with this command, args and readiness exec probe.
    fn container(image: &str, command: &[&str], args: &[&str], probe: &[&str]) -> Container {
        use k8s_openapi::api::core::v1::{ExecAction, Probe};
        Container {
            name: "app".into(),
            image: Some(image.into()),
            command: (!command.is_empty()).then(|| strings(command)).flatten(),
            args: (!args.is_empty()).then(|| strings(args)).flatten(),
            readiness_probe: (!probe.is_empty()).then(|| Probe {
                exec: Some(ExecAction {
                    command: strings(probe),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
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
        let pb = pod_behavior(Some(&a), &images(&["redis:7-crashloop"]));
        assert_eq!(pb.behavior, Behavior::NeverReady);
        assert!(pb.warnings.is_empty());
    }

    #[test]
    fn first_non_healthy_image_wins() {
        let pb = pod_behavior(
            None,
            &images(&["redis:7", "busybox:1-crashloop", "nginx:1-never-ready"]),
        );
        assert_eq!(pb.behavior, Behavior::CrashLoop);
        assert_eq!(
            pod_behavior(None, &images(&["redis:7", "nginx"])).behavior,
            Behavior::Healthy
        );
    }

    #[test]
    fn invalid_annotation_falls_back_with_warning() {
        let a = ann(&[
            (BEHAVIOR_ANNOTATION, "bogus"),
            (READY_DELAY_ANNOTATION, "2s"),
        ]);
        let pb = pod_behavior(Some(&a), &images(&["redis:7-pull-fail"]));
        assert_eq!(pb.behavior, Behavior::ImagePullFail);
        assert_eq!(pb.ready_delay, Some(secs(2)));
        assert_eq!(pb.warnings.len(), 1);

        let a = ann(&[(READY_DELAY_ANNOTATION, "later")]);
        let pb = pod_behavior(Some(&a), &images(&["redis"]));
        assert_eq!(pb.ready_delay, None);
        assert_eq!(pb.warnings.len(), 1);
    }

    #[test]
    fn metrics_annotation() {
        assert_eq!(
            pod_behavior(None, &images(&["redis"])).metrics,
            MetricsBehavior::Healthy
        );
        let a = ann(&[(METRICS_ANNOTATION, "errors=0.2")]);
        let pb = pod_behavior(Some(&a), &images(&["redis:7-crashloop"]));
        assert_eq!(pb.metrics, MetricsBehavior::Errors(0.2));
        assert_eq!(pb.behavior, Behavior::CrashLoop);
        assert!(pb.warnings.is_empty());
        let a = ann(&[(METRICS_ANNOTATION, "on-fire")]);
        let pb = pod_behavior(Some(&a), &images(&["redis"]));
        assert_eq!(pb.metrics, MetricsBehavior::Healthy);
        assert_eq!(pb.warnings.len(), 1);
        assert!(
            pb.warnings[0].starts_with(METRICS_ANNOTATION),
            "{:?}",
            pb.warnings
        );
    }

    #[test]
    fn argv_that_clearly_fails() {
        let fails: &[&[&str]] = &[
            &["false"],
            &["/bin/false"],
            &["/usr/bin/false", "--ignored"],
            &["sh", "-c", "exit 1"],
            &["/bin/sh", "-c", "exit 3"],
            &["bash", "-c", "  exit 42  "],
            &["ash", "-ec", "exit 1"],
            &["sh", "-euc", "false"],
            &["sh", "-c", "echo boom >&2; exit 2"],
            &["sh", "-c", "echo starting\nsleep 5\nexit 1\n"],
            &["sh", "-c", "exit -1"],
            &["sh", "-c", "exit 257"],
            &["dash", "-c", "exit 1;"],
        ];
        for argv in fails {
            assert!(argv_clearly_fails(argv), "{argv:?} should fail");
        }
        let runs: &[&[&str]] = &[
            &[],
            &["redis-server"],
            &["redis-server", "--appendonly", "yes"],
            &["sh", "-c", "exit 0"],
            &["sh", "-c", "exit 256"],
            &["sh", "-c", "exit"],
            &["sh", "-c", "exit $CODE"],
            &["sh", "-c", "true"],
            &["sh", "-c", ""],
            &["sh", "-c"],
            &["sh", "exit 1"],
            &["sh", "-x", "exit 1"],
            &["sh", "--", "exit 1"],
            &["python3", "-c", "exit 1"],
            &["falsey"],
            &["echo", "false"],
            &["sh", "-c", "test -f /data/ok || exit 1"],
            &["sh", "-c", "exit 1 && echo"],
            &["sh", "-c", "exec redis-server; exit 1"],
            &["sh", "-c", "exit 0; exit 1"],
            &["sh", "-c", "exit 1; echo never"],
            &["sh", "-c", "redis-cli ping"],
        ];
        for argv in runs {
            assert!(!argv_clearly_fails(argv), "{argv:?} should not count");
        }
    }

    #[test]
    fn behaviours_from_container_specs() {
        let table: &[(Container, Behavior)] = &[
            (
                container("redis:7.4-alpine", &[], &[], &[]),
                Behavior::Healthy,
            ),
            (
                container("redis:7.4-alpine", &["sh", "-c", "exit 1"], &[], &[]),
                Behavior::CrashLoop,
            ),
            (
                container("redis:7.4-alpine", &["sh", "-c"], &["exit 1"], &[]),
                Behavior::CrashLoop,
            ),
            (
                container("busybox:1.36", &[], &["sh", "-c", "exit 1"], &[]),
                Behavior::CrashLoop,
            ),
            (
                container("busybox:1.36", &["false"], &[], &[]),
                Behavior::CrashLoop,
            ),
            (
                container("redis:7.4-alpine", &["redis-server"], &[], &["false"]),
                Behavior::NeverReady,
            ),
            (
                container("redis:7.4-alpine", &[], &[], &["sh", "-c", "exit 1"]),
                Behavior::NeverReady,
            ),
            (
                container("redis:7.4-alpine", &[], &[], &["redis-cli", "ping"]),
                Behavior::Healthy,
            ),
            // a container that exits is never probed
            (
                container("redis:7.4-alpine", &["false"], &[], &["false"]),
                Behavior::CrashLoop,
            ),
        ];
        for (c, behavior) in table {
            assert_eq!(container_spec_behavior(c), *behavior, "{c:?}");
        }
    }

    #[test]
    fn precedence_annotation_then_spec_then_tag() {
        let crash = container("redis:7-never-ready", &["sh", "-c", "exit 1"], &[], &[]);
        // the spec beats the tag
        let pb = pod_behavior(None, std::slice::from_ref(&crash));
        assert_eq!(pb.behavior, Behavior::CrashLoop);
        assert_eq!(pb.source, Source::Spec("app".into()));
        // the annotation beats the spec
        let a = ann(&[(BEHAVIOR_ANNOTATION, "healthy")]);
        let pb = pod_behavior(Some(&a), std::slice::from_ref(&crash));
        assert_eq!(pb.behavior, Behavior::Healthy);
        assert_eq!(pb.source, Source::Annotation);
        // any container's spec beats any container's tag
        let mut probe = container("redis:7.4-alpine", &[], &[], &["false"]);
        probe.name = "sidecar".into();
        let tagged = images(&["redis:7-pull-fail"]).remove(0);
        let pb = pod_behavior(None, &[tagged.clone(), probe]);
        assert_eq!(pb.behavior, Behavior::NeverReady);
        assert_eq!(pb.source, Source::Spec("sidecar".into()));
        // a healthy spec falls through to the tags
        let pb = pod_behavior(None, &[tagged]);
        assert_eq!(pb.behavior, Behavior::ImagePullFail);
        assert_eq!(pb.source, Source::ImageTag("c0".into()));
        let pb = pod_behavior(None, &images(&["redis:7.4-alpine"]));
        assert_eq!(
            (pb.behavior, pb.source),
            (Behavior::Healthy, Source::Default)
        );
    }

    #[test]
    fn readiness_failure_messages() {
        let exec = container("redis:7.4-alpine", &[], &[], &["sh", "-c", "exit 1"]);
        assert_eq!(
            readiness_failure_message(&exec),
            r#"Readiness probe failed: command ["sh", "-c", "exit 1"] exited non-zero"#
        );
        let plain = container("redis:7.4-alpine", &[], &[], &[]);
        assert_eq!(
            readiness_failure_message(&plain),
            "Readiness probe failed: HTTP probe failed with statuscode: 503"
        );
    }
}
