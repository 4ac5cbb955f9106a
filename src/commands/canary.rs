//! `kubectl sts-safe canary STS`: preflight → plan → confirm → freeze → steps.
//! The step loop lives in `crate::rollout`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;

use crate::access;
use crate::cli::{CanaryArgs, DryRun, Output};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model;
use crate::plan::rollout::{self, CanaryPlan, Gates};
use crate::plan::{gate, steps};
use crate::rollout::{self as run_rollout, same_template, Options};
use crate::ui;

/// The new template asked for by --image or --patch (None with --resume).
async fn requested_template(
    ctx: &Ctx,
    args: &CanaryArgs,
    sts: &StatefulSet,
) -> Result<Option<PodTemplateSpec>> {
    let name = sts.name_any();
    if !args.images.is_empty() {
        return rollout::apply_images(&sts.spec.template, &args.images, &name).map(Some);
    }
    let Some(path) = &args.patch else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("--patch \"{}\": {e}", path.display())))?;
    let patch: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| {
        Error::usage(format!(
            "--patch \"{}\" is not YAML or JSON: {e}",
            path.display()
        ))
    })?;
    if !patch.is_object() {
        return Err(Error::usage(format!(
            "--patch \"{}\" must be a mapping of pod template fields, e.g. spec: {{containers: [...]}}",
            path.display()
        )));
    }
    // Let the API server compute the strategic merge (dryRun=All writes nothing).
    let body = serde_json::json!({"spec": {"template": patch}});
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let merged = ctx
        .api::<StatefulSet>()
        .patch(&name, &pp, &Patch::Strategic(&body))
        .await
        .map_err(|e| match ctx.err("patch", "statefulsets", Some(&name), e) {
            Error::Api { message, .. } => Error::usage(format!(
                "--patch \"{}\" was rejected: {message}",
                path.display()
            )),
            other => other,
        })?;
    Ok(Some(merged.spec.template))
}

fn parse_targets(list: Option<&[String]>) -> Result<Option<Vec<steps::Target>>> {
    list.map(|v| {
        v.iter()
            .map(|s| steps::parse_target(s))
            .collect::<Result<Vec<_>>>()
    })
    .transpose()
}

