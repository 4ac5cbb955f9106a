//! Guarded writes: every change to a StatefulSet is tested against the spec generation
//! (or resourceVersion) it was planned from; a conflict stops the run with an explanation.
//! Writes ride out an API-server restart, and an unanswered write is recognised as ours
//! only when the next generation is exactly the change we asked for.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::ResourceExt;

use crate::plan::patch::freeze_patch;

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
        match judge(
            generation,
            expected_generation,
            unanswered && !dry_run,
            || applied(&cur),
        ) {
            Before::ReadAgain => continue,
            Before::Ours => return Ok(cur),
            Before::Conflict => {
                return Err(Error::Conflict {
                    object: format!("statefulset \"{name}\""),
                    detail: format!(
                        "its spec moved from generation {expected_generation} to {generation}"
                    ),
                })
            }
            Before::Write => {}
        }
        if !dry_run {
            ctx.may_write()?;
        }
        let rv = cur.resource_version().unwrap_or_default();
        let pp = kube::api::PatchParams {
            dry_run,
            ..Default::default()
        };
        let err = match api.patch(name, &pp, &make_patch(&rv)).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let retry_allowed = Instant::now() < give_up;
        match (classify(&err), err) {
            (Failed::Invalid, kube::Error::Api(s)) => {
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
            (Failed::Stale, _) if conflicts < 5 => {
                // This attempt was not applied; an earlier unanswered one may have been,
                // so `unanswered` keeps its value.
                conflicts += 1;
                tracing::debug!("resourceVersion {rv} of statefulset {name} is stale; re-reading");
            }
            (Failed::Transient { answered }, e) if retry_allowed => {
                // A 5xx is an answer too, but after a connection error we cannot know.
                unanswered |= !answered;
                tracing::debug!("patch of statefulset {name} failed ({e}); retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            (Failed::Stale, _) => {
                return Err(Error::Conflict {
                    object: format!("statefulset \"{name}\""),
                    detail: "it kept changing while the patch was retried".into(),
                })
            }
            (_, e) => return Err(ctx.err("patch", "statefulsets", Some(name), e)),
        }
    }
}

/// Sends `patch` (made from the snapshot's resourceVersion) with dryRun=All: the API
/// server validates the write, nothing changes. `--dry-run=server` of every writer.
pub async fn dry_run(
    ctx: &Ctx,
    sts: &StatefulSet,
    patch: impl Fn(&str) -> kube::api::Patch<serde_json::Value>,
) -> Result<()> {
    let gen = sts.metadata.generation.unwrap_or(0);
    guarded_patch(
        ctx,
        &sts.name_any(),
        gen,
        Some(sts.clone()),
        true,
        |_| false,
        patch,
    )
    .await
    .map(|_| ())
}

/// [`dry_run`] of a template write (`freeze_patch`: template, partition, optional
/// settings record): canary and rollback.
pub async fn dry_run_freeze(
    ctx: &Ctx,
    sts: &StatefulSet,
    template: &PodTemplateSpec,
    partition: i32,
    record: Option<&str>,
) -> Result<()> {
    dry_run(ctx, sts, |rv| {
        freeze_patch(rv, template, partition, sts, record)
    })
    .await
}

/// What the StatefulSet read before an attempt says about it.
#[derive(Debug, PartialEq, Eq)]
enum Before {
    /// The spec is the one planned from: send the patch.
    Write,
    /// A cached copy older than our own last write: read the real one.
    ReadAgain,
    /// Our earlier, unanswered write went through; only its answer was lost.
    Ours,
    /// Someone else changed the spec.
    Conflict,
}

/// `maybe_ours`: an earlier attempt got no answer (and it was not a dry run);
/// `applied`: the spec now is exactly the change we asked for.
fn judge(
    generation: i64,
    expected: i64,
    maybe_ours: bool,
    applied: impl FnOnce() -> bool,
) -> Before {
    if generation < expected {
        Before::ReadAgain
    } else if generation == expected {
        Before::Write
    } else if maybe_ours && generation == expected + 1 && applied() {
        Before::Ours
    } else {
        Before::Conflict
    }
}

/// How a failed patch is handled.
#[derive(Debug, PartialEq, Eq)]
enum Failed {
    /// 422: an invalid patch, or the generation test failed (re-read to tell which).
    Invalid,
    /// 409: the resourceVersion was stale; re-read and retry (a few times).
    Stale,
    /// No connection or the server briefly unavailable: retry for a while. `answered`
    /// is false when the request may have been applied without us hearing back.
    Transient { answered: bool },
    /// Anything else stops the write.
    Fatal,
}

fn classify(e: &kube::Error) -> Failed {
    match e {
        kube::Error::Api(s) if s.code == 422 => Failed::Invalid,
        kube::Error::Api(s) if s.code == 409 => Failed::Stale,
        kube::Error::Api(s) if matches!(s.code, 429 | 500 | 502 | 503 | 504) => {
            Failed::Transient { answered: true }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            Failed::Transient { answered: false }
        }
        _ => Failed::Fatal,
    }
}

/// Errors worth retrying: no connection, or the server briefly unavailable.
fn transient(e: &kube::Error) -> bool {
    matches!(classify(e), Failed::Transient { .. })
}

/// Deletes `pod` only while it is the same object (uid precondition): a pod someone else
/// has just replaced is never deleted. Ok(false) when it was already gone or replaced.
pub async fn delete_pod_if_unchanged(ctx: &Ctx, pod: &Pod) -> Result<bool> {
    let name = pod.name_any();
    let dp = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    ctx.may_write()?;
    match ctx.api::<Pod>().delete(&name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(ctx.err("delete", "pods", Some(&name), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("x", "y")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn failed_patches_are_classified_by_what_a_retry_can_fix() {
        assert_eq!(classify(&api(422)), Failed::Invalid);
        assert_eq!(classify(&api(409)), Failed::Stale);
        for code in [429, 500, 502, 503, 504] {
            assert_eq!(
                classify(&api(code)),
                Failed::Transient { answered: true },
                "{code}"
            );
        }
        for code in [400, 401, 403, 404] {
            assert_eq!(classify(&api(code)), Failed::Fatal, "{code}");
        }
        let lost = kube::Error::Service("connection reset".into());
        assert_eq!(classify(&lost), Failed::Transient { answered: false });
        assert!(transient(&lost) && transient(&api(503)) && !transient(&api(403)));
    }

    #[test]
    fn only_an_unanswered_write_exactly_one_generation_on_can_be_ours() {
        assert_eq!(judge(4, 5, false, || true), Before::ReadAgain);
        assert_eq!(judge(5, 5, true, || true), Before::Write);
        assert_eq!(judge(6, 5, true, || true), Before::Ours);
        assert_eq!(
            judge(6, 5, false, || true),
            Before::Conflict,
            "answered: never ours"
        );
        assert_eq!(
            judge(6, 5, true, || false),
            Before::Conflict,
            "not our change"
        );
        assert_eq!(
            judge(7, 5, true, || true),
            Before::Conflict,
            "two writes since"
        );
    }
}
