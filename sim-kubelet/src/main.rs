//! sim-kubelet: plays kubelet, scheduler, storage provisioner and CSI external-resizer for
//! a local Kubernetes test control plane that has neither (etcd + kube-apiserver +
//! kube-controller-manager).

mod attach;
mod behavior;
mod classes;
mod events;
mod metrics;
mod node;
mod pods;
mod quantity;
mod resize;
mod scheduling;
mod status;
mod storage;
mod timeline;
mod util;

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::events::Recorder;
use crate::node::{Heartbeats, Nodes};
use crate::pods::{Caches, PodCtx, Timing};
use crate::util::api_code;

/// The User-Agent of every request, so audit logs tell the simulator's requests apart.
const USER_AGENT: &str = concat!("sim-kubelet/", env!("CARGO_PKG_VERSION"));

/// Plays kubelet, scheduler and storage provisioner for a local test control plane.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long)]
    context: Option<String>,
    /// Number of built-in nodes to register (sim-node-0..N-1); Nodes labelled
    /// sim.sts-safe.dev/node=true are played too.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    nodes: u16,
    /// Time from a pod being bound until its containers run (and, if healthy, are Ready).
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    ready_delay: Duration,
    /// Time from a pod getting a deletionTimestamp until it is removed.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    delete_delay: Duration,
    /// Leave binding pods to a real kube-scheduler: only play the kubelet of pods bound
    /// to our nodes.
    #[arg(long)]
    no_scheduler: bool,
    /// Time between two crashes of a crash-looping container.
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    crash_interval: Duration,
    /// How often each node's Lease in kube-node-lease is renewed.
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    lease_renew: Duration,
    /// How often each node posts its status (Ready heartbeat).
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    status_every: Duration,
    /// Time the CSI external-attacher takes to attach or detach a volume.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    attach_delay: Duration,
    /// Serve each running pod's simulated application metrics over HTTP on this address
    /// (e.g. 127.0.0.1:29100), at /metrics/<namespace>/<pod>. Off when absent.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Keep a Prometheus file_sd file here listing the pods with metrics as scrape
    /// targets (written atomically). Needs --metrics-listen.
    #[arg(long, value_name = "PATH", requires = "metrics_listen")]
    prometheus_sd_file: Option<PathBuf>,
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be greater than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

async fn client_config(args: &Args) -> anyhow::Result<Config> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await?,
        (None, None) => Config::infer().await?,
    };
    Ok(config)
}

/// Retries `op` with backoff until it succeeds (the API server may still be starting).
async fn retry<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "{what} failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(409) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// Binds the metrics listener (a busy port fails the start) and starts the server and
/// the file_sd writer.
async fn start_metrics(
    args: &Args,
    nodes: Arc<Nodes>,
) -> anyhow::Result<Option<Arc<metrics::Registry>>> {
    let Some(addr) = args.metrics_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --metrics-listen {addr}"))?;
    let addr = listener
        .local_addr()
        .context("the metrics listener's address")?;
    let registry = Arc::new(metrics::Registry::new(addr));
    tokio::spawn(metrics::server::serve(listener, registry.clone(), nodes));
    if let Some(path) = &args.prometheus_sd_file {
        tokio::spawn(metrics::write_sd_file(registry.clone(), path.clone()));
    }
    info!(%addr, sd_file = ?args.prometheus_sd_file, "serving pod metrics");
    Ok(Some(registry))
}

/// Registers nodes, ensures storage classes and the CSIDriver, starts all watches;
/// returns once the watches have listed their objects.
async fn start(args: &Args, client: Client) -> anyhow::Result<()> {
    let builtin = node::sim_nodes(usize::from(args.nodes));
    // Nodes report the server's version as their kubelet's, as a real cluster's do.
    let info = retry("reading the server version", || async {
        Ok(client.apiserver_version().await?)
    })
    .await;
    node::set_version(info.git_version);

    retry("ensuring namespace kube-node-lease", || {
        ensure_namespace(&client, node::LEASE_NAMESPACE)
    })
    .await;
    for n in &builtin {
        retry(&format!("registering node {}", n.name), || {
            node::register(&client, n)
        })
        .await;
        info!(node = %n.name, "registered node");
    }
    let nodes = Arc::new(Nodes::default());
    let metrics = start_metrics(args, nodes.clone()).await?;
    let (nodes_ready_tx, nodes_ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(node::run(
        client.clone(),
        nodes.clone(),
        builtin,
        Heartbeats {
            lease_renew: args.lease_renew,
            status_every: args.status_every,
        },
        nodes_ready_tx,
    ));
    retry("ensuring storage classes", || {
        classes::ensure_classes(&client)
    })
    .await;
    retry("ensuring the CSIDriver", || attach::ensure_driver(&client)).await;

    let recorder = Recorder::new(client.clone());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(4);
    let (resize, resize_queue) = resize::channel();
    let storage = storage::start(
        client.clone(),
        recorder.clone(),
        ready_tx.clone(),
        resize.clone(),
    );
    let attachments = attach::start(
        client.clone(),
        args.attach_delay,
        storage.changes_tx.clone(),
        ready_tx,
    );
    resize::start(
        client.clone(),
        recorder.clone(),
        resize::Caches {
            claims: storage.claims.clone(),
            volumes: storage.volumes.clone(),
            classes: storage.classes,
        },
        resize_queue,
    );
    let timing = Timing {
        ready_delay: args.ready_delay,
        delete_delay: args.delete_delay,
        crash_interval: args.crash_interval,
    };
    let (mut ctx, pod_writer) = PodCtx::new(
        client,
        nodes,
        timing,
        recorder,
        Caches {
            claims: storage.claims,
            volumes: storage.volumes,
            attachments,
            claim_changes: storage.claim_changes,
        },
    );
    ctx.scheduling = !args.no_scheduler;
    ctx.resize = Some(resize);
    ctx.metrics = metrics;
    let ctx = Arc::new(ctx);
    let (pods_ready_tx, pods_ready_rx) = tokio::sync::oneshot::channel();
    nodes_ready_rx.await.context("node watch stopped")?;
    tokio::spawn(pods::run(ctx, pod_writer, pods_ready_tx));

    for _ in 0..4 {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    pods_ready_rx.await.context("pod watch stopped")?;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let config = client_config(&args).await.context("loading kube config")?;
    info!(
        server = %config.cluster_url,
        nodes = args.nodes,
        scheduler = !args.no_scheduler,
        ready_delay = %humantime::format_duration(args.ready_delay),
        delete_delay = %humantime::format_duration(args.delete_delay),
        crash_interval = %humantime::format_duration(args.crash_interval),
        lease_renew = %humantime::format_duration(args.lease_renew),
        status_every = %humantime::format_duration(args.status_every),
        attach_delay = %humantime::format_duration(args.attach_delay),
        "starting"
    );
    let mut config = config;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    let client = Client::try_from(config).context("building kube client")?;

    let signal = shutdown_signal();
    tokio::pin!(signal);
    tokio::select! {
        res = start(&args, client) => {
            res?;
            info!(nodes = args.nodes, "sim-kubelet ready");
        }
        sig = &mut signal => {
            info!("received {}, exiting", sig?);
            return Ok(());
        }
    }
    let sig = signal.await?;
    info!("received {sig}, exiting");
    Ok(())
}
