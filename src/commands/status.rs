//! `kubectl sts-safe status STS`: one screen answering "what state is this StatefulSet
//! in?", re-rendered on every change with `--watch`. Without STS: every StatefulSet of the
//! namespace (or, with `-A`, of every namespace) on one line (`plan::status::list`).

use std::future::Future;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

use crate::cli::{StatusArgs, NAME_WITH_ALL_NAMESPACES};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exec::interrupt::Interrupt;
use crate::exec::read;
use crate::plan::doctor::all::split_by_namespace;
use crate::plan::lease;
use crate::plan::recover;
use crate::plan::status::list::StatusList;
use crate::plan::status::{self, StatusReport};
use crate::render::status::no_resources;
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

pub async fn run(ctx: &Ctx, args: &StatusArgs) -> Result<i32> {
    let name = match (&args.name, args.all_namespaces) {
        (Some(_), true) => return Err(Error::usage(NAME_WITH_ALL_NAMESPACES)),
        (None, all) => return list(ctx, all, args.watch).await,
        (Some(n), false) => n.as_str(),
    };
    let report = snapshot(ctx, name).await?;
    render::show(ctx.output, &report)?;
    if !args.watch {
        return Ok(0);
    }
    let cfg = watcher::Config::default().timeout(ctx.watch_timeout_secs());
    let events = vec![
        changes(
            ctx.api::<StatefulSet>(),
            cfg.clone().fields(&format!("metadata.name={name}")),
        ),
        changes(ctx.api::<Pod>(), cfg.clone()),
        changes(ctx.api::<PersistentVolumeClaim>(), cfg.clone()),
        changes(
            ctx.api::<Lease>(),
            cfg.fields(&format!("metadata.name={}", lease::lease_name(name))),
        ),
    ];
    let show = |r: &StatusReport| render::show(ctx.output, r);
    redraw_on(ctx, events, report, || snapshot(ctx, name), show).await
}

/// The events of one watch, as "something changed".
fn changes<K>(api: Api<K>, cfg: watcher::Config) -> BoxStream<'static, ()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    watcher(api, cfg).map(|_| ()).boxed()
}

/// Re-renders whenever `events` say something changed, until Ctrl-C: `take` makes the
/// new document, `show` prints it when it differs from the last one.
async fn redraw_on<D, F, Fut>(
    ctx: &Ctx,
    events: Vec<BoxStream<'static, ()>>,
    mut last: D,
    take: F,
    show: impl Fn(&D) -> Result<()>,
) -> Result<i32>
where
    D: PartialEq,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<D>>,
{
    let mut events = futures::stream::select_all(events);
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
        let doc = take().await?;
        if doc != last {
            if ctx.output == Output::Text && term.is_term() {
                let _ = term.clear_screen();
            }
            show(&doc)?;
            last = doc;
        }
    }
}

/// The list: every StatefulSet of the namespace, or of every namespace.
async fn list_snapshot(ctx: &Ctx, all: bool) -> Result<StatusList> {
    let inputs = read::doctor_inputs(ctx, all, None).await?;
    let by_namespace = split_by_namespace(inputs);
    let list = status::list::build(
        &by_namespace,
        (!all).then_some(ctx.namespace.as_str()),
        Timestamp::now(),
    );
    if list.items.is_empty() && !all && !ctx.namespace_exists().await {
        return Err(Error::NamespaceNotFound {
            namespace: ctx.namespace.clone(),
            context: ctx.target.context.clone(),
        });
    }
    Ok(list)
}

/// Prints the list; an empty one as kubectl does: a note on stderr (text only).
fn show_list(ctx: &Ctx, list: &StatusList) -> Result<()> {
    if list.items.is_empty() && ctx.output == Output::Text {
        render::note(no_resources(list.namespace.as_deref()));
        return Ok(());
    }
    render::show(ctx.output, list)
}

/// `status` without a name; with `--watch`, redrawn whenever a StatefulSet, a pod or a
/// PVC of the namespace (or, with `-A`, of any namespace) changes. Each redraw reads the
/// whole list again, at most once a second.
async fn list(ctx: &Ctx, all: bool, watch: bool) -> Result<i32> {
    let first = list_snapshot(ctx, all).await?;
    show_list(ctx, &first)?;
    if !watch {
        return Ok(0);
    }
    fn api<K>(ctx: &Ctx, all: bool) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        if all {
            Api::all(ctx.client.clone())
        } else {
            ctx.api()
        }
    }
    let cfg = watcher::Config::default().timeout(ctx.watch_timeout_secs());
    let events = vec![
        changes(api::<StatefulSet>(ctx, all), cfg.clone()),
        changes(api::<Pod>(ctx, all), cfg.clone()),
        changes(api::<PersistentVolumeClaim>(ctx, all), cfg),
    ];
    let take = || async {
        // At most one read of the whole list a second.
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        list_snapshot(ctx, all).await
    };
    redraw_on(ctx, events, first, take, |l| show_list(ctx, l)).await
}
