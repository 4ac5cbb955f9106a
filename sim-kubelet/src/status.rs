//! Pure construction of the pod status a kubelet would report for a simulated stage.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::timeline::{Plan, Stage};

/// Everything needed to describe a pod at one moment.
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    pub plan: Plan,
    pub stage: Stage,
    /// Time since the pod was accepted (used for condition transition times).
    pub elapsed: Duration,
    /// When the pod was accepted by the simulated kubelet (`startTime`).
    pub accepted_at: Timestamp,
    pub host_ip: &'a str,
    pub pod_ip: &'a str,
}

/// Time `offset` after `base`, as a Kubernetes `Time`.
pub fn time_at(base: Timestamp, offset: Duration) -> Time {
    Time(base.checked_add(offset).unwrap_or(base))
}

fn fnv1a(seed: u64, data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A deterministic fake image ID (`<repository>@sha256:<64 hex>`) for an image reference.
pub fn fake_image_id(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repo = match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    match digest {
        Some(d) => format!("{repo}@{d}"),
        None => {
            let hex: String = (0..4u64)
                .map(|seed| format!("{:016x}", fnv1a(seed, image.as_bytes())))
                .collect();
            format!("{repo}@sha256:{hex}")
        }
    }
}

/// The container ID reported for a container of a pod.
pub fn container_id(uid: &str, name: &str) -> String {
    format!("sim://{uid}-{name}")
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    since: Time,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        last_transition_time: Some(since),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

fn image_of(c: &Container) -> String {
    c.image.clone().unwrap_or_default()
}

/// Builds the full status of the pod for `input.stage`.
pub fn build_status(input: &StatusInput<'_>) -> PodStatus {
    let pod = input.pod;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let init_containers = spec.init_containers.unwrap_or_default();
    let containers = spec.containers;
    let plan = input.plan;
    let at = |offset: Duration| time_at(input.accepted_at, offset);
    let stage = input.stage;
    let initialized = !matches!(stage, Stage::Creating) || init_containers.is_empty();

    let init_statuses: Vec<ContainerStatus> = init_containers
        .iter()
        .map(|c| {
            let image = image_of(c);
            if initialized {
                ContainerStatus {
                    name: c.name.clone(),
                    image_id: fake_image_id(&image),
                    image,
                    container_id: Some(container_id(&uid, &c.name)),
                    ready: true,
                    started: Some(false),
                    restart_count: 0,
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            reason: Some("Completed".into()),
                            started_at: Some(at(Duration::ZERO)),
                            finished_at: Some(at(plan.ready_delay)),
                            container_id: Some(container_id(&uid, &c.name)),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            } else {
                ContainerStatus {
                    name: c.name.clone(),
                    image,
                    image_id: String::new(),
                    ready: false,
                    started: Some(false),
                    restart_count: 0,
                    state: Some(waiting("PodInitializing", None)),
                    ..Default::default()
                }
            }
        })
        .collect();

    let started_at = at(plan.ready_delay);
    let container_statuses: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| {
            let image = image_of(c);
            let cid = container_id(&uid, &c.name);
            let mut st = ContainerStatus {
                name: c.name.clone(),
                image: image.clone(),
                image_id: String::new(),
                ready: false,
                started: Some(false),
                restart_count: 0,
                ..Default::default()
            };
            match stage {
                Stage::Creating => {
                    let reason = if init_containers.is_empty() {
                        "ContainerCreating"
                    } else {
                        "PodInitializing"
                    };
                    st.state = Some(waiting(reason, None));
                }
                Stage::Running { ready } => {
                    st.image_id = fake_image_id(&image);
                    st.container_id = Some(cid);
                    st.ready = ready;
                    st.started = Some(true);
                    st.state = Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(started_at.clone()),
                        }),
                        ..Default::default()
                    });
                }
                Stage::CrashLoop { restarts } => {
                    let run_start = plan.last_run_started(restarts);
                    let run_end = run_start + (plan.crash_interval / 2).min(Duration::from_secs(1));
                    st.image_id = fake_image_id(&image);
                    st.container_id = Some(cid.clone());
                    st.restart_count = i32::try_from(restarts).unwrap_or(i32::MAX);
                    st.state = Some(waiting(
                        "CrashLoopBackOff",
                        Some(format!(
                            "back-off 10s restarting failed container={} pod={name}",
                            c.name
                        )),
                    ));
                    st.last_state = Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 1,
                            reason: Some("Error".into()),
                            started_at: Some(at(run_start)),
                            finished_at: Some(at(run_end)),
                            container_id: Some(cid),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
                Stage::PullError => {
                    st.state = Some(waiting(
                        "ErrImagePull",
                        Some(format!(
                            "rpc error: code = NotFound desc = failed to pull and unpack image \
                             \"{image}\": failed to resolve reference \"{image}\": not found"
                        )),
                    ));
                }
                Stage::PullBackOff => {
                    st.state = Some(waiting(
                        "ImagePullBackOff",
                        Some(format!("Back-off pulling image \"{image}\"")),
                    ));
                }
            }
            st
        })
        .collect();

    let unready: Vec<&str> = container_statuses
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty();
    let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
    let ready_since = at(plan.readiness_since(input.elapsed));
    let incomplete: Vec<&str> = init_containers.iter().map(|c| c.name.as_str()).collect();

    let scheduled = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
                .cloned()
        })
        .unwrap_or_else(|| condition("PodScheduled", true, None, None, at(Duration::ZERO)));

    let conditions = vec![
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized".into()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            at(if initialized && !init_containers.is_empty() {
                plan.ready_delay
            } else {
                Duration::ZERO
            }),
        ),
        condition(
            "Ready",
            all_ready,
            Some("ContainersNotReady".into()),
            Some(unready_msg.clone()),
            ready_since.clone(),
        ),
        condition(
            "ContainersReady",
            all_ready,
            Some("ContainersNotReady".into()),
            Some(unready_msg),
            ready_since,
        ),
        scheduled,
    ];

    let phase = match stage {
        Stage::Creating | Stage::PullError | Stage::PullBackOff => "Pending",
        Stage::Running { .. } | Stage::CrashLoop { .. } => "Running",
    };

    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.into()),
        pod_ip: Some(input.pod_ip.into()),
        pod_ips: Some(vec![PodIP {
            ip: input.pod_ip.into(),
        }]),
        start_time: Some(at(Duration::ZERO)),
        container_statuses: Some(container_statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ..Default::default()
    }
}

