//! One operator at a time: the `coordination.k8s.io/v1` Lease `sts-safe-<statefulset>` that
//! every writing command holds while it writes (taken and renewed by `exec::lease`).
//!
//! - Who: `holderIdentity` is `user@host/pid` (the user from SelfSubjectReview where the
//!   server has it, else the kubeconfig's user entry); annotations spell out user, host,
//!   pid, the command line and the step (`k/n`); `acquireTime` says since when.
//! - Timing: `leaseDurationSeconds` 30 (or `STS_SAFE_LEASE_DURATION`), renewed every half
//!   duration (4 requests a minute). The holder stops writing once a duration (less a
//!   small margin) has passed since it sent its last successful renewal, on its own
//!   monotonic clock; a lease that lapsed that way stays lost, even if a later renewal
//!   gets through. Another run counts the lease as abandoned once `renewTime` + the
//!   lease's duration + [`SKEW`] has passed on its clock, so clocks may disagree by 5 s.
//! - A live lease is taken from its holder only with `--break-lock`, after a confirmation
//!   that names the holder; the taker then waits one lease duration before its first write,
//!   so the holder's last renewal has run out (elapsed time, not clock agreement).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::model::format_age;

/// The default lease duration; `STS_SAFE_LEASE_DURATION` sets another (e.g. `10s`).
pub const DURATION: Duration = Duration::from_secs(30);
/// How far apart two machines' clocks may be.
pub const SKEW: Duration = Duration::from_secs(5);

/// The environment variable that sets the lease duration of this run.
pub const DURATION_ENV: &str = "STS_SAFE_LEASE_DURATION";

/// The lease duration asked for in `STS_SAFE_LEASE_DURATION` (3s to 1h), else 30 s.
pub fn duration_from(env: Option<&str>) -> Result<Duration, String> {
    let Some(v) = env.filter(|v| !v.is_empty()) else {
        return Ok(DURATION);
    };
    let d =
        humantime::parse_duration(v).map_err(|e| format!("{DURATION_ENV}={v}: {e} (e.g. 30s)"))?;
    if d < Duration::from_secs(3) || d > Duration::from_secs(3600) {
        return Err(format!("{DURATION_ENV}={v}: must be between 3s and 1h"));
    }
    Ok(Duration::from_secs(d.as_secs()))
}

/// Renewed twice per duration: one failed renewal is survived.
pub fn renew_every(duration: Duration) -> Duration {
    duration / 2
}

/// How long after sending a renewal that succeeded the holder may still write: the
/// duration, less a margin for the request's own time.
pub fn valid_for(duration: Duration) -> Duration {
    duration - (duration / 10).min(Duration::from_secs(2))
}

const PREFIX: &str = "sts-safe.dev/";
pub const USER: &str = "sts-safe.dev/user";
pub const HOST: &str = "sts-safe.dev/host";
pub const PID: &str = "sts-safe.dev/pid";
pub const COMMAND: &str = "sts-safe.dev/command";
pub const STEP: &str = "sts-safe.dev/step";
pub const STATEFULSET: &str = "sts-safe.dev/statefulset";

/// The Lease guarding writes to StatefulSet `sts` (in its namespace).
pub fn lease_name(sts: &str) -> String {
    format!("sts-safe-{sts}")
}

/// Who runs what: the content of a lease this run holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// The command line, e.g. `canary redis --image redis=redis:7.4`.
    pub command: String,
    /// Step k of n, once known.
    pub step: Option<(usize, usize)>,
}

impl Operation {
    pub fn identity(&self) -> String {
        format!("{}@{}/{}", self.user, self.host, self.pid)
    }

    pub fn annotations(&self, sts: &str) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([
            (USER.to_string(), self.user.clone()),
            (HOST.to_string(), self.host.clone()),
            (PID.to_string(), self.pid.to_string()),
            (COMMAND.to_string(), self.command.clone()),
            (STATEFULSET.to_string(), sts.to_string()),
        ]);
        if let Some((k, n)) = self.step {
            a.insert(STEP.to_string(), format!("{k}/{n}"));
        }
        a
    }
}

/// The Lease object for `op` taking over `previous` (or new when None) at `now`.
pub fn taken(
    previous: Option<&Lease>,
    sts: &str,
    op: &Operation,
    duration: Duration,
    now: Timestamp,
) -> Lease {
    let mut lease = previous.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(sts)),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    // A transition is a change of holder: taking a lease nobody holds is not one.
    let transitions = previous.and_then(|l| l.spec.as_ref()).map(|s| {
        let held = s.holder_identity.as_deref().is_some_and(|h| !h.is_empty());
        s.lease_transitions.unwrap_or(0) + i32::from(held)
    });
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.retain(|k, _| !k.starts_with(PREFIX));
    annotations.extend(op.annotations(sts));
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(op.identity()),
        lease_duration_seconds: Some(duration.as_secs() as i32),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: transitions,
        ..LeaseSpec::default()
    });
    lease
}

