//! The resize-pvcs engine: reads what the plan needs, grows each claim (guarded by its
//! resourceVersion, top ordinal first) and waits, watch-driven, until its capacity is
//! reached, its filesystem waits for a restart, or the resizer says it cannot; then the
//! re-create (`exec::recreate`) and, with --restart-pods, the pods restarted one at a
//! time through the Eviction API (so PodDisruptionBudgets hold).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::ResourceExt;

use super::interrupt::Interrupt;
use super::read::list_all;
use super::recreate::{drop_record, recreate, save_record};
use super::restart::restart_pods;
use super::watch::{Poll, Tracker, WaitEnd};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::recreate::{
    failure_event, growth, read_record, record_name, Growth, ResizeRecord,
};
use crate::plan::resize::{
    bytes, ClaimAction, ClaimChange, ClaimResult, RecreateResult, ResizePlan, ResizeReport,
};
use crate::render;
use crate::ui::{Line, Progress};

/// What the plan is made from.
pub struct Gathered {
    /// The live object, if it exists.
    pub live: Option<StatefulSet>,
    /// An interrupted resize's record: its ConfigMap and contents.
    pub record: Option<(ConfigMap, ResizeRecord)>,
    pub pods: Vec<Pod>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub classes: Option<Vec<StorageClass>>,
    pub quotas: Vec<ResourceQuota>,
}

impl Gathered {
    /// The object the run works from: the live one, else the stored copy.
    pub fn base(&self) -> Option<&StatefulSet> {
        self.live
            .as_ref()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .or(self.record.as_ref().map(|(_, r)| &r.statefulset))
    }
}

/// Reads the StatefulSet and any record of an interrupted resize, then (selected by the
/// object or its copy) the pods, the namespace's claims and quotas, and the
/// StorageClasses (None when they may not be read).
pub async fn gather(ctx: &Ctx, name: &str) -> Result<Gathered> {
    let sts_api = ctx.api::<StatefulSet>();
    let cm_api = ctx.api::<ConfigMap>();
    let record_cm = record_name(name);
    let (live, cm) = futures::join!(sts_api.get_opt(name), cm_api.get_opt(&record_cm));
    let live = live.map_err(|e| ctx.err("get", "statefulsets", Some(name), e))?;
    let cm = cm.map_err(|e| ctx.err("get", "configmaps", Some(&record_cm), e))?;
    let record = match cm {
        Some(cm) => {
            let rec = read_record(&cm).map_err(|why| {
                Error::stopped(format!(
                    "{why}; inspect it (kubectl get configmap {record_cm} -n {} -o yaml) and delete it if it is not a resize's",
                    ctx.namespace
                ))
            })?;
            Some((cm, rec))
        }
        None => None,
    };
    let Some(base) = live
        .as_ref()
        .or(record.as_ref().map(|(_, r)| &r.statefulset))
    else {
        // Neither: the usual "not found" (or "no such namespace").
        return Err(ctx.get_statefulset(name).await.err().unwrap_or_else(|| {
            Error::stopped(format!(
                "statefulset \"{name}\" appeared while it was read: re-run"
            ))
        }));
    };
    let sc_api: Api<StorageClass> = Api::all(ctx.client.clone());
    let lp = ListParams::default();
    let (pods, pvcs, classes, quotas) = futures::join!(
        ctx.statefulset_pods(base),
        ctx.namespace_pvcs(),
        list_all(&sc_api, &lp),
        ctx.list::<ResourceQuota>("resourcequotas", &lp),
    );
    Ok(Gathered {
        live,
        record,
        pods: pods?,
        pvcs: pvcs?,
        classes: classes.ok(),
        quotas: quotas?,
    })
}

/// The merge patch raising a claim's request, guarded by the resourceVersion read.
fn request_patch(rv: &str, size: &str) -> Patch<serde_json::Value> {
    Patch::Merge(serde_json::json!({
        "metadata": {"resourceVersion": rv},
        "spec": {"resources": {"requests": {"storage": size}}},
    }))
}

/// `--dry-run=server`: every claim patch sent with dryRun=All (the API server's
/// admission checks the class and the quota), nothing changes.
pub async fn dry_run_claims(
    ctx: &Ctx,
    plan: &ResizePlan,
    pvcs: &[PersistentVolumeClaim],
) -> Result<()> {
    let api = ctx.api::<PersistentVolumeClaim>();
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    for c in plan.claims.iter().filter(|c| c.action == ClaimAction::Grow) {
        let rv = pvcs
            .iter()
            .find(|p| p.name_any() == c.name)
            .and_then(|p| p.resource_version())
            .unwrap_or_default();
        api.patch(&c.name, &pp, &request_patch(&rv, &c.to))
            .await
            .map_err(|e| ctx.err("patch", "persistentvolumeclaims", Some(&c.name), e))?;
    }
    Ok(())
}