/// The pod IP for the `n`-th pod accepted by this process (`n` starts at 0):
/// `10.244.x.y`, unique for the first 64 516 pods.
pub fn pod_ip(n: u32) -> String {
    let n = n % (254 * 254);
    format!("10.244.{}.{}", n / 254 + 1, n % 254 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::Behavior;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(containers: &[(&str, &str)], init: &[(&str, &str)]) -> Pod {
        let mk = |list: &[(&str, &str)]| -> Vec<Container> {
            list.iter()
                .map(|(n, i)| Container {
                    name: n.to_string(),
                    image: Some(i.to_string()),
                    ..Default::default()
                })
                .collect()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: mk(containers),
                init_containers: (!init.is_empty()).then(|| mk(init)),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn input<'a>(pod: &'a Pod, behavior: Behavior, elapsed_ms: u64) -> StatusInput<'a> {
        let plan = Plan {
            behavior,
            ready_delay: Duration::from_millis(300),
            crash_interval: Duration::from_secs(2),
        };
        let elapsed = Duration::from_millis(elapsed_ms);
        StatusInput {
            pod,
            plan,
            stage: plan.stage_at(elapsed),
            elapsed,
            accepted_at: Timestamp::from_second(1_700_000_000).unwrap(),
            host_ip: "127.0.0.1",
            pod_ip: "10.244.1.1",
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn healthy_running_and_ready() {
        let p = pod(&[("redis", "redis:7"), ("side", "busybox:1")], &[]);
        let s = build_status(&input(&p, Behavior::Healthy, 5000));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        let cs = s.container_statuses.as_ref().unwrap();
        assert_eq!(cs.len(), 2);
        assert!(cs.iter().all(|c| c.ready && c.started == Some(true)));
        assert_eq!(cs[0].container_id.as_deref(), Some("sim://u1-redis"));
        assert_eq!(cs[0].image, "redis:7");
        assert!(cs[0].image_id.starts_with("redis@sha256:"));
        assert!(cs[0].state.as_ref().unwrap().running.is_some());
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.1"));
        assert!(s.init_container_statuses.is_none());
    }

    #[test]
    fn creating_is_pending() {
        let p = pod(&[("redis", "redis:7")], &[]);
        let s = build_status(&input(&p, Behavior::Healthy, 0));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(
            cond(&s, "Ready").reason.as_deref(),
            Some("ContainersNotReady")
        );
        let c = &s.container_statuses.as_ref().unwrap()[0];
        let w = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
    }

    #[test]
    fn crashloop_status() {
        let p = pod(&[("app", "busybox:1-crashloop")], &[]);
        let s = build_status(&input(&p, Behavior::CrashLoop, 4400));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready").status, "False");
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(c.restart_count, 3);
        assert!(!c.ready);
        let w = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(
            w.message.as_deref(),
            Some("back-off 10s restarting failed container=app pod=web-0")
        );
        let t = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.exit_code, 1);
        assert_eq!(t.reason.as_deref(), Some("Error"));
    }

    #[test]
    fn pull_failure_status() {
        let p = pod(&[("app", "redis:7-pull-fail")], &[]);
        let s = build_status(&input(&p, Behavior::ImagePullFail, 400));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let w = |s: &PodStatus| {
            s.container_statuses.as_ref().unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .waiting
                .clone()
                .unwrap()
        };
        assert_eq!(w(&s).reason.as_deref(), Some("ErrImagePull"));
        let s = build_status(&input(&p, Behavior::ImagePullFail, 2400));
        assert_eq!(w(&s).reason.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(
            w(&s).message.as_deref(),
            Some("Back-off pulling image \"redis:7-pull-fail\"")
        );
    }

    #[test]
    fn init_containers_complete_when_running() {
        let p = pod(&[("app", "redis:7")], &[("init", "busybox:1")]);
        let s = build_status(&input(&p, Behavior::Healthy, 0));
        assert_eq!(cond(&s, "Initialized").status, "False");
        let s = build_status(&input(&p, Behavior::Healthy, 1000));
        assert_eq!(cond(&s, "Initialized").status, "True");
        let i = &s.init_container_statuses.as_ref().unwrap()[0];
        let t = i.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.reason.as_deref(), Some("Completed"));
        assert_eq!(t.exit_code, 0);
    }

    #[test]
    fn transition_times_are_stable() {
        let p = pod(&[("app", "redis:7")], &[]);
        let a = build_status(&input(&p, Behavior::Healthy, 1000));
        let b = build_status(&input(&p, Behavior::Healthy, 9000));
        assert_eq!(a, b);
    }

    #[test]
    fn image_ids() {
        assert!(
            fake_image_id("registry:5000/x/redis:7").starts_with("registry:5000/x/redis@sha256:")
        );
        assert_eq!(fake_image_id("redis@sha256:abc"), "redis@sha256:abc");
        assert_eq!(fake_image_id("redis").len(), "redis@sha256:".len() + 64);
    }

    #[test]
    fn pod_ips_are_unique() {
        let ips: std::collections::HashSet<String> = (0..10_000).map(pod_ip).collect();
        assert_eq!(ips.len(), 10_000);
        assert_eq!(pod_ip(0), "10.244.1.1");
    }
}
