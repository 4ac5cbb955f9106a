//! `kubectl sts-safe recover STS [POD...]`: gather the evidence → plan → show → fence
//! (a fence command or the node's name typed; `--yes` alone never is) → re-check →
//! the engine (`exec::recover`), under the StatefulSet's lock.
//! `kubectl sts-safe recover --untaint NODE` gives the node back once it is Ready.

use k8s_openapi::jiff::Timestamp;

use crate::cli::{DryRun, RecoverArgs, RecoverMethod};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exec::recover::{self as engine, RecoverOptions};
use crate::exec::{access, lease};
use crate::plan::recover::{self, Method, RecoverInputs};
use crate::render::{self, Output};
use crate::ui;

pub async fn run(ctx: &Ctx, args: &RecoverArgs) -> Result<i32> {
    let dry_run = args.mutate.dry_run;
    if let Some(node) = &args.untaint {
        if dry_run == DryRun::None {
            access::require(ctx, access::TAINT).await?;
        }
        return engine::untaint(ctx, node, args.mutate.yes, dry_run != DryRun::None).await;
    }
    let name = args
        .name
        .clone()
        .expect("clap requires NAME without --untaint");
    let method = match args.method {
        RecoverMethod::Auto => Method::Auto,
        RecoverMethod::OutOfService => Method::OutOfService,
        RecoverMethod::ForceDelete => Method::ForceDelete,
    };
    if args.delete_attachments && method == Method::OutOfService {
        return Err(Error::Usage(
            "--delete-attachments goes with --method force-delete: with the out-of-service taint the attach/detach controller detaches at once".into(),
        ));
    }
    let g = engine::gather(ctx, &name).await?;
    let inputs = RecoverInputs {
        sts: &g.sts,
        pods: &g.pods,
        nodes: &g.nodes,
        leases: &g.leases,
        claims: &g.claims,
        attachments: &g.attachments,
        node_pods: &g.node_pods,
        node_pods_readable: g.node_pods_readable,
        named: &args.pods,
        now: Timestamp::now(),
        min_down: args.min_down,
        method,
        server: g.server,
        delete_attachments: args.delete_attachments,
    };
    let mut plan = recover::plan(&inputs, &ctx.namespace).map_err(|why| {
        if why.contains("--method out-of-service needs") {
            Error::Usage(why)
        } else {
            Error::stopped(format!("{why}; nothing was written"))
        }
    })?;
    if args.delete_attachments && plan.method == Method::OutOfService {
        return Err(Error::Usage(format!(
            "--delete-attachments goes with --method force-delete; {}",
            plan.method_reason
        )));
    }
    plan.warnings.extend(g.warnings.iter().cloned());
    if plan.is_noop() {
        if ctx.output != Output::Text {
            render::show(ctx.output, &plan)?;
        }
        for w in &plan.warnings {
            render::note(format!("warning: {w}"));
        }
        render::note(format!(
            "statefulset \"{name}\": no pod is stranded on a lost node: nothing to recover"
        ));
        return Ok(0);
    }
    if ctx.output == Output::Text || dry_run != DryRun::None {
        render::show(ctx.output, &plan)?;
    }
    match dry_run {
        DryRun::Client => return Ok(0),
        // The writes are a taint and deletes with preconditions: the re-check against
        // the live objects is what a server-side dry run can prove here.
        DryRun::Server => {
            engine::recheck(ctx, &plan).await?;
            return Ok(super::server_accepted_note(
                "the evidence was read again and still holds",
            ));
        }
        DryRun::None => {}
    }
    let lost = plan.lost_nodes();
    if args.fence_cmd.is_none() && !ctx.interactive {
        return Err(Error::Declined(format!(
            "refusing: node {} must be confirmed off before its pods are deleted, and there is neither --fence-cmd nor a terminal to type the node's name; --yes alone is never enough (a live node would run two copies of the same pod); nothing was written",
            lost.join(", ")
        )));
    }
    access::require(ctx, access::RECOVER).await?;
    if plan.method == Method::OutOfService {
        access::require(ctx, access::TAINT).await?;
    }
    if args.delete_attachments {
        access::require(ctx, access::DETACH).await?;
    }
    lease::refuse_if_held(ctx, &ctx.namespace, &name, args.mutate.break_lock).await?;
    let guard = super::lock(ctx, &name, &args.mutate).await?;
    let opts = RecoverOptions {
        timeout: args.timeout,
        fenced_by: if args.fence_cmd.is_some() {
            "--fence-cmd".into()
        } else {
            "typed node name".into()
        },
    };
    let fence_cmd = args.fence_cmd.clone();
    let yes = args.mutate.yes;
    let delete_attachments = args.delete_attachments;
    let work = async move {
        // Asked before anything happens: the fence command itself may power the node off.
        if fence_cmd.is_some() {
            ui::confirm(
                ctx,
                yes,
                &format!(
                    "Fence node {} and recover {} pod(s) of statefulset \"{name}\"?",
                    lost.join(", "),
                    plan.pods.len().max(plan.pending.len())
                ),
            )?;
        }
        if delete_attachments && !yes {
            ui::confirm(
                ctx,
                false,
                "Delete the lost node's VolumeAttachments by hand (only the attach/detach controller should; a wrong detach can corrupt data)?",
            )?;
        }
        for node in &lost {
            match &fence_cmd {
                Some(cmd) => {
                    let out = engine::fence(cmd, node, &ctx.namespace).await?;
                    render::note(format!(
                        "--fence-cmd exited 0 for node {node}: confirmed off{}",
                        if out.is_empty() {
                            String::new()
                        } else {
                            format!("\n{out}")
                        }
                    ));
                }
                None => ui::confirm_by_typing(
                    ctx,
                    node,
                    &format!(
                        "Is node {node} powered off or fenced? If it still runs, its pods run twice."
                    ),
                )?,
            }
        }
        engine::execute(ctx, g, plan, &opts).await
    };
    let next = format!(
        "re-run `kubectl sts-safe recover {} -n {}` to finish it",
        args.name.as_deref().unwrap_or_default(),
        ctx.namespace
    );
    super::under_lock(
        ctx,
        guard,
        args.name.as_deref().unwrap_or_default(),
        "recover",
        work,
    )
    .await
    .map_err(|e| match e {
        Error::Interrupted(msg) => Error::Interrupted(format!("{msg}; {next}")),
        e => e.with_next_step(next),
    })
}
