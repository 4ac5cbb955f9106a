//! `kubectl sts-safe resize-pvcs STS --size [TEMPLATE=]SIZE`: gather (the object, or the
//! copy an interrupted run kept) → preflight and plan → confirm → the engine
//! (`exec::resize`), under the StatefulSet's lock.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::cli::{DryRun, ResizeArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exec::resize::{self as engine, ResizeOptions};
use crate::exec::{access, lease, recreate};
use crate::plan::owners;
use crate::plan::recreate::{record_name, ResizeRecord};
use crate::plan::resize::{self, bytes, ResizeInputs};
use crate::render::{self, Output};
use crate::ui;

pub async fn run(ctx: &Ctx, args: &ResizeArgs) -> Result<i32> {
    let dry_run = args.mutate.dry_run;
    if dry_run == DryRun::None && !args.mutate.yes && !ctx.interactive {
        return Err(Error::Declined(
            "no terminal to confirm the resize: re-run with --yes (or --dry-run)".into(),
        ));
    }
    let name = args.name.clone();
    let g = engine::gather(ctx, &name).await?;
    let Some(base) = g.base().cloned() else {
        return Err(Error::stopped(format!(
            "statefulset \"{name}\" is being deleted and no resize of it is on record: let the delete finish (or create it again), then resize it"
        )));
    };
    let record = g.record.as_ref().map(|(_, r)| r);
    let sizes = match record {
        None if args.resume => {
            return Err(Error::stopped(format!(
                "no interrupted resize of statefulset \"{name}\" is on record (configmap \"{}\"): nothing to resume; start one with --size",
                record_name(&name)
            )))
        }
        None => resize::resolve_sizes(&base, &args.sizes)?,
        Some(rec) if args.sizes.is_empty() => rec.sizes.clone(),
        Some(rec) => {
            let asked = resize::resolve_sizes(&base, &args.sizes)?;
            if !same_sizes(&asked, &rec.sizes) {
                return Err(Error::stopped(format!(
                    "an interrupted resize of statefulset \"{name}\" to {} is on record (configmap \"{}\"): finish it first with `kubectl sts-safe resize-pvcs {name} -n {} --resume`",
                    describe(&rec.sizes),
                    record_name(&name),
                    ctx.namespace
                )));
            }
            asked
        }
    };
    let explicit_orphans = args.include_orphans || args.no_include_orphans;
    let include_orphans = match record {
        Some(rec) if !explicit_orphans => rec.include_orphans,
        _ => args.include_orphans(),
    };
    let restart_pods = args.restart_pods || record.is_some_and(|r| r.restart_pods);
    super::refuse_owned(&base, &args.owner)?;
    if dry_run == DryRun::None {
        access::require(ctx, access::RESIZE).await?;
        if restart_pods {
            access::require(ctx, access::EVICT).await?;
        }
        lease::refuse_if_held(ctx, &ctx.namespace, &name, args.mutate.break_lock).await?;
    }
    let sts_exists = g
        .live
        .as_ref()
        .is_some_and(|s| s.metadata.deletion_timestamp.is_none());
    let resuming = record.is_some();
    // The object on record not deleted yet: it is about to be, so it must be as healthy
    // as for a fresh run (an edit since the interruption may have started a rollout).
    let not_deleted_yet =
        record.is_none_or(|r| g.live.as_ref().and_then(|l| l.uid()) == r.statefulset.uid());
    if sts_exists && not_deleted_yet {
        if let Some(why) = resize::health_stop(&base, &g.pods) {
            return Err(Error::stopped(why));
        }
    }
    let record_cm = record_name(&name);
    let inputs = ResizeInputs {
        sts: &base,
        pods: &g.pods,
        pvcs: &g.pvcs,
        classes: g.classes.as_deref(),
        quotas: &g.quotas,
        sizes: &sizes,
        include_orphans,
        restart_pods,
        namespace: &ctx.namespace,
        resuming,
        sts_exists,
        record: &record_cm,
    };
    let mut plan = resize::plan(&inputs)?;
    plan.warnings
        .extend(owners::gitops_warning(&base, "the claim templates"));
    if plan.is_noop() {
        if ctx.output != Output::Text {
            render::show(ctx.output, &plan)?;
        }
        render::note(format!(
            "statefulset \"{name}\": {} already at {}: nothing to resize",
            if plan.claims.is_empty() {
                "the templates are"
            } else {
                "every claim and template is"
            },
            describe(&sizes)
        ));
        return Ok(0);
    }
    if ctx.output == Output::Text || dry_run != DryRun::None {
        render::show(ctx.output, &plan)?;
    }
    match dry_run {
        DryRun::Client => return Ok(0),
        DryRun::Server => {
            engine::dry_run_claims(ctx, &plan, &g.pvcs).await?;
            if let Some(live) = g
                .live
                .as_ref()
                .filter(|_| plan.recreate.needed && sts_exists)
            {
                let rec = ResizeRecord {
                    statefulset: live.clone(),
                    sizes: sizes.clone(),
                    include_orphans,
                    restart_pods,
                    pods: Default::default(),
                };
                recreate::dry_run_create(ctx, &name, &rec).await?;
                recreate::dry_run_delete(ctx, live).await?;
            }
            return Ok(super::server_accepted(
                "every claim patch, the delete and the create",
            ));
        }
        DryRun::None => {}
    }
    let grow = plan.to_grow().count();
    let question = format!(
        "Grow {grow} PVC(s) of statefulset \"{name}\" to {}{}?",
        describe(&sizes),
        if plan.recreate.needed {
            " and re-create the StatefulSet object (pods keep running)"
        } else {
            ""
        }
    );
    ui::confirm(ctx, args.mutate.yes, &question)?;
    // The same command finishes it whatever state it stopped in (--resume needs the
    // record, which is gone once the object is whole again).
    let next = format!(
        "re-run `kubectl sts-safe resize-pvcs {name} -n {} --size {}{}{}` to finish it",
        ctx.namespace,
        sizes
            .iter()
            .map(|(t, s)| format!("{t}={s}"))
            .collect::<Vec<_>>()
            .join(" --size "),
        if restart_pods { " --restart-pods" } else { "" },
        if include_orphans {
            ""
        } else {
            " --no-include-orphans"
        },
    );
    let opts = ResizeOptions {
        timeout: args.timeout,
        restart_pods,
        include_orphans,
    };
    let guard = super::lock(ctx, &base.name_any(), &args.mutate).await?;
    super::under_lock(
        ctx,
        guard,
        &name,
        "resize-pvcs",
        engine::execute(ctx, g, sizes, plan, &opts),
    )
    .await
    .map_err(|e| match e {
        Error::Interrupted(msg) => Error::Interrupted(format!("{msg}; {next}")),
        e => e.with_next_step(next),
    })
}

fn same_sizes(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| bytes(v) == bytes(w)))
}

fn describe(sizes: &BTreeMap<String, String>) -> String {
    sizes
        .iter()
        .map(|(t, s)| format!("{t}={s}"))
        .collect::<Vec<_>>()
        .join(", ")
}
