//! `kubectl sts-safe canary STS`: gather → plan → show → confirm → the step engine
//! (`exec::canary`). The decisions are in `plan::canary`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;

use crate::cli::{CanaryArgs, DryRun};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exec::canary::{self as engine, CanaryOptions};
use crate::exec::metric_gate::{MetricGate, Subject};
use crate::exec::prometheus::{Endpoint, Prometheus};
use crate::exec::{access, hooks, lease, read, write};
use crate::plan::canary::{
    self, MetricSettings, OnDeleteInputs, Order, PlanInputs, RunSettings, Start,
};
use crate::plan::ondelete;
use crate::plan::{owners, template};
use crate::render::{self, Output};
use crate::ui;

/// The new template asked for by --image or --patch (None with --resume).
async fn requested_template(
    ctx: &Ctx,
    args: &CanaryArgs,
    sts: &StatefulSet,
) -> Result<Option<PodTemplateSpec>> {
    let name = sts.name_any();
    if !args.images.is_empty() {
        return template::apply_images(&sts.spec.template, &args.images, &name).map(Some);
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

/// The Prometheus gate of the run: the recorded or given queries, the server and its
/// credentials (headers are never recorded, so they come from this invocation).
fn metric_gate(args: &CanaryArgs, m: &MetricSettings) -> Result<MetricGate> {
    let Some(url) = m.prometheus.clone() else {
        return Err(Error::usage(
            "--fail-if/--require need a Prometheus to ask: --prometheus URL (or STS_SAFE_PROMETHEUS)",
        ));
    };
    if m.interval_ms == 0 {
        return Err(Error::usage("--metric-interval must be longer than 0s"));
    }
    let endpoint = Endpoint {
        url,
        token_file: m.token_file.as_ref().map(Into::into),
        headers: args.prometheus.headers.clone(),
        ca_file: m.ca_file.as_ref().map(Into::into),
    };
    Ok(MetricGate {
        prometheus: Prometheus::new(&endpoint)?,
        queries: m.queries.clone(),
        cadence: m.cadence(),
    })
}

/// The primary of `--order primary-last`, by `--primary-selector` or `--role-cmd`.
async fn find_primary(
    ctx: &Ctx,
    settings: &RunSettings,
    sts: &StatefulSet,
    pods: &[Pod],
) -> Result<i32> {
    let name = sts.name_any();
    let live: Vec<i32> = crate::model::live_range(sts).collect();
    if let Some(sel) = &settings.primary_selector {
        let (k, v) = ondelete::parse_selector(sel)?;
        let answers: Vec<(i32, bool)> = live
            .iter()
            .map(|o| {
                let pod = pods
                    .iter()
                    .find(|p| p.name_any() == crate::model::pod_name(&name, *o));
                let is = pod
                    .and_then(|p| p.metadata.labels.as_ref())
                    .and_then(|l| l.get(&k))
                    .is_some_and(|x| *x == v);
                (*o, is)
            })
            .collect();
        return ondelete::one_primary(&name, &answers, &format!("label {k}={v}"));
    }
    let Some(cmd) = &settings.role_cmd else {
        return Err(Error::usage(
            "--order primary-last needs the primary: --primary-selector LABEL=VALUE or --role-cmd CMD",
        ));
    };
    let mut answers = vec![];
    for o in live {
        let env = hooks::pod_env(sts, &ctx.namespace, o);
        let out = hooks::run("--role-cmd", cmd, &env, std::time::Duration::from_secs(60))
            .await
            .map_err(|e| {
                Error::stopped(format!(
                    "{}: {e}; cannot tell the primary",
                    crate::model::pod_name(&name, o)
                ))
            })?;
        answers.push((o, out.trim() == "primary"));
    }
    ondelete::one_primary(&name, &answers, "--role-cmd")
}

pub async fn run(ctx: &Ctx, args: &CanaryArgs) -> Result<i32> {
    if args.images.is_empty() && args.patch.is_none() && !args.resume {
        return Err(Error::usage(
            "say what to roll out: --image [CONTAINER=]IMAGE, --patch FILE, or --resume",
        ));
    }
    // Bad --steps are usage errors before anything is read from the cluster.
    canary::parse_targets(args.steps.as_deref())?;
    let dry_run = args.mutate.dry_run;
    if dry_run == DryRun::None && !args.mutate.yes && !ctx.interactive {
        return Err(Error::Declined(
            "a canary asks before each step and there is no terminal to ask: re-run with --yes (or --dry-run)".into(),
        ));
    }
    let sts = ctx.get_statefulset(&args.name).await?;
    let name = sts.name_any();
    super::refuse_owned(&sts, &args.owner)?;
    if dry_run == DryRun::None {
        // Rights first (they say everything that is missing), then whether another run
        // holds the lock (which explains a pending rollout or unready pods best): both
        // before the plan and its questions.
        access::require(ctx, access::CANARY).await?;
        lease::refuse_if_held(ctx, &ctx.namespace, &name, args.mutate.break_lock).await?;
    }
    let new_template = requested_template(ctx, args, &sts).await?;
    let pods = ctx.statefulset_pods(&sts).await?;
    let resume = match canary::decide_start(&sts, &pods, new_template.as_ref(), &ctx.namespace)? {
        Start::Nothing(why) => {
            render::note(why);
            return Ok(0);
        }
        Start::Resume => true,
        Start::Fresh => false,
    };
    let recorded = resume.then(|| canary::recorded_settings(&sts)).flatten();
    let rolled_out = new_template.as_ref().unwrap_or(&sts.spec.template);
    let settings = RunSettings::resolve(
        &args.settings_flags(),
        recorded.as_ref(),
        template::template_digest(rolled_out),
    );
    let record = serde_json::to_string(&settings).unwrap_or_default();
    // OnDelete: the StatefulSet uses it, an interrupted run left it, or the order needs it.
    let recorded_strategy = ondelete::recorded_strategy(&sts);
    let use_ondelete = settings.order == Order::PrimaryLast
        || crate::model::strategy_type(&sts) == "OnDelete"
        || recorded_strategy.is_some();
    let original = recorded_strategy.unwrap_or_else(|| ondelete::current_strategy(&sts));
    let primary = match settings.order {
        Order::PrimaryLast => Some(find_primary(ctx, &settings, &sts, &pods).await?),
        Order::Ordinal => None,
    };
    // Pods the run will not re-verify through a gate must be Ready now.
    let unready = if use_ondelete {
        ondelete::unready_before_start(&sts, &pods, resume)
    } else {
        canary::unready_before_start(&sts, &pods, resume)
    };
    if !unready.is_empty() && !args.allow_unready {
        return Err(Error::stopped(format!(
            "statefulset \"{name}\" has pods that are not Running/Ready: {}; fix them first (kubectl sts-safe doctor {name}) or pass --allow-unready",
            unready.join(", ")
        )));
    }

    let pdbs = ctx.list_pdbs().await.unwrap_or_default();
    let (_, minor, patch) = read::server_release(ctx).await?;
    let max_unavailable_on = crate::plan::steps::max_unavailable_on(minor, patch);
    let mut plan = canary::build_plan(PlanInputs {
        sts: &sts,
        namespace: &ctx.namespace,
        requested: new_template.as_ref(),
        resume,
        settings: &settings,
        recorded: recorded.is_some(),
        unready: &unready,
        pdbs: &pdbs,
        max_unavailable_on,
        ondelete: use_ondelete.then(|| OnDeleteInputs {
            original: original.clone(),
            primary,
            pods: &pods,
        }),
    })?;
    plan.warnings.extend(owners::gitops_warning(
        &sts,
        "the template and the partition",
    ));
    let metrics = match &settings.metrics {
        Some(m) => {
            let gate = metric_gate(args, m)?;
            let first = plan.steps.first().and_then(|s| s.ordinals.first().copied());
            let ordinal = first.unwrap_or_else(|| crate::model::ordinal_start(&sts));
            let revision = sts.status.as_ref().and_then(|s| s.update_revision.clone());
            let subject = Subject {
                statefulset: &name,
                namespace: &ctx.namespace,
                ordinal,
                revision: revision.as_deref().unwrap_or(""),
            };
            plan.warnings.extend(gate.preflight(&subject).await?);
            Some(gate)
        }
        None => None,
    };
    if ctx.output == Output::Text || dry_run != DryRun::None {
        render::show(ctx.output, &plan)?;
    }
    if dry_run == DryRun::Client {
        return Ok(0);
    }
    if dry_run == DryRun::Server {
        if use_ondelete {
            write::dry_run(ctx, &sts, |rv| {
                ondelete::freeze_patch(rv, new_template.as_ref(), &sts, &original, Some(&record))
            })
            .await?;
        } else if let Some(t) = &new_template {
            write::dry_run_freeze(ctx, &sts, t, plan.freeze_partition, Some(&record)).await?;
        }
        return Ok(super::server_accepted("the change"));
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
    let opts = CanaryOptions {
        soak: std::time::Duration::from_secs(plan.gates.soak_seconds),
        step_timeout: settings.step_timeout(),
        max_restarts: settings.max_restarts,
        check_cmd: settings.check_cmd.clone(),
        metrics,
        before_pod: settings.before_pod.clone(),
        after_pod: settings.after_pod.clone(),
        on_failure: settings.on_failure,
        yes: args.mutate.yes,
        record,
    };
    let next = format!(
        "nothing else was written; see `kubectl sts-safe status {name} -n {ns}`, then continue with `kubectl sts-safe canary {name} -n {ns} --resume` or undo with `kubectl sts-safe rollback {name} -n {ns}`",
        ns = ctx.namespace
    );
    let guard = super::lock(ctx, &name, &args.mutate).await?;
    let template = new_template.filter(|_| !resume);
    if use_ondelete {
        let run = engine::execute_ondelete(ctx, sts, template, plan, opts, original);
        return super::under_lock(ctx, guard, &name, "canary", run)
            .await
            .map_err(|e| e.with_next_step(next));
    }
    let run = engine::execute(ctx, sts, template, plan, opts);
    super::under_lock(ctx, guard, &name, "canary", run)
        .await
        .map_err(|e| e.with_next_step(next))
}
