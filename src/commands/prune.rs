//! `kubectl sts-safe prune-pvcs [STS]`: list → plan (`plan::prune`) → show → confirm
//! each group → the engine (`exec::prune`) → report. The rules are documented in
//! `plan::prune`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use crate::cli::{DryRun, PruneArgs};
use crate::context::Ctx;
use crate::error::{exit, Error, Result};
use crate::exec::prune::{self as engine, PruneRun};
use crate::exec::read::{list_all, ALL_NAMESPACES};
use crate::exec::{access, lease};
use crate::plan::prune::{
    self, exit_code, question, summarize, PruneInputs, PrunePlan, PruneReport, Scope,
};
use crate::render::{self, Output, Report};
use crate::ui;

/// PersistentVolumes, or None when this identity may not list them.
async fn list_pvs(ctx: &Ctx) -> Result<Option<Vec<PersistentVolume>>> {
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match list_all(&api, &ListParams::default()).await {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(ctx.err_in("list", "persistentvolumes", None, ALL_NAMESPACES, e)),
    }
}

async fn collect(ctx: &Ctx, args: &PruneArgs) -> Result<PruneInputs> {
    let all = args.all_namespaces;
    let every = ListParams::default();
    let pvc_params = match &args.selector {
        Some(s) => ListParams::default().labels(s),
        None => ListParams::default(),
    };
    let (statefulsets, pods, pvcs, pvs) = futures::try_join!(
        ctx.list_scoped::<StatefulSet>(all, "statefulsets", &every),
        ctx.list_scoped::<Pod>(all, "pods", &every),
        ctx.list_scoped::<PersistentVolumeClaim>(all, "persistentvolumeclaims", &pvc_params),
        list_pvs(ctx),
    )?;
    Ok(PruneInputs {
        statefulsets,
        pods,
        pvcs,
        pvs,
    })
}

async fn scope(ctx: &Ctx, args: &PruneArgs) -> Result<Scope> {
    if args.all_namespaces && args.name.is_some() {
        return Err(Error::usage(
            "a StatefulSet name cannot be combined with -A/--all-namespaces: give -n NAMESPACE instead",
        ));
    }
    let statefulset_exists = match &args.name {
        None => true,
        Some(n) => match ctx.get_statefulset(n).await {
            Ok(_) => true,
            Err(Error::NotFound { .. }) if args.include_deleted => false,
            Err(e) => return Err(e),
        },
    };
    Ok(Scope {
        namespace: (!args.all_namespaces).then(|| ctx.namespace.clone()),
        statefulset: args.name.clone(),
        statefulset_exists,
        include_deleted: args.include_deleted,
        include_scaled_to_zero: args.include_scaled_to_zero,
        older_than: args.older_than,
    })
}

/// Asks one yes/no question: Ok(false) when the operator answers no; the refusal
/// without a terminal (and without --yes) is an error, before anything is written.
fn ask(ctx: &Ctx, yes: bool, q: &str) -> Result<bool> {
    match ui::confirm(ctx, yes, q) {
        Ok(()) => Ok(true),
        Err(Error::Declined(_)) if ctx.interactive => Ok(false),
        Err(e) => Err(e),
    }
}

fn check_selector(args: &PruneArgs) -> Result<()> {
    match args.selector.as_deref() {
        Some(s) if s.trim().is_empty() => Err(Error::usage("-l/--selector is empty")),
        _ => Ok(()),
    }
}

/// Confirms each non-empty group; Ok((main, gone)).
fn confirm_groups(ctx: &Ctx, yes: bool, plan: &PrunePlan) -> Result<(bool, bool)> {
    let main = !plan.pvcs.is_empty() && ask(ctx, yes, &question("", &plan.total, &plan.pvcs))?;
    let gone = !plan.gone.is_empty()
        && ask(
            ctx,
            yes,
            &question("\"StatefulSet gone\" ", &plan.gone_total, &plan.gone),
        )?;
    if !main && !gone {
        return Err(Error::Declined("not confirmed; nothing was changed".into()));
    }
    Ok((main, gone))
}

fn finish(ctx: &Ctx, plan: PrunePlan, run: PruneRun, dry_run: bool) -> Result<i32> {
    let summary = summarize(&run.outcomes);
    let code = exit_code(&run.outcomes);
    let report = PruneReport::new(plan, run.outcomes, summary, dry_run);
    render::show(ctx.output, &report)?;
    if let Some(e) = run.error {
        return Err(e);
    }
    if run.interrupted {
        return Err(Error::Interrupted(format!(
            "stopped after deleting {} PVC(s); the others were not touched",
            report.summary.deleted
        )));
    }
    if code != exit::OK {
        render::note(
            "some planned PVCs were not deleted (reasons above); re-run to see the new state",
        );
    }
    Ok(code)
}

pub async fn run(ctx: &Ctx, args: &PruneArgs) -> Result<i32> {
    check_selector(args)?;
    let scope = scope(ctx, args).await?;
    let inputs = collect(ctx, args).await?;
    if scope.namespace.is_some()
        && inputs.statefulsets.is_empty()
        && inputs.pvcs.is_empty()
        && !ctx.namespace_exists().await
    {
        return Err(Error::NamespaceNotFound {
            namespace: ctx.namespace.clone(),
            context: ctx.target.context.clone(),
        });
    }
    let plan = prune::plan(&inputs, &scope, Timestamp::now());
    let dry = args.mutate.dry_run;
    let nothing = plan.pvcs.is_empty() && plan.gone.is_empty();
    if dry == DryRun::Client || (nothing && ctx.output == Output::Text) {
        render::show(ctx.output, &plan)?;
        return Ok(exit::OK);
    }
    if ctx.output == Output::Text {
        render::show(Output::Text, &plan)?;
    }
    let groups = if dry == DryRun::Server || nothing {
        (true, true)
    } else {
        // Before the question: a run that may not hold or delete claims stops here, not
        // half-way. With -A the rights may differ per namespace; each write says so.
        if scope.namespace.is_some() {
            access::require(ctx, access::PRUNE).await?;
        }
        if ctx.output != Output::Text && ctx.interactive && !args.mutate.yes {
            render::note(plan.text());
        }
        confirm_groups(ctx, args.mutate.yes, &plan)?
    };
    let locking = match dry {
        DryRun::Server => None,
        _ => Some(engine::Locking {
            op: lease::operation(ctx).await,
            break_lock: args.mutate.break_lock,
            yes: args.mutate.yes,
        }),
    };
    let run = engine::execute(ctx, &inputs, &plan, &scope, groups, locking.as_ref()).await;
    finish(ctx, plan, run, dry == DryRun::Server)
}
