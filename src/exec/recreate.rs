//! Re-creates a StatefulSet with new claim templates without touching a pod:
//!
//! 1. its copy (as read, with the pods' uids) is written to the record ConfigMap,
//!    guarded by the ConfigMap's resourceVersion;
//! 2. the object is deleted with propagationPolicy=Orphan and uid + resourceVersion
//!    preconditions (a spec change since the plan stops the run: nothing deleted);
//! 3. once it is gone, it is created from the copy with the new sizes and its partition
//!    held at `replicas` (`plan::recreate::recreated`);
//! 4. the new object must compute the revision the pods run, own every pod and
//!    ControllerRevision, and no pod may have been replaced;
//! 5. the partition is given back and the record deleted.
//!
//! A kill at any point leaves either the object or its copy: the next run finds the
//! record and goes on from where the object is (`resume_point`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions, PropagationPolicy};
use kube::ResourceExt;

use super::interrupt::Interrupt;
use super::read::selector_string;
use super::watch::{Poll, Tracker, WaitEnd};
use super::write::guarded_patch;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::patch::generation_guarded;
use crate::plan::recreate::{
    adoption, original_partition, record_configmap, record_name, recreated, replaced,
    templates_have, Adoption, ResizeRecord,
};

/// What the re-create proved.
#[derive(Debug, Clone, Default)]
pub struct Recreated {
    pub new_uid: String,
    pub update_revision: Option<String>,
    pub pods_adopted: usize,
    pub revisions_adopted: usize,
    /// Pods replaced in between (by a drain; on the same revision).
    pub pods_replaced: usize,
}

/// Writes the record: creates it, or replaces `existing` under its resourceVersion.
pub async fn save_record(
    ctx: &Ctx,
    name: &str,
    rec: &ResizeRecord,
    existing: Option<&ConfigMap>,
) -> Result<ConfigMap> {
    ctx.may_write()?;
    let api = ctx.api::<ConfigMap>();
    let mut cm = record_configmap(&ctx.namespace, name, rec);
    let cm_name = record_name(name);
    let answer = match existing {
        Some(old) => {
            cm.metadata.resource_version = old.resource_version();
            api.replace(&cm_name, &PostParams::default(), &cm).await
        }
        None => api.create(&PostParams::default(), &cm).await,
    };
    answer.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 409 => Error::Conflict {
            object: format!("configmap \"{cm_name}\""),
            detail: "another run wrote the resize record".into(),
        },
        e => ctx.err("update", "configmaps", Some(&cm_name), e),
    })
}

/// Deletes the record (uid precondition) once the StatefulSet is whole again.
pub async fn drop_record(ctx: &Ctx, cm: &ConfigMap) -> Result<()> {
    ctx.may_write()?;
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cm.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match ctx.api::<ConfigMap>().delete(&cm.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ctx.err("delete", "configmaps", Some(&cm.name_any()), e)),
    }
}

/// `--dry-run=server` of the delete: the server checks the preconditions and rights.
pub async fn dry_run_delete(ctx: &Ctx, sts: &StatefulSet) -> Result<()> {
    let dp = orphan_delete(sts, true);
    ctx.api::<StatefulSet>()
        .delete(&sts.name_any(), &dp)
        .await
        .map(|_| ())
        .map_err(|e| ctx.err("delete", "statefulsets", Some(&sts.name_any()), e))
}

/// `create` of the object to be, with dryRun=All while the old one still exists: any
/// answer but AlreadyExists (validation, a webhook, a quota) stops the run before the
/// delete.
pub async fn dry_run_create(ctx: &Ctx, name: &str, rec: &ResizeRecord) -> Result<()> {
    let obj = recreated(&rec.statefulset, &rec.sizes);
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match ctx.api::<StatefulSet>().create(&pp, &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(Error::stopped(format!(
            "the API server would not create statefulset \"{name}\" again with the new claim templates ({}); nothing was deleted",
            ctx.err("create", "statefulsets", Some(name), e)
        ))),
    }
}

/// Errors a retry can fix: no connection, 5xx, 429, and a 403 from a quota (the deleted
/// object's slot is released by the quota controller a moment later).
fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            matches!(s.code, 429 | 500 | 502 | 503 | 504)
                || (s.code == 403 && s.message.contains("exceeded quota"))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn orphan_delete(sts: &StatefulSet, dry_run: bool) -> DeleteParams {
    DeleteParams {
        dry_run,
        propagation_policy: Some(PropagationPolicy::Orphan),
        preconditions: Some(Preconditions {
            uid: sts.uid(),
            resource_version: sts.resource_version(),
        }),
        ..Default::default()
    }
}

