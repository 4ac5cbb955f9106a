//! The prune engine: each confirmed PVC, highest ordinal first, is judged again right
//! before its delete (fresh GET/list), then deleted under the plan's uid and
//! resourceVersion preconditions. Ctrl-C or SIGTERM stops between deletions.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::ResourceExt;

use super::interrupt::Interrupt;
use super::read::list_all;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::plan::orphan::OrphanRules;
use crate::plan::prune::{
    deletion_order, recheck_gone, recheck_orphan, Group, Outcome, PlanEntry, PruneInputs,
    PrunePlan, Scope, Status,
};
use crate::render::prune::result_line;
use crate::render::{self, Output};

/// Per-PVC re-check: re-reads the StatefulSet (GET) or, for the gone group, the
/// namespace's StatefulSets, and the namespace's pods.
async fn recheck(
    ctx: &Ctx,
    group: Group,
    e: &PlanEntry,
    pvc: &PersistentVolumeClaim,
    opts: OrphanRules,
) -> Result<Option<String>> {
    let ns = e.namespace.as_str();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pods = list_all(&pods_api, &ListParams::default())
        .await
        .map_err(|err| ctx.err_in("list", "pods", None, ns, err))?;
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    match group {
        Group::Orphan => {
            let name = e.statefulset.as_deref().unwrap_or_default();
            let sts = sts_api
                .get_opt(name)
                .await
                .map_err(|err| ctx.err_in("get", "statefulsets", Some(name), ns, err))?;
            Ok(recheck_orphan(e, sts.as_ref(), pvc, &pods, opts))
        }
        Group::Gone => {
            let sets = list_all(&sts_api, &ListParams::default())
                .await
                .map_err(|err| ctx.err_in("list", "statefulsets", None, ns, err))?;
            Ok(recheck_gone(&sets, pvc, &pods))
        }
    }
}

/// Deletes (or, with `dry_run`, validates) one PVC under the plan's preconditions.
/// Ok((Skipped, reason)) for a failed precondition or a PVC already gone.
async fn delete(ctx: &Ctx, e: &PlanEntry, dry_run: bool) -> Result<(Status, Option<String>)> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &e.namespace);
    let dp = DeleteParams {
        dry_run,
        preconditions: Some(Preconditions {
            uid: e.uid.clone(),
            resource_version: e.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&e.name, &dp).await {
        Ok(_) if dry_run => Ok((Status::Validated, None)),
        Ok(_) => Ok((Status::Deleted, None)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok((
            Status::Skipped,
            Some(
                "changed or recreated since the plan (uid/resourceVersion precondition failed)"
                    .into(),
            ),
        )),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            Ok((Status::Skipped, Some("already gone".into())))
        }
        Err(err) => Err(ctx.err_in(
            "delete",
            "persistentvolumeclaims",
            Some(&e.name),
            &e.namespace,
            err,
        )),
    }
}

async fn prune_one(
    ctx: &Ctx,
    group: Group,
    e: &PlanEntry,
    pvc: &PersistentVolumeClaim,
    opts: OrphanRules,
    dry_run: bool,
) -> Result<(Status, Option<String>)> {
    if let Some(why) = recheck(ctx, group, e, pvc, opts).await? {
        return Ok((Status::Skipped, Some(why)));
    }
    delete(ctx, e, dry_run).await
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

/// Deletes the confirmed groups one PVC at a time; never returns early so that the
/// report always covers every planned PVC.
pub async fn execute(
    ctx: &Ctx,
    inp: &PruneInputs,
    plan: &PrunePlan,
    scope: &Scope,
    groups: (bool, bool),
    dry_run: bool,
) -> PruneRun {
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
        match prune_one(ctx, group, e, pvc, scope.options(), dry_run).await {
            Ok((status, reason)) => run.record(group, e, status, reason),
            Err(err) => {
                run.record(group, e, Status::Failed, Some(err.to_string()));
                run.error = Some(err);
            }
        }
    }
    run
}