/// `held` renewed at `now`, with the step the run has reached.
pub fn renewed(held: &Lease, sts: &str, op: &Operation, now: Timestamp) -> Lease {
    let mut lease = held.clone();
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.retain(|k, _| !k.starts_with(PREFIX));
    annotations.extend(op.annotations(sts));
    if let Some(spec) = lease.spec.as_mut() {
        spec.renew_time = Some(MicroTime(now));
    }
    lease
}

/// A lease as people read it (`status`, `doctor`, `-o json`, refusals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    pub lease: String,
    pub holder: String,
    pub user: Option<String>,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub command: Option<String>,
    /// "k/n"
    pub step: Option<String>,
    pub since: Option<String>,
    pub renewed: Option<String>,
    pub renewed_seconds_ago: Option<i64>,
    pub duration_seconds: i64,
    /// Not renewed for longer than its duration (plus the clock allowance): the holder is
    /// gone, and the next writer takes the lease over.
    pub expired: bool,
}

/// What a writer finds in the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// No lease, or one nobody holds.
    Free,
    Held(LockInfo),
    Expired(LockInfo),
}

fn micro_secs(t: &Option<MicroTime>) -> Option<Timestamp> {
    t.as_ref().map(|m| m.0)
}

/// The lease as people read it; None when nobody holds it.
pub fn read(lease: &Lease, now: Timestamp) -> Option<LockInfo> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let a = lease.metadata.annotations.clone().unwrap_or_default();
    let duration = i64::from(
        spec.lease_duration_seconds
            .unwrap_or(DURATION.as_secs() as i32),
    );
    let renewed = micro_secs(&spec.renew_time).or_else(|| micro_secs(&spec.acquire_time));
    let ago = renewed.map(|r| now.as_second() - r.as_second());
    let expired = ago.is_none_or(|a| a > duration + SKEW.as_secs() as i64);
    Some(LockInfo {
        lease: lease.metadata.name.clone().unwrap_or_default(),
        holder,
        user: a.get(USER).cloned(),
        host: a.get(HOST).cloned(),
        pid: a.get(PID).and_then(|p| p.parse().ok()),
        command: a.get(COMMAND).cloned(),
        step: a.get(STEP).cloned(),
        since: micro_secs(&spec.acquire_time).map(|t| t.to_string()),
        renewed: renewed.map(|t| t.to_string()),
        renewed_seconds_ago: ago,
        duration_seconds: duration,
        expired,
    })
}

pub fn judge(lease: Option<&Lease>, now: Timestamp) -> Judgement {
    match lease.and_then(|l| read(l, now)) {
        None => Judgement::Free,
        Some(info) if info.expired => Judgement::Expired(info),
        Some(info) => Judgement::Held(info),
    }
}

/// "alice@laptop (pid 4242): canary redis --image …, step 2/4, since …, renewed 3s ago"
pub fn describe(i: &LockInfo) -> String {
    let who = match (&i.user, &i.host) {
        (Some(u), Some(h)) => format!("{u}@{h}"),
        _ => i.holder.clone(),
    };
    let mut s = who;
    if let Some(pid) = i.pid {
        s.push_str(&format!(" (pid {pid})"));
    }
    if let Some(c) = &i.command {
        s.push_str(&format!(": {c}"));
    }
    if let Some(step) = &i.step {
        s.push_str(&format!(", step {step}"));
    }
    if let Some(since) = &i.since {
        s.push_str(&format!(", since {since}"));
    }
    match i.renewed_seconds_ago {
        Some(a) => s.push_str(&format!(", lease renewed {} ago", format_age(a))),
        None => s.push_str(", lease never renewed"),
    }
    s
}

/// The refusal when another run holds the StatefulSet.
pub fn locked_message(sts: &str, i: &LockInfo) -> String {
    format!(
        "statefulset \"{sts}\" is being changed by {}; nothing was written. Wait for it to \
         finish (kubectl sts-safe status {sts}), or, once you are sure that run is gone, take \
         the lock with --break-lock",
        describe(i)
    )
}

/// The notice when an abandoned lease is taken over.
pub fn takeover_notice(sts: &str, i: &LockInfo) -> String {
    format!(
        "taking over the lock of statefulset \"{sts}\" from {}: it was not renewed for longer \
         than {}s, so that run is gone (a canary it left continues with --resume)",
        describe(i),
        i.duration_seconds
    )
}

/// The question before `--break-lock` takes a live lease.
pub fn break_question(sts: &str, i: &LockInfo) -> String {
    format!(
        "statefulset \"{sts}\" is locked by {}. Take the lock? That run stops before its next \
         write; this one waits {}s first",
        describe(i),
        i.duration_seconds
    )
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