/// How one claim ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grown {
    Done,
    /// Its filesystem grows when the pod restarts.
    NeedsRestart,
}

/// Grows the plan's claims one at a time, top ordinal first; stops at the first that
/// fails (exit 3, the resizer's message), times out, or on Ctrl-C between claims.
pub async fn grow_claims(
    ctx: &Ctx,
    plan: &ResizePlan,
    tracker: &mut Tracker,
    interrupt: &mut Interrupt,
    progress: &Progress,
    timeout: Duration,
) -> Result<Vec<(String, Grown)>> {
    let mut out = vec![];
    let todo: Vec<&ClaimChange> = plan.to_grow().collect();
    for (i, c) in todo.iter().enumerate() {
        if interrupt.is_set() {
            return Err(Error::Interrupted(format!(
                "stopped between claims ({i} of {} grown)",
                todo.len()
            )));
        }
        ctx.report_step(i + 1, todo.len() + 1);
        let line = progress.line(c.name.clone());
        let grown = grow_one(ctx, c, tracker, interrupt, &line, timeout).await?;
        out.push((c.name.clone(), grown));
    }
    Ok(out)
}

async fn grow_one(
    ctx: &Ctx,
    c: &ClaimChange,
    tracker: &mut Tracker,
    interrupt: &mut Interrupt,
    line: &Line,
    timeout: Duration,
) -> Result<Grown> {
    let api = ctx.api::<PersistentVolumeClaim>();
    let to = bytes(&c.to);
    // The watch's copy saves a GET per claim; a stale one costs a 409 and a re-read.
    let mut pvc = match tracker.claim(&c.name) {
        Some(p) => p,
        None => api
            .get(&c.name)
            .await
            .map_err(|e| ctx.err("get", "persistentvolumeclaims", Some(&c.name), e))?,
    };
    let uid = pvc.uid().unwrap_or_default();
    // Failure Events already there (an earlier attempt) are not this attempt's.
    let seen: Vec<(String, i32)> = tracker
        .claim_events(&uid)
        .iter()
        .map(|e| (e.name_any(), e.count.unwrap_or(1)))
        .collect();
    let mut conflicts = 0;
    while crate::plan::resize::requested(&pvc) < to {
        ctx.may_write()?;
        let rv = pvc.resource_version().unwrap_or_default();
        match api
            .patch(&c.name, &PatchParams::default(), &request_patch(&rv, &c.to))
            .await
        {
            Ok(p) => pvc = p,
            Err(kube::Error::Api(s)) if s.code == 409 && conflicts < 5 => {
                // A status write (the resizer, the binder) in between: read it again.
                conflicts += 1;
                pvc = api
                    .get(&c.name)
                    .await
                    .map_err(|e| ctx.err("get", "persistentvolumeclaims", Some(&c.name), e))?;
                if pvc.uid().unwrap_or_default() != uid {
                    return Err(Error::Conflict {
                        object: format!("PVC \"{}\"", c.name),
                        detail: "it was deleted and created again".into(),
                    });
                }
            }
            Err(e) => {
                return Err(ctx.err("patch", "persistentvolumeclaims", Some(&c.name), e));
            }
        }
    }
    line.set(format!("{} → {}: requested", c.from, c.to));
    let deadline = Instant::now() + timeout;
    let name = c.name.clone();
    let waited = tracker
        .wait_for(deadline, interrupt, |t| {
            let Some(pvc) = t.claim(&name).filter(|p| p.uid().as_deref() == Some(&uid)) else {
                return Poll::Done(Err(format!("PVC \"{name}\" was deleted while it grew")));
            };
            for ev in t.claim_events(&uid) {
                let before = seen.iter().find(|(n, _)| *n == ev.name_any()).map(|(_, k)| *k);
                if before.is_some_and(|k| ev.count.unwrap_or(1) <= k) {
                    continue;
                }
                if let Some(msg) = failure_event(&ev) {
                    return Poll::Done(Err(msg));
                }
            }
            let cap = model::pvc_capacity(&pvc).unwrap_or_default();
            match growth(&pvc, to) {
                Growth::Done => {
                    line.finish(format!("{} → {}: grown", c.from, cap));
                    Poll::Done(Ok(Grown::Done))
                }
                Growth::NeedsRestart => {
                    line.finish(format!(
                        "{} → {}: volume grown, filesystem waits for the pod to restart (FileSystemResizePending)",
                        c.from, c.to
                    ));
                    Poll::Done(Ok(Grown::NeedsRestart))
                }
                Growth::Failed(why) => Poll::Done(Err(why)),
                Growth::InProgress(state) => {
                    line.set(format!("{cap} → {}: {state}", c.to));
                    Poll::Pending(None)
                }
            }
        })
        .await;
    match waited {
        Ok(Ok(g)) => Ok(g),
        Ok(Err(why)) => {
            line.finish(format!("failed: {why}"));
            Err(Error::stopped(format!(
                "PVC \"{}\" did not grow: {why}; nothing else was changed (the other claims and the StatefulSet are as they were); see kubectl describe pvc {} -n {}",
                c.name, c.name, ctx.namespace
            )))
        }
        Err(WaitEnd::Interrupted) => Err(Error::Interrupted(format!(
            "stopped while PVC \"{}\" grows (the resizer finishes it by itself)",
            c.name
        ))),
        Err(WaitEnd::Timeout) => {
            let state = tracker
                .claim(&c.name)
                .map(|p| format!("{:?}", growth(&p, to)))
                .unwrap_or_default();
            Err(Error::Timeout {
                what: format!("PVC \"{}\" to reach {} ({state})", c.name, c.to),
                after: humantime::format_duration(timeout).to_string(),
            })
        }
    }
}

