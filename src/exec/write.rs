//! Guarded writes: every change to a StatefulSet is tested against the spec generation
//! (or resourceVersion) it was planned from; a conflict stops the run with an explanation.
//! Writes ride out an API-server restart, and an unanswered write is recognised as ours
//! only when the next generation is exactly the change we asked for.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;

use crate::context::Ctx;
use crate::error::{Error, Result};

/// How long a guarded write keeps retrying while the API server cannot be reached
/// (e.g. restarting). Retrying is safe: every attempt carries a resourceVersion.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(30);

/// Patches the StatefulSet only if its spec is still the one this run last saw:
/// `expected_generation` must match, and the write carries the resourceVersion it
/// was computed from. Status-only updates in between are retried; a spec change by
/// anyone else stops the operation. `applied` recognises our own write when only its
/// response was lost (connection dropped after the server committed it).
pub async fn guarded_patch(
    ctx: &Ctx,
    name: &str,
    expected_generation: i64,
    latest: Option<StatefulSet>,
    dry_run: bool,
    applied: impl Fn(&StatefulSet) -> bool,
    make_patch: impl Fn(&str) -> kube::api::Patch<serde_json::Value>,
) -> Result<StatefulSet> {
    let api = ctx.api::<StatefulSet>();
    let give_up = Instant::now() + UNREACHABLE_RETRY;
    let mut backoff = Duration::from_millis(200);
    // Set once an attempt got no answer (connection lost): only then may a newer
    // generation that looks like our change be taken as ours.
    let mut unanswered = false;
    let mut current = latest;
    let mut conflicts = 0;
    loop {
        let cur = match current.take() {
            Some(s) => s,
            None => match api.get(name).await {
                Ok(s) => s,
                Err(e) if transient(&e) && Instant::now() < give_up => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                Err(e) => return Err(ctx.err("get", "statefulsets", Some(name), e)),
            },
        };
        let generation = cur.metadata.generation.unwrap_or(0);
        if generation < expected_generation {
            continue; // a cached copy older than our own last write: read the real one
        }
        if generation != expected_generation {
            if unanswered && !dry_run && generation == expected_generation + 1 && applied(&cur) {
                return Ok(cur); // our write went through; only its answer was lost
            }
            return Err(Error::Conflict {
                object: format!("statefulset \"{name}\""),
                detail: format!(
                    "its spec moved from generation {expected_generation} to {generation}"
                ),
            });
        }
        let rv = cur.resource_version().unwrap_or_default();
        let pp = kube::api::PatchParams {
            dry_run,
            ..Default::default()
        };
        match api.patch(name, &pp, &make_patch(&rv)).await {
            Ok(s) => return Ok(s),
            Err(kube::Error::Api(s)) if s.code == 422 => {
                // A failed generation test answers 422 with no detail: re-read to tell a
                // concurrent spec change (generation moved) from a genuinely invalid patch.
                let now = api
                    .get(name)
                    .await
                    .map_err(|e| ctx.err("get", "statefulsets", Some(name), e))?;
                if now.metadata.generation.unwrap_or(0) == expected_generation {
                    return Err(ctx.err("patch", "statefulsets", Some(name), kube::Error::Api(s)));
                }
                current = Some(now);
            }
            Err(kube::Error::Api(s)) if s.code == 409 && conflicts < 5 => {
                // This attempt was not applied; an earlier unanswered one may have been,
                // so `unanswered` keeps its value.
                conflicts += 1;
                tracing::debug!("resourceVersion {rv} of statefulset {name} is stale; re-reading");
            }
            Err(e) if transient(&e) && Instant::now() < give_up => {
                // A 5xx is an answer too, but after a connection error we cannot know.
                unanswered |= !matches!(e, kube::Error::Api(_));
                tracing::debug!("patch of statefulset {name} failed ({e}); retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Err(Error::Conflict {
                    object: format!("statefulset \"{name}\""),
                    detail: "it kept changing while the patch was retried".into(),
                })
            }
            Err(e) => return Err(ctx.err("patch", "statefulsets", Some(name), e)),
        }
    }
}

/// Errors worth retrying: no connection, or the server briefly unavailable.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
