//! --restart-pods: the pods whose volumes wait for a restart to grow their filesystem
//! (offline expansion) are restarted one at a time, top ordinal first, through the
//! Eviction API, so PodDisruptionBudgets hold; each must come back Ready under a new
//! uid with its claims at their size before the next.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{EvictParams, Preconditions};
use kube::ResourceExt;

use super::interrupt::Interrupt;
use super::watch::{Poll, Tracker, WaitEnd};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::recreate::{growth, Growth};
use crate::plan::resize::bytes;
use crate::ui::Progress;

/// Restarts, one at a time (top ordinal first), the pods whose claims wait for a
/// restart to grow their filesystem: an eviction (uid precondition; a
/// PodDisruptionBudget that forbids it is waited for), then the pod back Ready under a
/// new uid and its claims at their size.
pub async fn restart_pods(
    ctx: &Ctx,
    pods: &[(String, Vec<(String, String)>)],
    tracker: &mut Tracker,
    interrupt: &mut Interrupt,
    progress: &Progress,
    timeout: Duration,
) -> Result<Vec<String>> {
    let api = ctx.api::<Pod>();
    let mut done = vec![];
    for (pod, claims) in pods {
        if interrupt.is_set() {
            return Err(Error::Interrupted(format!(
                "stopped between pod restarts ({} of {} restarted)",
                done.len(),
                pods.len()
            )));
        }
        let line = progress.line(pod.clone());
        let deadline = Instant::now() + timeout;
        // Never more than one pod down: every other pod of the StatefulSet is available
        // first (a PodDisruptionBudget, if any, is also asked by the eviction).
        let all_up = tracker
            .wait_for(deadline, interrupt, |t| {
                let Some(sts) = t.statefulset() else {
                    return Poll::Pending(None);
                };
                let pods = t.pods();
                let down: Vec<String> = model::live_range(&sts)
                    .filter(|o| !pods.get(o).is_some_and(model::is_available))
                    .map(|o| model::pod_name(&sts.name_any(), o))
                    .collect();
                if down.is_empty() {
                    Poll::Done(())
                } else {
                    line.set(format!(
                        "waiting for {} to be available first",
                        down.join(", ")
                    ));
                    Poll::Pending(None)
                }
            })
            .await;
        match all_up {
            Ok(()) => {}
            Err(WaitEnd::Interrupted) => {
                return Err(Error::Interrupted(format!(
                    "stopped before restarting {pod}"
                )))
            }
            Err(WaitEnd::Timeout) => {
                return Err(Error::Timeout {
                    what: format!("every other pod to be available before restarting {pod}"),
                    after: humantime::format_duration(timeout).to_string(),
                })
            }
        }
        let Some(old_uid) = tracker
            .pods()
            .values()
            .find(|p| p.name_any() == *pod)
            .and_then(|p| p.uid())
        else {
            line.finish("gone already: its claims grow when it is created again");
            continue;
        };
        let ep = EvictParams {
            delete_options: Some(kube::api::DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(old_uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        loop {
            ctx.may_write()?;
            match api.evict(pod, &ep).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 429 && Instant::now() < deadline => {
                    line.set("a PodDisruptionBudget forbids the eviction now: waiting");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = interrupt.wait() => return Err(Error::Interrupted(format!("stopped before restarting {pod}"))),
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => break,
                Err(e) => return Err(ctx.err("create", "pods/eviction", Some(pod), e)),
            }
        }
        line.set("evicted: waiting for it to come back Ready");
        let waited = tracker
            .wait_for(deadline, interrupt, |t| {
                let back = t.pods().values().any(|p| {
                    p.name_any() == *pod
                        && p.uid().as_deref() != Some(old_uid.as_str())
                        && model::is_ready(p)
                });
                let grown = claims.iter().all(|(c, to)| {
                    t.claim(c)
                        .is_some_and(|p| growth(&p, bytes(to)) == Growth::Done)
                });
                match (back, grown) {
                    (true, true) => Poll::Done(()),
                    (true, false) => {
                        line.set("Ready again: waiting for its filesystem to grow");
                        Poll::Pending(None)
                    }
                    _ => Poll::Pending(None),
                }
            })
            .await;
        match waited {
            Ok(()) => {
                line.finish("restarted, Ready, filesystem grown");
                done.push(pod.clone());
            }
            Err(WaitEnd::Interrupted) => {
                return Err(Error::Interrupted(format!(
                    "stopped while {pod} restarts (the StatefulSet controller brings it back by itself)"
                )))
            }
            Err(WaitEnd::Timeout) => {
                return Err(Error::Timeout {
                    what: format!("{pod} to come back Ready with its volumes grown"),
                    after: humantime::format_duration(timeout).to_string(),
                })
            }
        }
    }
    Ok(done)
}