pub async fn run(ctx: &Ctx, args: &CanaryArgs) -> Result<i32> {
    if args.images.is_empty() && args.patch.is_none() && !args.resume {
        return Err(Error::usage(
            "say what to roll out: --image [CONTAINER=]IMAGE, --patch FILE, or --resume",
        ));
    }
    // Bad --steps are usage errors before anything is read from the cluster.
    parse_targets(args.steps.as_deref())?;
    let dry_run = args.mutate.dry_run;
    if dry_run == DryRun::None && !args.mutate.yes && !ctx.interactive {
        return Err(Error::Declined(
            "a canary asks before each step and there is no terminal to ask: re-run with --yes (or --dry-run)".into(),
        ));
    }
    let sts = ctx.get_statefulset(&args.name).await?;
    let name = sts.name_any();
    if model::strategy_type(&sts) == "OnDelete" {
        return Err(Error::stopped(format!(
            "statefulset \"{name}\" uses updateStrategy OnDelete: the controller never replaces pods by itself, so a partition has no effect; switch it to RollingUpdate to run a canary"
        )));
    }
    let new_template = requested_template(ctx, args, &sts).await?;
    let pending = model::rollout_pending(&sts);
    let resume = match (&new_template, pending) {
        (None, false) => {
            ui::note(format!("no rollout is pending on statefulset \"{name}\": nothing to resume"));
            return Ok(0);
        }
        (None, true) => true,
        (Some(t), true) if same_template(t, &sts.spec.template) => true,
        (Some(_), true) => {
            return Err(Error::stopped(format!(
                "statefulset \"{name}\" already has a rollout pending ({} → {}, partition {}): continue it with `kubectl sts-safe canary {name} -n {} --resume` or undo it with `kubectl sts-safe rollback {name} -n {}`",
                model::current_revision(&sts).unwrap_or("?"),
                model::update_revision(&sts).unwrap_or("?"),
                model::partition(&sts),
                ctx.namespace,
                ctx.namespace
            )))
        }
        (Some(t), false) if same_template(t, &sts.spec.template) => {
            ui::note(format!("nothing to roll out: statefulset \"{name}\" already runs this template"));
            return Ok(0);
        }
        (Some(_), false) => false,
    };

    let recorded = if resume {
        rollout::recorded_settings(&sts)
    } else {
        None
    };
    let rolled_out = new_template.as_ref().unwrap_or(&sts.spec.template);
    let settings = rollout::RunSettings::resolve(
        args,
        recorded.as_ref(),
        rollout::template_digest(rolled_out),
    );
    let targets = parse_targets(settings.steps.as_deref())?;
    let record = serde_json::to_string(&settings).unwrap_or_default();
    let pods = ctx.statefulset_pods(&sts).await?;
    let replicas = model::replicas(&sts);
    let partition_now = model::partition(&sts);
    let start = model::ordinal_start(&sts);
    // Pods the run will not re-verify through a gate must be Ready now.
    let unready: Vec<String> = model::live_range(&sts)
        .filter(|o| !resume || *o - start < partition_now)
        .filter(|o| {
            !pods.iter().any(|p| {
                model::ordinal_of(&name, &p.name_any()) == Some(*o) && model::is_available(p)
            })
        })
        .map(|o| model::pod_name(&name, o))
        .collect();
    if !unready.is_empty() && !args.allow_unready {
        return Err(Error::stopped(format!(
            "statefulset \"{name}\" has pods that are not Running/Ready: {}; fix them first (kubectl sts-safe doctor {name}) or pass --allow-unready",
            unready.join(", ")
        )));
    }
    if dry_run == DryRun::None {
        access::require(ctx, access::CANARY).await?;
    }

    let mut warnings = vec![];
    match (&recorded, resume) {
        (Some(_), true) => warnings.push("resuming with the gates and steps of the run that started this rollout (flags given now override them)".into()),
        (None, true) => warnings.push("no record of how this rollout was started (not by kubectl sts-safe, or edited since): using the gates given now or the defaults".into()),
        _ => {}
    }
    let (all_steps, step_warnings) = steps::compute(replicas, start, targets.as_deref());
    warnings.extend(step_warnings);
    if !unready.is_empty() {
        warnings.push(format!(
            "starting with pods not Ready (--allow-unready): {}",
            unready.join(", ")
        ));
    }
    for w in crate::rollout::pdb_warnings(ctx, &sts).await {
        warnings.push(w);
    }
    let freeze = partition_now.max(replicas);
    let planned_steps = if resume {
        steps::remaining(&all_steps, partition_now)
    } else {
        all_steps
    };
    let changes = match (&new_template, resume) {
        (Some(t), false) => rollout::diff(&sts.spec.template, t),
        _ => vec![],
    };
    let soak = gate::soak(model::min_ready_seconds(&sts), settings.soak());
    let plan = CanaryPlan {
        api_version: "sts-safe/v1",
        kind: "CanaryPlan",
        statefulset: name.clone(),
        namespace: ctx.namespace.clone(),
        replicas,
        ordinal_start: start,
        resume,
        current_revision: model::current_revision(&sts).map(str::to_string),
        changes,
        freeze_partition: freeze,
        steps: planned_steps,
        gates: Gates {
            soak_seconds: soak.as_secs(),
            min_ready_seconds: model::min_ready_seconds(&sts),
            step_timeout_seconds: settings.step_timeout().as_secs(),
            max_restarts: settings.max_restarts,
            check_cmd: settings.check_cmd.clone(),
        },
        warnings,
    };

    match ctx.output {
        Output::Text => ui::print_stdout(&rollout::render_canary(&plan))?,
        o if dry_run != DryRun::None => ui::emit(o, &plan)?,
        _ => {}
    }
    if dry_run == DryRun::Client {
        return Ok(0);
    }
    if dry_run == DryRun::Server {
        if let Some(t) = &new_template {
            let gen = sts.metadata.generation.unwrap_or(0);
            crate::tracker::guarded_patch(
                ctx,
                &name,
                gen,
                Some(sts.clone()),
                true,
                |_| false,
                |rv| run_rollout::freeze_patch(rv, t, freeze, &sts, Some(&record)),
            )
            .await?;
        }
        ui::note("server dry run: the API server accepted the change (nothing was written)");
        return Ok(0);
    }
    ui::confirm(
        ctx,
        args.mutate.yes,
        &format!(
            "{} the canary of statefulset \"{name}\" ({} step(s))?",
            if resume { "Resume" } else { "Start" },
            plan.steps.len()
        ),
    )?;
    let opts = Options {
        soak,
        step_timeout: settings.step_timeout(),
        max_restarts: settings.max_restarts,
        check_cmd: settings.check_cmd.clone(),
        on_failure: settings.on_failure,
        yes: args.mutate.yes,
        record,
    };
    let next = format!(
        "nothing else was written; see `kubectl sts-safe status {name} -n {ns}`, then continue with `kubectl sts-safe canary {name} -n {ns} --resume` or undo with `kubectl sts-safe rollback {name} -n {ns}`",
        ns = ctx.namespace
    );
    run_rollout::execute(ctx, sts, new_template.filter(|_| !resume), plan, opts)
        .await
        .map_err(|e| e.with_next_step(next))
}
