//! Pure timeline of a simulated pod: which stage it is in at a given time after the
//! simulated kubelet accepted it, when the next change happens, and which kubelet events a
//! change of stage produces.

use std::time::Duration;

use crate::behavior::Behavior;

/// Where a pod is in its simulated life. Offsets are measured from the moment the pod was
/// accepted by the simulated kubelet (its `startTime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Containers are being created (before the ready delay).
    Creating,
    /// Containers run; `ready` tells whether they pass readiness.
    Running { ready: bool },
    /// Containers crashed `restarts` times and wait in CrashLoopBackOff.
    CrashLoop { restarts: u32 },
    /// The image pull just failed (ErrImagePull).
    PullError,
    /// The image pull is backing off (ImagePullBackOff).
    PullBackOff,
}

impl Stage {
    /// Whether the containers have been started at least once.
    pub fn containers_started(self) -> bool {
        matches!(self, Stage::Running { .. } | Stage::CrashLoop { .. })
    }
}

/// Timing parameters and behaviour of one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub behavior: Behavior,
    pub ready_delay: Duration,
    pub crash_interval: Duration,
}

/// Kubelet events a change of stage produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Happening {
    /// Pulling, Pulled, Created, Started for every container.
    ContainersStarted,
    /// Warning Unhealthy: readiness probe failed.
    ReadinessFailed,
    /// Warning BackOff: back-off restarting failed container (count grows on repeats).
    CrashBackOff,
    /// Pulling then Warning Failed: failed to pull image.
    PullFailed,
    /// BackOff: back-off pulling image.
    PullBackOff,
}

impl Plan {
    fn crash_interval(&self) -> Duration {
        self.crash_interval.max(Duration::from_millis(10))
    }

    /// The stage at `elapsed` after the pod was accepted.
    pub fn stage_at(&self, elapsed: Duration) -> Stage {
        let d = self.ready_delay;
        if elapsed < d {
            return Stage::Creating;
        }
        let since_start = elapsed - d;
        match self.behavior {
            Behavior::Healthy => Stage::Running { ready: true },
            Behavior::NeverReady => Stage::Running { ready: false },
            Behavior::ReadyAfter(x) => Stage::Running {
                ready: since_start >= x,
            },
            Behavior::UnreadyAfter(x) => Stage::Running {
                ready: since_start < x,
            },
            Behavior::CrashLoop => {
                let n = since_start.as_nanos() / self.crash_interval().as_nanos();
                Stage::CrashLoop {
                    restarts: u32::try_from(n.saturating_add(1)).unwrap_or(u32::MAX),
                }
            }
            Behavior::ImagePullFail => {
                if since_start < self.crash_interval() {
                    Stage::PullError
                } else {
                    Stage::PullBackOff
                }
            }
        }
    }

