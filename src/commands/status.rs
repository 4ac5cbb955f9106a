//! `kubectl sts-safe status STS`: one screen answering "what state is this StatefulSet in?".

use std::collections::HashMap;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher;
use kube::ResourceExt;
use serde::Serialize;

use crate::cli::{Output, StatusArgs};
use crate::context::Ctx;
use crate::error::Result;
use crate::model;
use crate::orphan;
use crate::ui;

/// The documented `-o json|yaml` structure (apiVersion sts-safe/v1, kind StatusReport).
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    pub replicas: Replicas,
    pub update_strategy: Strategy,
    pub pod_management_policy: String,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    pub rollout_pending: bool,
    pub generation: i64,
    pub observed_generation: Option<i64>,
    pub min_ready_seconds: i32,
    pub ordinal_start: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc_retention_policy: Option<Retention>,
    pub ordinals: Vec<OrdinalRow>,
    pub orphan_pvcs: Vec<OrphanPvc>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Replicas {
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: Option<i32>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    #[serde(rename = "type")]
    pub type_: String,
    pub partition: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub when_scaled: String,
    pub when_deleted: String,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrdinalRow {
    pub ordinal: i32,
    pub pod: String,
    /// Missing | Pending | Running | Terminating | Succeeded | Failed | Unknown
    pub phase: String,
    pub ready: bool,
    /// current | update | other | unknown (absent pod: null)
    pub revision: Option<String>,
    pub revision_hash: Option<String>,
    pub images: Vec<String>,
    pub restarts: i32,
    pub age_seconds: Option<i64>,
    pub node: Option<String>,
    pub pvcs: Vec<PvcRef>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PvcRef {
    pub name: String,
    /// Missing when the PVC does not exist yet.
    pub phase: String,
    pub capacity: Option<String>,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrphanPvc {
    pub name: String,
    pub template: String,
    pub ordinal: i32,
    pub phase: String,
    pub capacity: Option<String>,
    pub age_seconds: Option<i64>,
    /// Set when a pod still mounts it (then prune-pvcs will not delete it).
    pub mounted_by: Option<String>,
}

/// Builds the report from listed objects; pure.
pub fn build(
    sts: &StatefulSet,
    pods: &[Pod],
    pvcs: &[PersistentVolumeClaim],
    now: Timestamp,
) -> StatusReport {
    let name = sts.name_any();
    let status = sts.status.clone().unwrap_or_default();
    let current = status.current_revision.clone();
    let update = status.update_revision.clone();
    let by_name: HashMap<String, &Pod> = pods.iter().map(|p| (p.name_any(), p)).collect();
    let pvc_by_name: HashMap<String, &PersistentVolumeClaim> =
        pvcs.iter().map(|p| (p.name_any(), p)).collect();
    let templates = model::claim_templates(sts);

    let live = model::live_range(sts);
    // Rows for the live range plus any pod still present above it (e.g. terminating).
    let mut ordinals: Vec<i32> = live.clone().collect();
    for p in pods {
        if let Some(o) = model::ordinal_of(&name, &p.name_any()) {
            if !ordinals.contains(&o) {
                ordinals.push(o);
            }
        }
    }
    ordinals.sort_unstable();

    let rows = ordinals
        .into_iter()
        .map(|o| {
            let pod_name = model::pod_name(&name, o);
            let pod = by_name.get(&pod_name).copied();
            let pvcs = templates
                .iter()
                .map(|t| {
                    let n = model::pvc_name(t, &name, o);
                    let p = pvc_by_name.get(&n);
                    PvcRef {
                        phase: p
                            .map(|p| model::pvc_phase(p).to_string())
                            .unwrap_or_else(|| "Missing".into()),
                        capacity: p.and_then(|p| model::pvc_capacity(p)),
                        name: n,
                    }
                })
                .collect();
            match pod {
                None => OrdinalRow {
                    ordinal: o,
                    pod: pod_name,
                    phase: "Missing".into(),
                    ready: false,
                    revision: None,
                    revision_hash: None,
                    images: vec![],
                    restarts: 0,
                    age_seconds: None,
                    node: None,
                    pvcs,
                },
                Some(p) => {
                    let hash = model::revision(p).map(str::to_string);
                    let revision = Some(
                        match hash.as_deref() {
                            Some(h) if Some(h) == update.as_deref() && update != current => {
                                "update"
                            }
                            Some(h) if Some(h) == current.as_deref() => "current",
                            Some(h) if Some(h) == update.as_deref() => "update",
                            Some(_) => "other",
                            None => "unknown",
                        }
                        .to_string(),
                    );
                    OrdinalRow {
                        ordinal: o,
                        pod: pod_name,
                        phase: if model::is_terminating(p) {
                            "Terminating".into()
                        } else {
                            model::phase(p).to_string()
                        },
                        ready: model::is_ready(p),
                        revision,
                        revision_hash: hash,
                        images: model::images(p),
                        restarts: model::restarts(p),
                        age_seconds: model::age_secs(p.metadata.creation_timestamp.as_ref(), now),
                        node: model::node(p).map(str::to_string),
                        pvcs,
                    }
                }
            }
        })
        .collect();

    let opts = orphan::Options {
        include_scaled_to_zero: true,
    };
    let orphan_pvcs = orphan::classify(std::slice::from_ref(sts), pvcs, pods, opts)
        .into_iter()
        .filter(|c| {
            !matches!(
                c.verdict,
                orphan::Verdict::Live | orphan::Verdict::Ambiguous(_)
            )
        })
        .map(|c| OrphanPvc {
            name: c.pvc.name_any(),
            template: c.template.clone(),
            ordinal: c.ordinal,
            phase: model::pvc_phase(c.pvc).to_string(),
            capacity: model::pvc_capacity(c.pvc),
            age_seconds: model::age_secs(c.pvc.metadata.creation_timestamp.as_ref(), now),
            mounted_by: match &c.verdict {
                orphan::Verdict::MountedBy(p) => Some(p.clone()),
                _ => None,
            },
        })
        .collect();

    StatusReport {
        api_version: "sts-safe/v1",
        kind: "StatusReport",
        namespace: sts.namespace().unwrap_or_default(),
        replicas: Replicas {
            desired: model::replicas(sts),
            current: status.current_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas,
        },
        update_strategy: Strategy {
            type_: model::strategy_type(sts).to_string(),
            partition: model::partition(sts),
            max_unavailable: model::max_unavailable(sts),
        },
        pod_management_policy: model::pod_management_policy(sts).to_string(),
        rollout_pending: model::rollout_pending(sts),
        current_revision: current,
        update_revision: update,
        generation: sts.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation,
        min_ready_seconds: model::min_ready_seconds(sts),
        ordinal_start: model::ordinal_start(sts),
        pvc_retention_policy: model::retention_policy(sts).map(|(s, d)| Retention {
            when_scaled: s,
            when_deleted: d,
        }),
        ordinals: rows,
        orphan_pvcs,
        name,
    }
}

fn fmt_age(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

/// The text screen.
pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    let rep = &r.replicas;
    out.push_str(&format!(
        "StatefulSet {}/{}\n",
        r.namespace,
        ui::bold(&r.name)
    ));
    out.push_str(&format!(
        "Replicas:   {} desired, {} current, {} ready, {} updated{}\n",
        rep.desired,
        rep.current,
        rep.ready,
        rep.updated,
        rep.available
            .map(|a| format!(", {a} available"))
            .unwrap_or_default()
    ));
    let mut strategy = r.update_strategy.type_.clone();
    if r.update_strategy.type_ == "RollingUpdate" {
        strategy.push_str(&format!(" (partition {}", r.update_strategy.partition));
        if let Some(m) = &r.update_strategy.max_unavailable {
            strategy.push_str(&format!(", maxUnavailable {m}"));
        }
        strategy.push(')');
    }
    out.push_str(&format!(
        "Strategy:   {strategy}, podManagementPolicy {}\n",
        r.pod_management_policy
    ));
    let rev = match (&r.current_revision, &r.update_revision) {
        (Some(c), Some(u)) if c != u => format!("{c} → {} {}", u, ui::yellow("(rollout pending)")),
        (Some(c), _) => c.clone(),
        _ => "-".into(),
    };
    out.push_str(&format!("Revision:   {rev}\n"));
    let gen = match r.observed_generation {
        Some(o) if o >= r.generation => format!("{} (observed)", r.generation),
        Some(o) => format!("{} (controller has seen {o})", r.generation),
        None => format!("{} (not yet observed)", r.generation),
    };
    out.push_str(&format!("Generation: {gen}\n"));
    let mut extras = vec![];
    if r.min_ready_seconds > 0 {
        extras.push(format!("minReadySeconds {}", r.min_ready_seconds));
    }
    if r.ordinal_start != 0 {
        extras.push(format!("ordinals start at {}", r.ordinal_start));
    }
    if let Some(p) = &r.pvc_retention_policy {
        extras.push(format!(
            "PVC retention whenScaled={} whenDeleted={}",
            p.when_scaled, p.when_deleted
        ));
    }
    if !extras.is_empty() {
        out.push_str(&format!("Options:    {}\n", extras.join(", ")));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = r
        .ordinals
        .iter()
        .map(|o| {
            let status = match (o.phase.as_str(), o.ready) {
                ("Running", true) => ui::green("Running/Ready").to_string(),
                ("Missing", _) => ui::red("Missing").to_string(),
                (p, false) => ui::yellow(format!("{p}/NotReady")).to_string(),
                (p, true) => format!("{p}/Ready"),
            };
            let pvcs = o
                .pvcs
                .iter()
                .map(|p| {
                    format!(
                        "{} {}{}",
                        p.name,
                        p.phase,
                        p.capacity
                            .as_deref()
                            .map(|c| format!(" {c}"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                o.ordinal.to_string(),
                o.pod.clone(),
                status,
                o.revision.clone().unwrap_or_else(|| "-".into()),
                if o.images.is_empty() {
                    "-".into()
                } else {
                    o.images.join(",")
                },
                o.restarts.to_string(),
                fmt_age(o.age_seconds),
                o.node.clone().unwrap_or_else(|| "-".into()),
                if pvcs.is_empty() { "-".into() } else { pvcs },
            ]
        })
        .collect();
    out.push_str(&ui::table(
        &[
            "ORD", "POD", "STATUS", "REVISION", "IMAGES", "RESTARTS", "AGE", "NODE", "PVCS",
        ],
        &rows,
    ));
    if !r.orphan_pvcs.is_empty() {
        let total = model::format_bytes(model::total_bytes(
            r.orphan_pvcs.iter().filter_map(|o| o.capacity.as_deref()),
        ));
        out.push_str(&format!(
            "\n{} PVC(s) outside the live ordinal range ({total}):\n",
            r.orphan_pvcs.len()
        ));
        for o in &r.orphan_pvcs {
            out.push_str(&format!(
                "  {}  ordinal {}  {}  {}  age {}{}\n",
                o.name,
                o.ordinal,
                o.phase,
                o.capacity.as_deref().unwrap_or("-"),
                fmt_age(o.age_seconds),
                o.mounted_by
                    .as_deref()
                    .map(|p| format!("  (mounted by pod {p})"))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "  clean up with: kubectl sts-safe prune-pvcs {} -n {}\n",
            r.name, r.namespace
        ));
    }
    out
}

async fn snapshot(ctx: &Ctx, name: &str) -> Result<StatusReport> {
    let sts = ctx.get_statefulset(name).await?;
    let (pods, pvcs) = futures::try_join!(ctx.statefulset_pods(&sts), ctx.namespace_pvcs())?;
    Ok(build(&sts, &pods, &pvcs, Timestamp::now()))
}

fn show(ctx: &Ctx, r: &StatusReport) -> Result<()> {
    match ctx.output {
        Output::Text => ui::print_stdout(&render(r)),
        o => ui::emit(o, r),
    }
}

pub async fn run(ctx: &Ctx, args: &StatusArgs) -> Result<i32> {
    let report = snapshot(ctx, &args.name).await?;
    show(ctx, &report)?;
    if !args.watch {
        return Ok(0);
    }
    watch(ctx, &args.name, report).await
}

/// Re-renders whenever the StatefulSet, its pods or the namespace's PVCs change.
async fn watch(ctx: &Ctx, name: &str, mut last: StatusReport) -> Result<i32> {
    let cfg = watcher::Config::default().timeout(ctx.watch_timeout_secs());
    let sts_events = watcher(
        ctx.api::<StatefulSet>(),
        cfg.clone().fields(&format!("metadata.name={name}")),
    )
    .map(|_| ())
    .boxed();
    let pod_events = watcher(ctx.api::<Pod>(), cfg.clone()).map(|_| ()).boxed();
    let pvc_events = watcher(ctx.api::<PersistentVolumeClaim>(), cfg)
        .map(|_| ())
        .boxed();
    let mut events =
        futures::stream::select(sts_events, futures::stream::select(pod_events, pvc_events));
    let term = console::Term::stdout();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(0),
            ev = events.next() => if ev.is_none() { return Ok(0) },
        }
        // Coalesce bursts (a rollout step produces many events).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        while let Some(Some(_)) = futures::FutureExt::now_or_never(events.next()) {}
        let report = snapshot(ctx, name).await?;
        if report != last {
            if ctx.output == Output::Text && term.is_term() {
                let _ = term.clear_screen();
            }
            show(ctx, &report)?;
            last = report;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn status_of_a_scaled_down_statefulset_lists_orphans() {
        let f = fixtures::load("redis-scaled-down.yaml");
        let r = build(&f.sts(), &f.pods(), &f.pvcs(), fixtures::now());
        assert_eq!(r.replicas.desired, 2);
        assert_eq!(
            r.ordinals.iter().map(|o| o.ordinal).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(r.ordinals.iter().all(|o| o.ready && o.phase == "Running"));
        assert_eq!(r.ordinals[0].pvcs[0].name, "redis-data-redis-0");
        assert_eq!(r.ordinals[0].pvcs[0].phase, "Bound");
        let orphans: Vec<_> = r.orphan_pvcs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(orphans, vec!["redis-data-redis-2"]);
        let text = render(&r);
        assert!(
            text.contains("1 PVC(s) outside the live ordinal range (10Gi)"),
            "{text}"
        );
        assert!(text.contains("prune-pvcs redis -n production"), "{text}");
    }

    #[test]
    fn status_marks_missing_ordinals_and_pending_rollouts() {
        let f = fixtures::load("redis-canary-midway.yaml");
        let r = build(&f.sts(), &f.pods(), &f.pvcs(), fixtures::now());
        assert!(r.rollout_pending);
        let revs: Vec<_> = r.ordinals.iter().map(|o| o.revision.clone()).collect();
        assert_eq!(
            revs,
            vec![Some("current".into()), None, Some("update".into())]
        );
        assert_eq!(r.ordinals[1].phase, "Missing");
        assert_eq!(r.update_strategy.partition, 2);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kind"], "StatusReport");
        assert_eq!(json["updateStrategy"]["type"], "RollingUpdate");
    }
}