/// Runs steps 1–5 from wherever an earlier run stopped. `planned_generation`: the
/// spec generation the plan was made from (a later spec change stops the run).
#[allow(clippy::too_many_arguments)]
pub async fn recreate(
    ctx: &Ctx,
    name: &str,
    mut record_cm: Option<ConfigMap>,
    mut rec: ResizeRecord,
    planned_generation: Option<i64>,
    tracker: &mut Tracker,
    interrupt: &mut Interrupt,
    timeout: Duration,
) -> Result<Recreated> {
    let api = ctx.api::<StatefulSet>();
    let old_uid = rec.statefulset.uid().unwrap_or_default();
    let mut conflicts = 0;
    // 1 and 2, unless an earlier run got further.
    loop {
        let live = api
            .get_opt(name)
            .await
            .map_err(|e| ctx.err("get", "statefulsets", Some(name), e))?;
        let Some(live) = live else { break };
        if live.uid().unwrap_or_default() != old_uid || live.metadata.deletion_timestamp.is_some() {
            break;
        }
        let gen = live.metadata.generation.unwrap_or(0);
        if let Some(planned) = planned_generation.filter(|p| *p != gen) {
            return Err(Error::Conflict {
                object: format!("statefulset \"{name}\""),
                detail: format!(
                    "its spec moved from generation {planned} to {gen} while the claims grew; it was not deleted"
                ),
            });
        }
        rec.pods = pod_uids(tracker);
        rec.statefulset = live.clone();
        // The create that undoes the delete must pass validation, admission webhooks and
        // quotas: asked first (dryRun=All; AlreadyExists means it got past all of them).
        dry_run_create(ctx, name, &rec).await?;
        record_cm = Some(save_record(ctx, name, &rec, record_cm.as_ref()).await?);
        ctx.may_write()?;
        match api.delete(name, &orphan_delete(&live, false)).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 && conflicts < 5 => {
                // A status write in between; the generation check above tells a spec edit.
                conflicts += 1;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => break,
            Err(e) => return Err(ctx.err("delete", "statefulsets", Some(name), e)),
        }
    }
    // 3: wait until the old object is gone (the garbage collector orphans the pods and
    // ControllerRevisions, then removes it), then create it again. No interrupt here:
    // stopping between the delete and the create is what the record is for, but
    // finishing is better.
    let deadline = Instant::now() + timeout;
    let mut never = Interrupt::never();
    let gone = tracker
        .wait_for(deadline, &mut never, |t| match t.statefulset() {
            Some(s) if s.uid().as_deref() == Some(old_uid.as_str()) => Poll::Pending(None),
            other => Poll::Done(other),
        })
        .await;
    let existing = match gone {
        Ok(s) => s,
        Err(_) => {
            return Err(Error::Timeout {
                what: format!(
                    "statefulset \"{name}\" to be gone after its delete (the garbage collector orphans its pods first: is kube-controller-manager running?); its copy is in configmap \"{}\"",
                    record_name(name)
                ),
                after: humantime::format_duration(timeout).to_string(),
            })
        }
    };
    let new = match existing {
        Some(s) => s,
        None => create(ctx, name, &rec).await?,
    };
    if !templates_have(&new, &rec.sizes) {
        return Err(Error::stopped(format!(
            "statefulset \"{name}\" was created again by someone else, with other claim sizes, while the resize ran: its copy from before is in configmap \"{}\"; compare, then delete the configmap and re-run",
            record_name(name)
        )));
    }
    // 4: the new object adopts everything and computes the same revision.
    let expected = model::update_revision(&rec.statefulset).map(String::from);
    let new_uid = new.uid().unwrap_or_default();
    let deadline = Instant::now() + timeout;
    let before = rec.pods.clone();
    let waited = tracker
        .wait_for(deadline, interrupt, |t| {
            // The watch may not have delivered the create yet.
            let Some(s) = t
                .statefulset()
                .filter(|s| s.uid().as_deref() == Some(new_uid.as_str()))
            else {
                return Poll::Pending(None);
            };
            let pods: Vec<_> = t.pods().into_values().collect();
            match adoption(&s, &pods, None, &before, expected.as_deref()) {
                Adoption::Done => Poll::Done(Ok((s, pods))),
                Adoption::Failed(why) => Poll::Done(Err(why)),
                Adoption::Waiting(_) => Poll::Pending(None),
            }
        })
        .await;
    let (now, pods_now) = match waited {
        Ok(Ok(v)) => v,
        Ok(Err(why)) => {
            return Err(Error::stopped(format!(
                "{why}; the new object's partition is held at {} so no pod is replaced; its copy from before is in configmap \"{}\"",
                model::replicas(&rec.statefulset),
                record_name(name)
            )))
        }
        Err(WaitEnd::Interrupted) => {
            return Err(Error::Interrupted(format!(
                "stopped while statefulset \"{name}\" adopts its pods (it exists again)"
            )))
        }
        Err(WaitEnd::Timeout) => {
            let state = tracker
                .statefulset()
                .map(|s| {
                    let pods: Vec<_> = tracker.pods().into_values().collect();
                    format!("{:?}", adoption(&s, &pods, None, &before, expected.as_deref()))
                })
                .unwrap_or_default();
            return Err(Error::Timeout {
                what: format!("statefulset \"{name}\" to adopt its pods ({state})"),
                after: humantime::format_duration(timeout).to_string(),
            });
        }
    };
    let pods_adopted = pods_now.len();
    let pods_replaced = replaced(&pods_now, &before);
    let revisions_adopted = revisions_adopted(ctx, &now, &old_uid, deadline).await?;
    // 5: the partition back as it was, then the record.
    restore_strategy(ctx, name, &now, &rec.statefulset).await?;
    if let Some(cm) = record_cm.as_ref() {
        drop_record(ctx, cm).await?;
    }
    Ok(Recreated {
        new_uid,
        update_revision: model::update_revision(&now).map(String::from),
        pods_adopted,
        revisions_adopted,
        pods_replaced,
    })
}

