//! The prune engine: each confirmed PVC, highest ordinal first, is judged again right
//! before its delete (fresh GET/list), held by a finalizer under the plan's
//! resourceVersion, marked for deletion under uid/resourceVersion preconditions, judged
//! once more, and only then let go (the four steps of `plan::prune`). Ctrl-C or SIGTERM
//! stops between claims.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::ResourceExt;

use super::interrupt::Interrupt;
use super::lease::{self, LeaseGuard};
use super::read::list_all;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::plan::lease::Operation;
use crate::plan::orphan::OrphanRules;
use crate::plan::prune::{
    deletion_order, finalizers_with_hold, has_hold, recheck_gone, recheck_orphan, unmarked, Group,
    Outcome, PlanEntry, PruneInputs, PrunePlan, Scope, Status, HOLD,
};
use crate::render::prune::result_line;
use crate::render::{self, Output};

/// Per-PVC re-check: re-reads the StatefulSet (GET) or, for the gone group, the
/// namespace's StatefulSets, and the namespace's pods, both at once (the closer the reads
/// are to the mark, the narrower the window a scale-up can race).
async fn recheck(
    ctx: &Ctx,
    group: Group,
    e: &PlanEntry,
    pvc: &PersistentVolumeClaim,
    opts: OrphanRules,
) -> Result<Option<String>> {
    let ns = e.namespace.as_str();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pods = async {
        list_all(&pods_api, &ListParams::default())
            .await
            .map_err(|err| ctx.err_in("list", "pods", None, ns, err))
    };
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    match group {
        Group::Orphan => {
            let name = e.statefulset.as_deref().unwrap_or_default();
            let sts = async {
                sts_api
                    .get_opt(name)
                    .await
                    .map_err(|err| ctx.err_in("get", "statefulsets", Some(name), ns, err))
            };
            let (pods, sts) = futures::try_join!(pods, sts)?;
            Ok(recheck_orphan(e, sts.as_ref(), pvc, &pods, opts))
        }
        Group::Gone => {
            let sets = async {
                list_all(&sts_api, &ListParams::default())
                    .await
                    .map_err(|err| ctx.err_in("list", "statefulsets", None, ns, err))
            };
            let (pods, sets) = futures::try_join!(pods, sets)?;
            Ok(recheck_gone(&sets, pvc, &pods))
        }
    }
}

const CHANGED: &str =
    "changed or recreated since the plan (uid/resourceVersion precondition failed)";

/// The outcome of one write: done, or a reason to skip the claim (409, 404).
enum Answer<T> {
    Done(T),
    Skip(String),
}

/// 409 and 404 skip the claim; anything else is an error naming it.
fn answer<T>(ctx: &Ctx, e: &PlanEntry, verb: &str, r: kube::Result<T>) -> Result<Answer<T>> {
    match r {
        Ok(v) => Ok(Answer::Done(v)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Answer::Skip(CHANGED.into())),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Answer::Skip("already gone".into())),
        Err(err) => Err(ctx.err_in(
            verb,
            "persistentvolumeclaims",
            Some(&e.name),
            &e.namespace,
            err,
        )),
    }
}

/// A merge patch of the finalizers, guarded by the resourceVersion it was computed from.
fn finalizers_patch(pvc: &PersistentVolumeClaim, hold: bool) -> Patch<serde_json::Value> {
    Patch::Merge(serde_json::json!({"metadata": {
        "resourceVersion": pvc.resource_version(),
        "finalizers": finalizers_with_hold(pvc, hold),
    }}))
}

/// (1) Adds the hold under the plan's resourceVersion.
async fn hold(
    ctx: &Ctx,
    api: &Api<PersistentVolumeClaim>,
    e: &PlanEntry,
    pvc: &PersistentVolumeClaim,
) -> Result<Answer<PersistentVolumeClaim>> {
    ctx.may_write()?;
    let r = api
        .patch(
            &e.name,
            &PatchParams::default(),
            &finalizers_patch(pvc, true),
        )
        .await;
    answer(ctx, e, "patch", r)
}

