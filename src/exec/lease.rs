//! The lease engine: takes the Lease `sts-safe-<statefulset>` before a run's first write,
//! renews it in the background, and gives it back at the end (the rules are in
//! `plan::lease`). While held, the lease is the context's write gate: every guarded write
//! asks it first, so a run whose lease was lost (not renewed for its duration, or taken
//! with `--break-lock`) stops before its next write.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::ResourceExt;

use crate::context::{Ctx, WriteGate};
use crate::error::{Error, Result};
use crate::plan::lease::{
    self, break_question, describe, duration_from, judge, lease_name, locked_message, read,
    renew_every, renewed, taken, takeover_notice, valid_for, Judgement, Operation, DURATION_ENV,
};
use crate::render;
use crate::ui;

/// How often a failed renewal is retried.
const RETRY: Duration = Duration::from_secs(1);

/// Who runs this: the user the API server sees (SelfSubjectReview, 1.28+), else the
/// kubeconfig's user entry; this host and process; and the command line.
pub async fn operation(ctx: &Ctx) -> Operation {
    let api: Api<SelfSubjectReview> = Api::all(ctx.client.clone());
    let user = match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_else(|| ctx.kubeconfig_user.clone()),
        // Older servers (404) or a policy that forbids it: the kubeconfig's name for it.
        Err(_) => ctx.kubeconfig_user.clone(),
    };
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into());
    Operation {
        user,
        host,
        pid: std::process::id(),
        command: command_line(),
        step: None,
    }
}

/// The arguments after the program name, quoted where needed.
fn command_line() -> String {
    std::env::args()
        .skip(1)
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lease of `sts` in namespace `ns`, as a writer would judge it now.
pub async fn peek(ctx: &Ctx, ns: &str, sts: &str) -> Result<Judgement> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), ns);
    let name = lease_name(sts);
    let l = api
        .get_opt(&name)
        .await
        .map_err(|e| ctx.err_in("get", "leases", Some(&name), ns, e))?;
    Ok(judge(l.as_ref(), Timestamp::now()))
}

/// Refuses when another run holds the lease of `sts` (unless `break_lock`), so a run
/// stops before its plan and its questions, not after.
pub async fn refuse_if_held(ctx: &Ctx, ns: &str, sts: &str, break_lock: bool) -> Result<()> {
    match peek(ctx, ns, sts).await? {
        Judgement::Held(i) if !break_lock => Err(Error::stopped(locked_message(sts, &i))),
        _ => Ok(()),
    }
}

struct Shared {
    sts: String,
    duration: Duration,
    lease: Mutex<Lease>,
    valid_until: Mutex<Instant>,
    lost: Mutex<Option<String>>,
    op: Mutex<Operation>,
}

impl Shared {
    fn lose(&self, why: String) {
        self.lost.lock().expect("lease lock").get_or_insert(why);
    }
}

impl WriteGate for Shared {
    fn check(&self) -> Result<()> {
        let sts = &self.sts;
        if let Some(why) = self.lost.lock().expect("lease lock").clone() {
            return Err(Error::LockLost(format!(
                "lost the lock of statefulset \"{sts}\" ({why}); stopped before the next write"
            )));
        }
        if Instant::now() > *self.valid_until.lock().expect("lease lock") {
            return Err(Error::LockLost(format!(
                "lost the lock of statefulset \"{sts}\" (not renewed for {}s: is the API \
                 server reachable?); stopped before the next write, since another run may \
                 take it now",
                self.duration.as_secs()
            )));
        }
        Ok(())
    }

    /// The step rides on the next scheduled renewal (no extra request per step).
    fn step(&self, k: usize, n: usize) {
        self.op.lock().expect("lease lock").step = Some((k, n));
    }

    fn holder(&self) -> String {
        self.op.lock().expect("lease lock").identity()
    }
}

/// Takes the lock of `sts` in `ns` for `op`: a live one only when `break_lock` was asked
/// for, after a question that names its holder (`yes` answers it; `--yes` alone never
/// reaches here with `break_lock`).
pub async fn take(
    ctx: &Ctx,
    ns: &str,
    sts: &str,
    op: Operation,
    break_lock: bool,
    yes: bool,
) -> Result<LeaseGuard> {
    let mut breaking = false;
    if break_lock {
        if let Judgement::Held(i) = peek(ctx, ns, sts).await? {
            ui::confirm(ctx, yes, &break_question(sts, &i))?;
            breaking = true;
        }
    }
    acquire(ctx, ns, sts, op, breaking).await
}

/// A lease this run holds; [`LeaseGuard::release`] gives it back.
pub struct LeaseGuard {
    api: Api<Lease>,
    shared: Arc<Shared>,
    renewal: tokio::task::JoinHandle<()>,
}