/// Creates the object again. Not gated by the lock: it undoes this run's own delete, and
/// a run that took the lock over would create the same object from the same record (the
/// loser gets AlreadyExists). Retries what a retry can fix (no connection, 5xx, 429, a
/// quota not yet released by the deleted object) for a minute.
async fn create(ctx: &Ctx, name: &str, rec: &ResizeRecord) -> Result<StatefulSet> {
    let obj = recreated(&rec.statefulset, &rec.sizes);
    let api = ctx.api::<StatefulSet>();
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut backoff = Duration::from_millis(200);
    let answer = loop {
        match api.create(&PostParams::default(), &obj).await {
            Err(e) if retryable(&e) && Instant::now() < give_up => {
                tracing::debug!("creating statefulset {name} failed ({e}); retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => break other,
        }
    };
    match answer {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(s)) if s.code == 409 => api
            .get(name)
            .await
            .map_err(|e| ctx.err("get", "statefulsets", Some(name), e)),
        Err(e) => Err(Error::Aborted {
            cause: Box::new(ctx.err("create", "statefulsets", Some(name), e)),
            next: format!(
                "the StatefulSet's copy is in configmap \"{}\": re-run `kubectl sts-safe resize-pvcs {name} -n {} --resume` to create it",
                record_name(name),
                ctx.namespace
            ),
        }),
    }
}

/// Every ControllerRevision the old object owned, or that no one owns, is owned by the
/// new one (the controller adopts them before the pods, so this is normally true at
/// once); revisions another controller owns (labels shared with another StatefulSet) are
/// not ours to judge.
async fn revisions_adopted(
    ctx: &Ctx,
    sts: &StatefulSet,
    old_uid: &str,
    deadline: Instant,
) -> Result<usize> {
    let lp = ListParams::default().labels(&selector_string(sts));
    let uid = sts.uid().unwrap_or_default();
    loop {
        let revs: Vec<ControllerRevision> = ctx.list("controllerrevisions", &lp).await?;
        let owner = |r: &ControllerRevision| {
            r.owner_references()
                .iter()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone())
        };
        let ours = revs
            .iter()
            .filter(|r| owner(r).as_deref() == Some(uid.as_str()))
            .count();
        let stray: Vec<String> = revs
            .iter()
            .filter(|r| owner(r).is_none_or(|o| o == old_uid))
            .map(|r| r.name_any())
            .collect();
        if stray.is_empty() {
            return Ok(ours);
        }
        if Instant::now() >= deadline {
            return Err(Error::stopped(format!(
                "statefulset \"{}\" did not adopt its controllerrevisions {}",
                sts.name_any(),
                stray.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Gives the update strategy (the partition held during the check) back as the stored
/// object had it, guarded by the new object's spec generation.
async fn restore_strategy(
    ctx: &Ctx,
    name: &str,
    now: &StatefulSet,
    stored: &StatefulSet,
) -> Result<()> {
    let Some(want) = original_partition(stored) else {
        return Ok(());
    };
    if original_partition(now) == Some(want) {
        return Ok(());
    }
    // Only the partition this run held, on the object as created: a later edit (after
    // an interrupted run) is someone's decision, left as it is.
    let held = model::replicas(stored).max(want);
    if now.metadata.generation != Some(1) || model::partition(now) != held {
        crate::render::note(format!(
            "statefulset \"{name}\" was changed after it was created again (partition {}): its update strategy is left as it is (it was {want} before the resize)",
            model::partition(now)
        ));
        return Ok(());
    }
    let strategy = serde_json::to_value(stored.spec.update_strategy.as_ref()).unwrap_or_default();
    let gen = now.metadata.generation.unwrap_or(0);
    let ops = serde_json::json!([{"op": "add", "path": "/spec/updateStrategy", "value": strategy}]);
    guarded_patch(
        ctx,
        name,
        gen,
        Some(now.clone()),
        false,
        |s| original_partition(s) == Some(want),
        |_| generation_guarded(gen, ops.clone()),
    )
    .await
    .map(|_| ())
}

/// Pod name → uid of the object's pods now.
fn pod_uids(tracker: &Tracker) -> BTreeMap<String, String> {
    tracker
        .pods()
        .values()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}