    /// The offset (from acceptance) of the next change of stage strictly after `elapsed`,
    /// or `None` when the stage never changes again.
    pub fn next_change_after(&self, elapsed: Duration) -> Option<Duration> {
        let d = self.ready_delay;
        if elapsed < d {
            return Some(d);
        }
        let since_start = elapsed - d;
        let at = |x: Duration| (since_start < x).then_some(d + x);
        match self.behavior {
            Behavior::Healthy | Behavior::NeverReady => None,
            Behavior::ReadyAfter(x) | Behavior::UnreadyAfter(x) => at(x),
            Behavior::ImagePullFail => at(self.crash_interval()),
            Behavior::CrashLoop => {
                let i = self.crash_interval().as_nanos();
                let next = (since_start.as_nanos() / i + 1) * i;
                Some(d + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX)))
            }
        }
    }

    /// The offset at which the pod's readiness took its value at `elapsed` (for the
    /// `lastTransitionTime` of the Ready and ContainersReady conditions).
    pub fn readiness_since(&self, elapsed: Duration) -> Duration {
        let d = self.ready_delay;
        if elapsed < d {
            return Duration::ZERO;
        }
        let since_start = elapsed - d;
        match self.behavior {
            Behavior::Healthy => d,
            Behavior::ReadyAfter(x) if since_start >= x => d + x,
            Behavior::UnreadyAfter(x) if since_start >= x => d + x,
            Behavior::UnreadyAfter(_) => d,
            _ => Duration::ZERO,
        }
    }

    /// The offset at which the containers last (re)started, for crash loops the start of
    /// the last failed run.
    pub fn last_run_started(&self, restarts: u32) -> Duration {
        self.ready_delay + self.crash_interval() * restarts.saturating_sub(1)
    }

    /// Events produced by going from `prev` (None: nothing observed yet) to `next`.
    pub fn happenings(&self, prev: Option<Stage>, next: Stage) -> Vec<Happening> {
        if prev == Some(next) {
            return Vec::new();
        }
        let fresh = matches!(prev, None | Some(Stage::Creating));
        let mut out = Vec::new();
        match next {
            Stage::Creating => {}
            Stage::Running { ready } => {
                if fresh {
                    out.push(Happening::ContainersStarted);
                }
                let probes_fail = matches!(
                    self.behavior,
                    Behavior::NeverReady | Behavior::UnreadyAfter(_)
                );
                if !ready && probes_fail {
                    out.push(Happening::ReadinessFailed);
                }
            }
            Stage::CrashLoop { .. } => {
                if fresh {
                    out.push(Happening::ContainersStarted);
                }
                out.push(Happening::CrashBackOff);
            }
            Stage::PullError => {
                if fresh {
                    out.push(Happening::PullFailed);
                }
            }
            Stage::PullBackOff => {
                if fresh {
                    out.push(Happening::PullFailed);
                }
                out.push(Happening::PullBackOff);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn plan(behavior: Behavior) -> Plan {
        Plan {
            behavior,
            ready_delay: ms(300),
            crash_interval: ms(2000),
        }
    }

    #[test]
    fn healthy() {
        let p = plan(Behavior::Healthy);
        assert_eq!(p.stage_at(ms(0)), Stage::Creating);
        assert_eq!(p.stage_at(ms(299)), Stage::Creating);
        assert_eq!(p.stage_at(ms(300)), Stage::Running { ready: true });
        assert_eq!(p.next_change_after(ms(0)), Some(ms(300)));
        assert_eq!(p.next_change_after(ms(300)), None);
        assert_eq!(p.readiness_since(ms(5000)), ms(300));
        assert_eq!(
            p.happenings(None, Stage::Running { ready: true }),
            vec![Happening::ContainersStarted]
        );
        assert!(p
            .happenings(
                Some(Stage::Running { ready: true }),
                Stage::Running { ready: true }
            )
            .is_empty());
    }

    #[test]
    fn zero_ready_delay_starts_running() {
        let p = Plan {
            ready_delay: Duration::ZERO,
            ..plan(Behavior::Healthy)
        };
        assert_eq!(p.stage_at(ms(0)), Stage::Running { ready: true });
        assert_eq!(p.next_change_after(ms(0)), None);
    }

    #[test]
    fn never_ready() {
        let p = plan(Behavior::NeverReady);
        assert_eq!(p.stage_at(ms(10_000)), Stage::Running { ready: false });
        assert_eq!(p.next_change_after(ms(400)), None);
        assert_eq!(p.readiness_since(ms(10_000)), ms(0));
        assert_eq!(
            p.happenings(Some(Stage::Creating), Stage::Running { ready: false }),
            vec![Happening::ContainersStarted, Happening::ReadinessFailed]
        );
    }

    #[test]
    fn ready_after() {
        let p = plan(Behavior::ReadyAfter(ms(3000)));
        assert_eq!(p.stage_at(ms(1000)), Stage::Running { ready: false });
        assert_eq!(p.stage_at(ms(3299)), Stage::Running { ready: false });
        assert_eq!(p.stage_at(ms(3300)), Stage::Running { ready: true });
        assert_eq!(p.next_change_after(ms(1000)), Some(ms(3300)));
        assert_eq!(p.next_change_after(ms(3300)), None);
        assert_eq!(p.readiness_since(ms(1000)), ms(0));
        assert_eq!(p.readiness_since(ms(4000)), ms(3300));
        assert_eq!(
            p.happenings(Some(Stage::Creating), Stage::Running { ready: false }),
            vec![Happening::ContainersStarted]
        );
        assert!(p
            .happenings(
                Some(Stage::Running { ready: false }),
                Stage::Running { ready: true }
            )
            .is_empty());
    }

    #[test]
    fn unready_after() {
        let p = plan(Behavior::UnreadyAfter(ms(5000)));
        assert_eq!(p.stage_at(ms(300)), Stage::Running { ready: true });
        assert_eq!(p.stage_at(ms(5300)), Stage::Running { ready: false });
        assert_eq!(p.next_change_after(ms(400)), Some(ms(5300)));
        assert_eq!(p.readiness_since(ms(400)), ms(300));
        assert_eq!(p.readiness_since(ms(6000)), ms(5300));
        assert_eq!(
            p.happenings(
                Some(Stage::Running { ready: true }),
                Stage::Running { ready: false }
            ),
            vec![Happening::ReadinessFailed]
        );
    }

    #[test]
    fn crashloop_restarts_grow() {
        let p = plan(Behavior::CrashLoop);
        assert_eq!(p.stage_at(ms(300)), Stage::CrashLoop { restarts: 1 });
        assert_eq!(p.stage_at(ms(2299)), Stage::CrashLoop { restarts: 1 });
        assert_eq!(p.stage_at(ms(2300)), Stage::CrashLoop { restarts: 2 });
        assert_eq!(p.stage_at(ms(6300)), Stage::CrashLoop { restarts: 4 });
        assert_eq!(p.next_change_after(ms(0)), Some(ms(300)));
        assert_eq!(p.next_change_after(ms(300)), Some(ms(2300)));
        assert_eq!(p.next_change_after(ms(2300)), Some(ms(4300)));
        assert_eq!(p.last_run_started(1), ms(300));
        assert_eq!(p.last_run_started(3), ms(4300));
        assert_eq!(
            p.happenings(Some(Stage::Creating), Stage::CrashLoop { restarts: 1 }),
            vec![Happening::ContainersStarted, Happening::CrashBackOff]
        );
        assert_eq!(
            p.happenings(
                Some(Stage::CrashLoop { restarts: 1 }),
                Stage::CrashLoop { restarts: 2 }
            ),
            vec![Happening::CrashBackOff]
        );
    }

    #[test]
    fn pull_failure() {
        let p = plan(Behavior::ImagePullFail);
        assert_eq!(p.stage_at(ms(300)), Stage::PullError);
        assert_eq!(p.stage_at(ms(2300)), Stage::PullBackOff);
        assert_eq!(p.next_change_after(ms(300)), Some(ms(2300)));
        assert_eq!(p.next_change_after(ms(2300)), None);
        assert_eq!(
            p.happenings(Some(Stage::Creating), Stage::PullError),
            vec![Happening::PullFailed]
        );
        assert_eq!(
            p.happenings(Some(Stage::PullError), Stage::PullBackOff),
            vec![Happening::PullBackOff]
        );
        assert_eq!(
            p.happenings(None, Stage::PullBackOff),
            vec![Happening::PullFailed, Happening::PullBackOff]
        );
    }
}