/// How the run goes.
pub struct ResizeOptions {
    pub timeout: Duration,
    pub restart_pods: bool,
    pub include_orphans: bool,
}

/// Grows the claims, re-creates the StatefulSet, restarts what must be (with
/// --restart-pods) and prints the report; the exit code.
pub async fn execute(
    ctx: &Ctx,
    g: Gathered,
    sizes: BTreeMap<String, String>,
    plan: ResizePlan,
    opts: &ResizeOptions,
) -> Result<i32> {
    let started = Instant::now();
    let name = plan.statefulset.clone();
    let base = g
        .base()
        .cloned()
        .expect("gather returns an object or its copy");
    let mut interrupt = Interrupt::install();
    let mut tracker = Tracker::start_with_claims(ctx, &base).await?;
    let progress = Progress::new(ctx);
    let (record_cm, rec) = match g.record {
        Some((cm, rec)) => (Some(cm), rec),
        None => (
            None,
            ResizeRecord {
                statefulset: base.clone(),
                sizes,
                include_orphans: opts.include_orphans,
                restart_pods: opts.restart_pods,
                pods: Default::default(),
            },
        ),
    };
    let old_uid = rec.statefulset.uid().unwrap_or_default();
    // The spec the plan was made from, when the object is the one on record.
    let planned_generation = g
        .live
        .as_ref()
        .filter(|l| l.uid().as_deref() == Some(old_uid.as_str()))
        .and_then(|l| l.metadata.generation);
    // The record first: from here on, an interrupted run is found by the next one.
    let created_here = record_cm.is_none() && plan.recreate.needed;
    let record_cm = match record_cm {
        None if plan.recreate.needed => Some(save_record(ctx, &name, &rec, None).await?),
        other => other,
    };
    // With the object gone (an interrupted run), creating it again comes first.
    let object_gone = g
        .live
        .as_ref()
        .is_none_or(|l| l.metadata.deletion_timestamp.is_some());
    let mut pending = Some((record_cm.clone(), rec));
    let mut recreated = None;
    if object_gone {
        let (cm, rec) = pending.take().expect("once");
        let r = recreate_step(
            ctx,
            &name,
            cm,
            rec,
            None,
            &mut tracker,
            &mut interrupt,
            &progress,
            opts,
        )
        .await?;
        recreated = Some(r);
    }
    let growing = grow_claims(
        ctx,
        &plan,
        &mut tracker,
        &mut interrupt,
        &progress,
        opts.timeout,
    );
    let grown = match growing.await {
        Ok(g) => g,
        Err(e) => {
            // A claim that cannot grow stops the run before the StatefulSet is touched:
            // nothing is left to resume (an interrupted run keeps its record for --resume).
            let interrupted = matches!(e, Error::Interrupted(_));
            if let (true, false, Some(cm)) = (created_here, interrupted, &record_cm) {
                let _ = drop_record(ctx, cm).await;
            }
            return Err(e);
        }
    };
    if plan.recreate.needed && pending.is_some() {
        if interrupt.is_set() {
            return Err(Error::Interrupted(
                "stopped after the claims grew, before the StatefulSet was re-created".into(),
            ));
        }
        ctx.report_step(plan.to_grow().count() + 1, plan.to_grow().count() + 1);
        let (cm, rec) = pending.take().expect("once");
        let r = recreate_step(
            ctx,
            &name,
            cm,
            rec,
            planned_generation,
            &mut tracker,
            &mut interrupt,
            &progress,
            opts,
        )
        .await?;
        recreated = Some(r);
    }
    // Pods whose claims wait for a restart, top ordinal first.
    let waiting: BTreeSet<&str> = plan
        .claims
        .iter()
        .filter(|c| {
            c.action == ClaimAction::Restart
                || grown
                    .iter()
                    .any(|(n, g)| *n == c.name && *g == Grown::NeedsRestart)
        })
        .map(|c| c.name.as_str())
        .collect();
    let mut by_pod: Vec<(String, Vec<(String, String)>)> = vec![];
    for c in plan
        .claims
        .iter()
        .filter(|c| waiting.contains(c.name.as_str()))
    {
        let Some(pod) = c.pod.clone() else { continue };
        match by_pod.iter_mut().find(|(p, _)| *p == pod) {
            Some((_, list)) => list.push((c.name.clone(), c.to.clone())),
            None => by_pod.push((pod, vec![(c.name.clone(), c.to.clone())])),
        }
    }
    let restarted = if opts.restart_pods && !by_pod.is_empty() {
        restart_pods(
            ctx,
            &by_pod,
            &mut tracker,
            &mut interrupt,
            &progress,
            opts.timeout,
        )
        .await?
    } else {
        vec![]
    };
    let restart_needed: Vec<String> = by_pod
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| !restarted.contains(p))
        .collect();
    let claims = plan
        .claims
        .iter()
        .map(|c| {
            let now = tracker.claim(&c.name);
            let outcome = match (c.action, now.as_ref().map(|p| growth(p, bytes(&c.to)))) {
                (ClaimAction::Skip, _) => "skipped",
                (_, Some(Growth::Done)) if c.action == ClaimAction::Done => "already",
                (_, Some(Growth::Done)) => "grown",
                (_, Some(Growth::NeedsRestart)) => "waits-for-restart",
                _ => "unknown",
            };
            ClaimResult {
                name: c.name.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
                capacity: now.as_ref().and_then(model::pvc_capacity),
                expansion: c.expansion.clone(),
                outcome: outcome.into(),
                pod_restarted: c.pod.as_ref().is_some_and(|p| restarted.contains(p)),
            }
        })
        .collect();
    let recreate = recreated.map(|r| RecreateResult {
        old_uid,
        new_uid: r.new_uid,
        update_revision: r.update_revision,
        pods_adopted: r.pods_adopted,
        revisions_adopted: r.revisions_adopted,
        pods_replaced: r.pods_replaced,
    });
    let seconds = started.elapsed().as_secs_f64();
    let report = ResizeReport::new(
        &plan,
        claims,
        recreate,
        restart_needed,
        seconds,
        ctx.lock_holder(),
    );
    render::show(ctx.output, &report)?;
    Ok(0)
}

/// The re-create (`exec::recreate`), with its progress lines.
#[allow(clippy::too_many_arguments)]
async fn recreate_step(
    ctx: &Ctx,
    name: &str,
    record_cm: Option<ConfigMap>,
    rec: ResizeRecord,
    planned_generation: Option<i64>,
    tracker: &mut Tracker,
    interrupt: &mut Interrupt,
    progress: &Progress,
    opts: &ResizeOptions,
) -> Result<super::recreate::Recreated> {
    progress.println(format!(
        "re-creating statefulset \"{name}\" with the new claim templates (propagationPolicy=Orphan)"
    ));
    let r = recreate(
        ctx,
        name,
        record_cm,
        rec,
        planned_generation,
        tracker,
        interrupt,
        opts.timeout,
    )
    .await?;
    progress.println(format!(
        "statefulset \"{name}\" re-created: {} pods and {} controllerrevisions adopted, update revision {}",
        r.pods_adopted,
        r.revisions_adopted,
        r.update_revision.as_deref().unwrap_or("?")
    ));
    Ok(r)
}
