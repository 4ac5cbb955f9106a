//! `kubectl sts-safe status STS`: one screen answering "what state is this StatefulSet
//! in?", re-rendered on every change with `--watch`.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher;

use crate::cli::StatusArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::exec::interrupt::Interrupt;
use crate::exec::read;
use crate::plan::lease;
use crate::plan::recover;
use crate::plan::status::{self, StatusReport};
use crate::render::{self, Output};

async fn snapshot(ctx: &Ctx, name: &str) -> Result<StatusReport> {
    let sts = ctx.get_statefulset(name).await?;
    let (pods, pvcs, lease) = futures::try_join!(
        ctx.statefulset_pods(&sts),
        ctx.namespace_pvcs(),
        read_lease(ctx, name)
    )?;
    let now = Timestamp::now();
    let mut report = status::build(&sts, &pods, &pvcs, now);
    report.lock = lease.and_then(|l| lease::read(&l, now));
    let nodes = read::nodes_of(ctx, &pods).await;
    for (pod, node, state) in recover::stranded_pods(&pods, &nodes, now) {
        if let Some(row) = report.ordinals.iter_mut().find(|r| r.pod == pod) {
            row.stranded = Some(format!("stranded on lost node {node}: {state}"));
        }
    }
    Ok(report)
}

/// The StatefulSet's lease; None when there is none or this identity may not read
/// leases (status then says nothing about a lock rather than failing).
async fn read_lease(ctx: &Ctx, name: &str) -> Result<Option<Lease>> {
    let lease_name = lease::lease_name(name);
    match ctx.api::<Lease>().get_opt(&lease_name).await {
        Ok(l) => Ok(l),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(ctx.err("get", "leases", Some(&lease_name), e)),
    }
}

fn show(ctx: &Ctx, r: &StatusReport) -> Result<()> {
    render::show(ctx.output, r)
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
    let lease_events = watcher(
        ctx.api::<Lease>(),
        cfg.clone()
            .fields(&format!("metadata.name={}", lease::lease_name(name))),
    )
    .map(|_| ())
    .boxed();
    let pvc_events = watcher(ctx.api::<PersistentVolumeClaim>(), cfg)
        .map(|_| ())
        .boxed();
    let mut events =
        futures::stream::select_all([sts_events, pod_events, pvc_events, lease_events]);
    let term = console::Term::stdout();
    let mut interrupt = Interrupt::install();
    loop {
        tokio::select! {
            _ = interrupt.wait() => return Ok(0),
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