/// (2) Marks the claim for deletion under uid and resourceVersion preconditions; the
/// marked claim, or None when it went at once (no finalizer left).
async fn mark(
    ctx: &Ctx,
    api: &Api<PersistentVolumeClaim>,
    e: &PlanEntry,
    held: &PersistentVolumeClaim,
    dry_run: bool,
) -> Result<Answer<Option<PersistentVolumeClaim>>> {
    let dp = DeleteParams {
        dry_run,
        preconditions: Some(Preconditions {
            uid: held.metadata.uid.clone(),
            resource_version: held.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    if !dry_run {
        ctx.may_write()?;
    }
    let r = api.delete(&e.name, &dp).await.map(|r| r.left());
    answer(ctx, e, "delete", r)
}

/// (4) Removes the hold (only ours), re-reading the claim when another finalizer changed
/// it in between. Ok once the hold is gone or the claim is.
async fn release(
    ctx: &Ctx,
    api: &Api<PersistentVolumeClaim>,
    e: &PlanEntry,
    mut cur: PersistentVolumeClaim,
) -> Result<()> {
    for _ in 0..10 {
        if !has_hold(&cur) {
            return Ok(());
        }
        ctx.may_write()?;
        let r = api
            .patch(
                &e.name,
                &PatchParams::default(),
                &finalizers_patch(&cur, false),
            )
            .await;
        match r {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(err) => {
                return Err(ctx.err_in(
                    "patch",
                    "persistentvolumeclaims",
                    Some(&e.name),
                    &e.namespace,
                    err,
                ))
            }
        }
        match api.get_opt(&e.name).await {
            Ok(Some(p)) => cur = p,
            Ok(None) => return Ok(()),
            Err(err) => {
                return Err(ctx.err_in(
                    "get",
                    "persistentvolumeclaims",
                    Some(&e.name),
                    &e.namespace,
                    err,
                ))
            }
        }
    }
    Err(Error::Stopped(format!(
        "PVC \"{}\" kept changing while its finalizer {HOLD} was being removed; \
         re-run prune-pvcs to finish",
        e.name
    )))
}

/// Judges, marks and finishes one claim (see `plan::prune`, "Deleting").
async fn prune_one(
    ctx: &Ctx,
    group: Group,
    e: &PlanEntry,
    listed: &PersistentVolumeClaim,
    opts: OrphanRules,
    dry_run: bool,
) -> Result<(Status, Option<String>)> {
    let pvc = unmarked(listed);
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &e.namespace);
    if dry_run {
        if let Some(why) = recheck(ctx, group, e, &pvc, opts).await? {
            return Ok((Status::Skipped, Some(why)));
        }
        return Ok(match mark(ctx, &api, e, listed, true).await? {
            Answer::Done(_) => (Status::Validated, None),
            Answer::Skip(why) => (Status::Skipped, Some(why)),
        });
    }
    // A claim an earlier run held and marked resumes at (3).
    let marked = if e.held {
        listed.clone()
    } else {
        // The hold comes before the re-check, so that only the delete itself stands
        // between the last read of the StatefulSet and the mark.
        let held = match hold(ctx, &api, e, listed).await? {
            Answer::Done(p) => p,
            Answer::Skip(why) => {
                // Changed since the plan (often by the controller, after a scale-up): the
                // re-check usually says why in better words.
                let better = recheck(ctx, group, e, &pvc, opts).await?;
                return Ok((Status::Skipped, Some(better.unwrap_or(why))));
            }
        };
        if let Some(why) = recheck(ctx, group, e, &pvc, opts).await? {
            release(ctx, &api, e, held).await?;
            return Ok((Status::Skipped, Some(why)));
        }
        let marked = match mark(ctx, &api, e, &held, false).await {
            Ok(m) => m,
            Err(err) => {
                // Keep no hold on a claim this run could not delete.
                let _ = release(ctx, &api, e, held).await;
                return Err(err);
            }
        };
        match marked {
            Answer::Done(Some(marked)) => marked,
            Answer::Done(None) => return Ok((Status::Deleted, None)),
            Answer::Skip(why) => {
                // Changed between the hold and the mark: take the hold back, keep the claim.
                release(ctx, &api, e, held).await?;
                return Ok((Status::Skipped, Some(why)));
            }
        }
    };
    // (3) Final: from the mark on, no new pod can claim it.
    if let Some(why) = recheck(ctx, group, e, &pvc, opts).await? {
        return Ok((
            Status::Held,
            Some(format!(
                "{why}, around its delete: the finalizer {HOLD} keeps the claim and \
                 its volume (README: \"A prune that raced a scale-up\")"
            )),
        ));
    }
    release(ctx, &api, e, marked).await?;
    Ok((Status::Deleted, None))
}

pub struct PruneRun {
    pub outcomes: Vec<Outcome>,
    pub error: Option<Error>,
    pub interrupted: bool,
    all_namespaces: bool,
    text: bool,
}

impl PruneRun {
    fn record(&mut self, group: Group, e: &PlanEntry, result: Status, reason: Option<String>) {
        let o = Outcome {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
            group,
            result,
            reason,
            capacity: e.capacity.clone(),
        };
        if self.text {
            let _ = render::print_stdout(&(result_line(&o, self.all_namespaces) + "\n"));
        }
        self.outcomes.push(o);
    }

    /// Why the next PVC must not be attempted: an earlier error, or Ctrl-C / SIGTERM.
    fn stop_reason(&mut self, interrupt: &Interrupt) -> Option<&'static str> {
        if self.error.is_some() {
            return Some("not attempted after an error");
        }
        if interrupt.is_set() {
            self.interrupted = true;
            return Some("not attempted: interrupted");
        }
        None
    }
}

/// How the engine takes each StatefulSet's lock (None: a server dry run, no lock).
pub struct Locking {
    pub op: Operation,
    pub break_lock: bool,
    pub yes: bool,
}

/// The lock of the StatefulSet whose claims are being deleted: Ok(guard) or why its
/// claims are skipped.
type Held = ((String, String), std::result::Result<LeaseGuard, String>);

/// Deletes the confirmed groups one PVC at a time, each StatefulSet's claims under its
/// lock (the "StatefulSet gone" group has no StatefulSet to lock); never returns early so
/// that the report always covers every planned PVC.
pub async fn execute(
    ctx: &Ctx,
    inp: &PruneInputs,
    plan: &PrunePlan,
    scope: &Scope,
    groups: (bool, bool),
    locking: Option<&Locking>,
) -> PruneRun {
    let dry_run = locking.is_none();
    let pvcs: HashMap<(String, String), &PersistentVolumeClaim> = inp
        .pvcs
        .iter()
        .map(|p| ((p.namespace().unwrap_or_default(), p.name_any()), p))
        .collect();
    let mut run = PruneRun {
        outcomes: vec![],
        error: None,
        interrupted: false,
        all_namespaces: plan.namespace.is_none(),
        text: ctx.output == Output::Text,
    };
    let interrupt = Interrupt::install_with_abort(
        "stopping after the current PVC (press Ctrl-C again to abort at once)",
    );
    let mut held: Option<Held> = None;
    for (group, e) in deletion_order(plan, true, true) {
        let confirmed = match group {
            Group::Orphan => groups.0,
            Group::Gone => groups.1,
        };
        if !confirmed {
            run.record(group, e, Status::NotAttempted, Some("not confirmed".into()));
            continue;
        }
        if let Some(why) = run.stop_reason(&interrupt) {
            run.record(group, e, Status::NotAttempted, Some(why.into()));
            continue;
        }
        let Some(pvc) = pvcs.get(&(e.namespace.clone(), e.name.clone())) else {
            run.record(
                group,
                e,
                Status::Skipped,
                Some("not in the listed PVCs".into()),
            );
            continue;
        };
        let owner = (group == Group::Orphan).then(|| {
            (
                e.namespace.clone(),
                e.statefulset.clone().unwrap_or_default(),
            )
        });
        if held.as_ref().map(|h| &h.0) != owner.as_ref() {
            if let Some((_, Ok(guard))) = held.take() {
                guard.release(ctx).await;
            }
            if let (Some(key), Some(l)) = (owner, locking) {
                let taken =
                    match lease::take(ctx, &key.0, &key.1, l.op.clone(), l.break_lock, l.yes).await
                    {
                        Ok(g) => Ok(g),
                        Err(err) => Err(err.to_string()),
                    };
                held = Some((key, taken));
            }
        }
        if let Some((_, Err(why))) = &held {
            run.record(group, e, Status::Skipped, Some(why.clone()));
            continue;
        }
        match prune_one(ctx, group, e, pvc, scope.options(), dry_run).await {
            Ok((status, reason)) => run.record(group, e, status, reason),
            Err(err) => {
                run.record(group, e, Status::Failed, Some(err.to_string()));
                run.error = Some(err);
            }
        }
    }
    if let Some((_, Ok(guard))) = held {
        guard.release(ctx).await;
    }
    run
}