/// Takes the lease of `sts` in `ns` for `op`: a free one at once, an abandoned one with a
/// notice, a live one only with `break_lock` (asked for by the caller), then waiting one
/// lease duration. Installs the lease as the context's write gate.
pub async fn acquire(
    ctx: &Ctx,
    ns: &str,
    sts: &str,
    op: Operation,
    break_lock: bool,
) -> Result<LeaseGuard> {
    let duration =
        duration_from(std::env::var(DURATION_ENV).ok().as_deref()).map_err(Error::usage)?;
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), ns);
    let name = lease_name(sts);
    let err = |verb: &str, e| ctx.err_in(verb, "leases", Some(&name), ns, e);
    for attempt in 0..5 {
        // Most of the time there is no lease: try to create it first (one request); a
        // 409 means there is one, which is then read and judged.
        let current = if attempt == 0 {
            None
        } else {
            api.get_opt(&name).await.map_err(|e| err("get", e))?
        };
        let now = Timestamp::now();
        let mut broke = None;
        match judge(current.as_ref(), now) {
            Judgement::Free => {}
            Judgement::Expired(i) => render::note(takeover_notice(sts, &i)),
            Judgement::Held(i) if break_lock => {
                render::note(format!("taking the lock from {}", describe(&i)));
                broke = Some(Duration::from_secs(i.duration_seconds.max(0) as u64));
            }
            Judgement::Held(i) => return Err(Error::stopped(locked_message(sts, &i))),
        }
        let sent = Instant::now();
        let next = taken(current.as_ref(), sts, &op, duration, now);
        let written = match &current {
            None => api.create(&PostParams::default(), &next).await,
            Some(_) => api.replace(&name, &PostParams::default(), &next).await,
        };
        let lease = match written {
            Ok(l) => l,
            // Someone else took or changed it between the read and the write: judge again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                return Err(err(
                    if current.is_none() {
                        "create"
                    } else {
                        "update"
                    },
                    e,
                ))
            }
        };
        let shared = Arc::new(Shared {
            sts: sts.to_string(),
            duration,
            lease: Mutex::new(lease),
            valid_until: Mutex::new(sent + valid_for(duration)),
            lost: Mutex::new(None),
            op: Mutex::new(op),
        });
        let renewal = tokio::spawn(renew(api.clone(), shared.clone()));
        ctx.set_gate(Some(shared.clone()));
        let guard = LeaseGuard {
            api,
            shared,
            renewal,
        };
        if let Some(theirs) = broke {
            // The other run's last renewal may still let it write for one duration.
            render::note(format!(
                "waiting {}s for the other run's lease to run out before the first write",
                theirs.as_secs()
            ));
            tokio::time::sleep(theirs).await;
        }
        return Ok(guard);
    }
    Err(Error::stopped(format!(
        "the lock of statefulset \"{sts}\" kept changing hands; nothing was written, re-run"
    )))
}

/// Renews every half duration (with the step reached so far), retrying every second
/// after a failure; gives up when someone else holds the lease or deleted it, or once it
/// lapsed (a lapsed lease may have been taken: it is never trusted again).
async fn renew(api: Api<Lease>, shared: Arc<Shared>) {
    let every = renew_every(shared.duration);
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        if Instant::now() > *shared.valid_until.lock().expect("lease lock") {
            shared.lose(format!("not renewed for {}s", shared.duration.as_secs()));
            return;
        }
        let op = shared.op.lock().expect("lease lock").clone();
        let current = shared.lease.lock().expect("lease lock").clone();
        let name = current.name_any();
        let sent = Instant::now();
        let next = renewed(&current, &shared.sts, &op, Timestamp::now());
        match api.replace(&name, &PostParams::default(), &next).await {
            Ok(l) => {
                *shared.lease.lock().expect("lease lock") = l;
                *shared.valid_until.lock().expect("lease lock") = sent + valid_for(shared.duration);
                wait = every;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&name).await {
                Ok(Some(l)) => {
                    let holder = l.spec.as_ref().and_then(|s| s.holder_identity.clone());
                    if holder.as_deref() == Some(op.identity().as_str()) {
                        // Only its metadata changed (someone's label): renew on top of it.
                        *shared.lease.lock().expect("lease lock") = l;
                        wait = Duration::ZERO;
                    } else {
                        let who = read(&l, Timestamp::now())
                            .map_or_else(|| "nobody".into(), |i| describe(&i));
                        shared.lose(format!("taken by {who}"));
                        return;
                    }
                }
                Ok(None) => {
                    shared.lose("its lease was deleted by someone else".into());
                    return;
                }
                Err(_) => wait = RETRY,
            },
            Err(kube::Error::Api(s)) if s.code == 404 => {
                shared.lose("its lease was deleted by someone else".into());
                return;
            }
            Err(_) => wait = RETRY,
        }
    }
}

impl LeaseGuard {
    /// The lease as others see it now (for reports).
    pub fn info(&self) -> Option<lease::LockInfo> {
        read(
            &self.shared.lease.lock().expect("lease lock"),
            Timestamp::now(),
        )
    }

    /// Stops renewing and deletes the lease if it is still ours (uid and resourceVersion
    /// preconditions). A failure is only a notice: the lease runs out by itself.
    pub async fn release(self, ctx: &Ctx) {
        self.renewal.abort();
        ctx.set_gate(None);
        if self.shared.lost.lock().expect("lease lock").is_some() {
            return;
        }
        let mut lease = self.shared.lease.lock().expect("lease lock").clone();
        let identity = self.shared.op.lock().expect("lease lock").identity();
        for _ in 0..3 {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: lease.metadata.uid.clone(),
                    resource_version: lease.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&lease.name_any(), &dp).await {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    match self.api.get_opt(&lease.name_any()).await {
                        Ok(Some(l))
                            if l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                                == Some(identity.as_str()) =>
                        {
                            lease = l
                        }
                        _ => return, // not ours any more
                    }
                }
                Err(e) => {
                    render::note(format!(
                        "could not release the lock of statefulset \"{}\" ({e}); it runs out by \
                         itself within {}s",
                        self.shared.sts,
                        self.shared.duration.as_secs()
                    ));
                    return;
                }
            }
        }
    }
}
