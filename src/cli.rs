//! Command-line definitions: kubectl's global flags plus one struct per subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::canary::SettingsFlags;
pub use crate::plan::canary::{OnFailure, Order};
pub use crate::plan::resize::SizeRequest;
pub use crate::render::Output;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-sts_safe",
    bin_name = "kubectl sts-safe",
    version,
    about = "Safe StatefulSet operations: health-gated canary rollouts, scaling and PVC clean-up",
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 error, 2 usage error, 3 a health gate or safety check stopped the operation, 130 interrupted.",
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every kubectl user expects, spelled as kubectl spells them.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (else $KUBECONFIG, else ~/.kube/config, else in-cluster)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else "default")
    #[arg(short = 'n', long, global = true, value_name = "NAME", value_parser = parse_namespace)]
    pub namespace: Option<String>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Timeout of a single API request, e.g. 10s or 1m (0 = none)
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Log to stderr; repeat for more detail (-v info, -vv debug, -vvv trace). Secrets are never logged.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Disable colors (also honoured: the NO_COLOR environment variable)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DryRun {
    /// Really do it
    #[default]
    None,
    /// Print the plan, send nothing
    Client,
    /// Print the plan and let the API server validate the first write (dryRun=All)
    Server,
}

/// Flags shared by commands that write.
#[derive(Debug, Args, Clone)]
pub struct MutateArgs {
    /// Do not prompt; answer yes to confirmations
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Only print the plan (client) or also validate it on the server (server)
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "client", default_value = "none")]
    pub dry_run: DryRun,
    /// Take the StatefulSet's lock from the run that holds it, after a confirmation naming that run (with --yes: without asking)
    #[arg(long)]
    pub break_lock: bool,
}

/// For commands that change the StatefulSet itself.
#[derive(Debug, Args, Clone)]
pub struct OwnerArgs {
    /// Write even though a controller (an operator's custom resource) owns the StatefulSet
    #[arg(long)]
    pub allow_owned: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the state of a StatefulSet (replicas, revisions, one row per ordinal, orphan PVCs), or list every StatefulSet one line each
    #[command(
        after_help = "Examples:\n  kubectl sts-safe status redis\n  kubectl sts-safe status redis -n production -o json\n  kubectl sts-safe status redis --watch\n  kubectl sts-safe status                  # every StatefulSet in the namespace, one line each\n  kubectl sts-safe status -A -o json       # every StatefulSet in every namespace\n\nWithout NAME, one line per StatefulSet (a NAMESPACE column first with -A): READY is\nready/desired; REVISION is `converged` (`converged, partition P` when a partition is set),\n`rollout pending, N/M updated`, `partition P, N/M updated` (a canary held at a partition),\n`OnDelete pending, N/M updated` or `not observed yet`; ORPHAN PVCS counts the claims outside the\nlive ordinals (and their size); FINDINGS counts what `doctor NAME` reports. --watch redraws the\nlist when a StatefulSet, pod or PVC changes. A NAME cannot be combined with -A (exit 2)."
    )]
    Status(StatusArgs),
    /// Check StatefulSets for the problems people run into, each with a fix
    #[command(
        after_help = "Examples:\n  kubectl sts-safe doctor redis\n  kubectl sts-safe doctor -n production -o json   # every StatefulSet in the namespace\n  kubectl sts-safe doctor -A                      # every StatefulSet in every namespace\n\nWith -A the findings are grouped by namespace (each JSON finding has its namespace).\nA NAME cannot be combined with -A (exit 2). Exit code 3 when any error-level finding exists."
    )]
    Doctor(DoctorArgs),
    /// Roll out a new template partition by partition, top ordinal first, gated on health
    #[command(
        after_help = "Examples:\n  kubectl sts-safe canary redis --image redis=redis:7.4-alpine\n  kubectl sts-safe canary redis --image redis:7.4-alpine --steps 1,50%,100% --soak 30s --yes\n  kubectl sts-safe canary redis --patch new-template.yaml --check-cmd 'redis-cli -h $POD_FQDN ping'\n  kubectl sts-safe canary redis --resume\n\n--steps lists cumulative targets: each entry is how many pods (or what percentage of replicas,\nrounded up) run the new revision once that step is done. Default: one more pod per step."
    )]
    Canary(Box<CanaryArgs>),
    /// Undo a pending or failed rollout: restore the current revision and replace stuck pods
    #[command(
        after_help = "Examples:\n  kubectl sts-safe rollback redis\n  kubectl sts-safe rollback redis --yes"
    )]
    Rollback(RollbackArgs),
    /// Scale step by step, showing which pods and which disks come and go
    #[command(
        after_help = "Examples:\n  kubectl sts-safe scale redis --replicas 5\n  kubectl sts-safe scale redis --replicas 2 --dry-run\n  kubectl sts-safe scale redis --replicas 0 --yes --allow-zero"
    )]
    Scale(ScaleArgs),
    /// Find and delete the PVCs that StatefulSet scale-down truly orphaned
    #[command(
        name = "prune-pvcs",
        after_help = "Examples:\n  kubectl sts-safe prune-pvcs redis\n  kubectl sts-safe prune-pvcs -A --dry-run -o json\n  kubectl sts-safe prune-pvcs --older-than 7d --yes\n\nA PVC is proposed only when its name is <template>-<statefulset>-<ordinal>, the ordinal is outside\nthe live range, no pod mounts it and it is not being deleted. Each one is re-checked just before\nits delete, which carries the plan's uid and resourceVersion as preconditions.\n--dry-run=server re-checks and validates every delete on the server without asking.\nExit codes: 0 all planned PVCs deleted (or nothing to prune), 3 something was skipped for safety, 130 interrupted."
    )]
    PrunePvcs(PruneArgs),
    /// Grow the volumes of a StatefulSet (its PVCs and its volumeClaimTemplates) without restarting a pod
    #[command(
        name = "resize-pvcs",
        after_help = "Examples:\n  kubectl sts-safe resize-pvcs redis --size 20Gi --dry-run\n  kubectl sts-safe resize-pvcs redis --size data=20Gi --yes\n  kubectl sts-safe resize-pvcs db --size data=100Gi --size wal=20Gi --restart-pods\n  kubectl sts-safe resize-pvcs redis --resume\n\nEach claim is grown in place, top ordinal first, waiting until its capacity is reached. The\nStatefulSet is then deleted with propagationPolicy=Orphan (pods keep running) and created again\nwith the new templates, from a copy kept in the configmap sts-safe-resize-<name> until the end:\nan interrupted run is finished by --resume or a plain re-run.\nExit codes: 0 done (or nothing to resize), 2 bad size or template, 3 a safety check or a failed\nexpansion stopped it, 130 interrupted."
    )]
    ResizePvcs(ResizeArgs),
    /// Bring back StatefulSet pods stranded on a lost node, with evidence and fencing, without split brain
    #[command(
        after_help = "Examples:\n  kubectl sts-safe recover redis --dry-run\n  kubectl sts-safe recover redis --fence-cmd 'ipmitool -H \"$NODE_NAME-bmc\" chassis power off'\n  kubectl sts-safe recover redis redis-1 --min-down 5m\n  kubectl sts-safe recover --untaint worker-3        # once the node is back\n\nA pod is stranded when its node is not Ready (or its Lease stopped) and the pod is Terminating past\nits grace period or still Running there. The node must have been silent for --min-down. Before any\nwrite the node must be confirmed off: --fence-cmd exiting 0 (run with NODE_NAME set), or, on a\nterminal, typing the node's name; --yes alone is never enough. Methods: out-of-service (1.26+,\nwhat auto picks there) taints the node node.kubernetes.io/out-of-service=nodeshutdown:NoExecute,\nnode-wide; force-delete deletes the pod with grace period 0 and waits for the attach/detach\ncontroller's force detach (6m), or deletes the VolumeAttachments by hand with --delete-attachments.\nExit codes: 0 recovered (or nothing stranded), 2 bad flags, 3 refused or stopped for safety with\nnothing written (or a replacement that failed), 130 interrupted (re-run to resume)."
    )]
    Recover(RecoverArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  source <(kubectl sts-safe completion bash)    # completes the kubectl-sts_safe command\n  kubectl sts-safe completion zsh > \"${fpath[1]}/_kubectl-sts_safe\"\n\nThe scripts complete the plugin's own executable name (kubectl-sts_safe). `kubectl sts-safe <TAB>`\nis completed by kubectl itself (1.26+) through the executable kubectl_complete-sts_safe, installed\nnext to kubectl-sts_safe: nothing to source beyond kubectl's own completion."
    )]
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// StatefulSet name (default: list every StatefulSet in the namespace, one line each)
    #[arg(value_parser = parse_name)]
    pub name: Option<String>,
    /// List the StatefulSets of every namespace (not with a NAME)
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Re-render on every change until Ctrl-C
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// StatefulSet name (default: every StatefulSet in the namespace)
    #[arg(value_parser = parse_name)]
    pub name: Option<String>,
    /// Check every StatefulSet in every namespace (not with a NAME)
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// kubectl's refusal of a NAME together with -A (a usage error, exit 2).
pub const NAME_WITH_ALL_NAMESPACES: &str = "a resource cannot be retrieved by name across all namespaces: drop -A/--all-namespaces or give -n NAMESPACE";

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// StatefulSet name
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// New image, as IMAGE (single container) or CONTAINER=IMAGE; repeatable
    #[arg(long = "image", value_name = "[CONTAINER=]IMAGE", conflicts_with_all = ["patch"])]
    pub images: Vec<String>,
    /// Strategic-merge patch for the pod template (YAML or JSON file with the template's fields, e.g. spec.containers)
    #[arg(long, value_name = "FILE")]
    pub patch: Option<PathBuf>,
    /// Continue a rollout that is already pending; gates and steps not given again are those of the run that started it
    #[arg(long, conflicts_with_all = ["images", "patch"])]
    pub resume: bool,
    /// Cumulative step targets: counts or percentages of replicas, e.g. 1,1,50%,100% (default: one pod per step)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub steps: Option<Vec<String>>,
    /// Extra time each pod must stay Ready before it passes its gate, added to minReadySeconds [default: 0s]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub soak: Option<Duration>,
    /// How long one step may take before it fails [default: 5m]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub step_timeout: Option<Duration>,
    /// Container restarts tolerated per updated pod [default: 0]
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<i32>,
    /// Command run locally (sh -c) per updated pod; env: POD_NAME POD_ORDINAL NAMESPACE POD_FQDN
    #[arg(long, value_name = "CMD")]
    pub check_cmd: Option<String>,
    /// What to do when a gate fails [default: pause]
    #[arg(long, value_enum)]
    pub on_failure: Option<OnFailure>,
    /// PromQL that stops the canary as soon as it returns any sample for an updated pod, as an alerting rule fires; placeholders $POD $NAMESPACE $STATEFULSET $ORDINAL $REVISION; repeatable
    #[arg(long = "fail-if", value_name = "PROMQL")]
    pub fail_if: Vec<String>,
    /// PromQL that must return a sample before an updated pod passes, e.g. 'up{pod="$POD"} == 1'; repeatable
    #[arg(long = "require", value_name = "PROMQL")]
    pub require: Vec<String>,
    /// How often the metric gate evaluates each updated pod, from its Ready on [default: 10s]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub metric_interval: Option<Duration>,
    /// Evaluations in a row that must pass before a pod passes [default: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub metric_passes: Option<u32>,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// Order of the pods: ordinal (highest first, by partition) or primary-last (replicas first, by deleting pods under OnDelete) [default: ordinal]
    #[arg(long, value_enum)]
    pub order: Option<Order>,
    /// With --order primary-last: the primary is the pod with this label, e.g. role=primary
    #[arg(long, value_name = "LABEL=VALUE", conflicts_with = "role_cmd")]
    pub primary_selector: Option<String>,
    /// With --order primary-last: run per pod (sh -c, env as --check-cmd); the pod that prints "primary" is the primary
    #[arg(long, value_name = "CMD")]
    pub role_cmd: Option<String>,
    /// Run before a pod is taken down (e.g. switch the primary over); non-zero stops before touching it
    #[arg(long, value_name = "CMD")]
    pub before_pod: Option<String>,
    /// Run after a pod passed its gates; non-zero stops the canary there
    #[arg(long, value_name = "CMD")]
    pub after_pod: Option<String>,
    /// Start even though some pods are not Ready
    #[arg(long)]
    pub allow_unready: bool,
    #[command(flatten)]
    pub owner: OwnerArgs,
    #[command(flatten)]
    pub mutate: MutateArgs,
}

impl CanaryArgs {
    /// The gate and step flags, for merging with a recorded run's settings.
    pub fn settings_flags(&self) -> SettingsFlags {
        SettingsFlags {
            steps: self.steps.clone(),
            soak: self.soak,
            step_timeout: self.step_timeout,
            max_restarts: self.max_restarts,
            check_cmd: self.check_cmd.clone(),
            on_failure: self.on_failure,
            fail_if: self.fail_if.clone(),
            require: self.require.clone(),
            metric_interval: self.metric_interval,
            metric_passes: self.metric_passes,
            prometheus: self.prometheus.url.clone(),
            prometheus_token_file: path_text(&self.prometheus.token_file),
            prometheus_ca: path_text(&self.prometheus.ca),
            order: self.order,
            primary_selector: self.primary_selector.clone(),
            role_cmd: self.role_cmd.clone(),
            before_pod: self.before_pod.clone(),
            after_pod: self.after_pod.clone(),
        }
    }
}

fn path_text(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.display().to_string())
}

/// Where the metric gate asks its queries.
#[derive(Debug, Args)]
pub struct PrometheusArgs {
    /// Prometheus base URL for --fail-if/--require, e.g. http://prometheus.monitoring:9090
    #[arg(long = "prometheus", value_name = "URL", env = "STS_SAFE_PROMETHEUS")]
    pub url: Option<String>,
    /// File holding a bearer token sent to Prometheus
    #[arg(long = "prometheus-token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Header sent to Prometheus with every query, as 'NAME: VALUE'; repeatable (not recorded for --resume)
    #[arg(long = "prometheus-header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// CA certificate (PEM) to verify Prometheus' TLS certificate, instead of the system's
    #[arg(long = "prometheus-ca", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// StatefulSet name
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// How long the rollback may wait for pods to become Ready again
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
    #[command(flatten)]
    pub owner: OwnerArgs,
    #[command(flatten)]
    pub mutate: MutateArgs,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// StatefulSet name
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Desired number of replicas
    #[arg(long, value_parser = parse_replicas, allow_negative_numbers = true)]
    pub replicas: i32,
    /// Pods added or removed per step
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub step: i32,
    /// How long one step may take before it fails
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub step_timeout: Duration,
    /// Time each new pod must stay Ready before the next step
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub soak: Duration,
    /// Scale even though pods are not Ready or a rollout is pending
    #[arg(long)]
    pub force: bool,
    /// Required, with --yes, to scale to 0 without a terminal
    #[arg(long)]
    pub allow_zero: bool,
    #[command(flatten)]
    pub owner: OwnerArgs,
    #[command(flatten)]
    pub mutate: MutateArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only this StatefulSet's PVCs (with --include-deleted: a deleted StatefulSet's PVCs)
    #[arg(value_parser = parse_name)]
    pub name: Option<String>,
    /// Look in every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Also list PVCs of StatefulSets that no longer exist: a separate group with its own confirmation (--yes confirms it too)
    #[arg(long)]
    pub include_deleted: bool,
    /// Also consider StatefulSets scaled to 0 (their PVCs are otherwise never proposed)
    #[arg(long)]
    pub include_scaled_to_zero: bool,
    /// Only PVCs older than this, e.g. 7d
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub older_than: Option<Duration>,
    /// Label selector the PVCs must match, e.g. app=redis
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    #[command(flatten)]
    pub mutate: MutateArgs,
}

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// StatefulSet name
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// New size of a claim template, as SIZE (single template) or TEMPLATE=SIZE; repeatable
    #[arg(long = "size", value_name = "[TEMPLATE=]SIZE", value_parser = parse_size_request)]
    pub sizes: Vec<SizeRequest>,
    /// Delete, one at a time, each pod whose volume waits for a restart to finish growing (offline expansion)
    #[arg(long)]
    pub restart_pods: bool,
    /// Also grow the PVCs kept from a scale-down (default), so a later scale-up does not bring back the old size
    #[arg(long, overrides_with = "no_include_orphans")]
    pub include_orphans: bool,
    /// Leave the PVCs outside the live ordinals at their size
    #[arg(long, overrides_with = "include_orphans")]
    pub no_include_orphans: bool,
    /// How long each claim, the re-create and each pod restart may take
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// Finish an interrupted resize (a plain re-run with the same sizes does too)
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub owner: OwnerArgs,
    #[command(flatten)]
    pub mutate: MutateArgs,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// StatefulSet name
    #[arg(value_parser = parse_name, required_unless_present = "untaint")]
    pub name: Option<String>,
    /// Pods to recover (default: every stranded pod of the StatefulSet)
    #[arg(value_name = "POD", value_parser = parse_name)]
    pub pods: Vec<String>,
    /// Command run locally (sh -c) once per lost node, with NODE_NAME set; exit 0 confirms the node is powered off or fenced
    #[arg(long, value_name = "CMD")]
    pub fence_cmd: Option<String>,
    /// How long the node must have been silent (no heartbeat, no Lease renewal)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "2m")]
    pub min_down: Duration,
    /// out-of-service (Kubernetes 1.26+), force-delete, or auto (out-of-service where the server has it)
    #[arg(long, value_enum, default_value = "auto")]
    pub method: RecoverMethod,
    /// force-delete: delete the lost node's VolumeAttachments by hand instead of waiting for the controller's force detach (only the attach/detach controller should: a wrong detach can corrupt data)
    #[arg(long)]
    pub delete_attachments: bool,
    /// Remove the out-of-service taint from NODE once it is back and Ready
    #[arg(long, value_name = "NODE", value_parser = parse_name, conflicts_with_all = ["name", "fence_cmd", "delete_attachments"])]
    pub untaint: Option<String>,
    /// How long each pod may take to come back
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    #[command(flatten)]
    pub mutate: MutateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecoverMethod {
    Auto,
    OutOfService,
    ForceDelete,
}

impl ResizeArgs {
    pub fn include_orphans(&self) -> bool {
        !self.no_include_orphans
    }
}

fn parse_size_request(s: &str) -> Result<SizeRequest, String> {
    crate::plan::resize::parse_size(s)
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A StatefulSet name: a DNS-1123 subdomain, so it can never address another API path.
pub fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "\"{s}\" is not a valid StatefulSet name (lowercase letters, digits, '-' and '.', at most 253 characters)"
        ))
    }
}

/// A namespace: a DNS-1123 label.
pub fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "\"{s}\" is not a valid namespace name (lowercase letters, digits and '-', at most 63 characters)"
        ))
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h30m, 7d)"))
}

fn parse_replicas(s: &str) -> Result<i32, String> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("{n} is negative: replicas must be 0 or more")),
        Ok(n) if n > i32::MAX as i64 => Err(format!("{n} is too large")),
        Ok(n) => Ok(n as i32),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-sts_safe").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let a = parse(&[
            "-n",
            "prod",
            "--context",
            "c",
            "status",
            "redis",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(a.global.namespace.as_deref(), Some("prod"));
        assert_eq!(a.global.context.as_deref(), Some("c"));
        assert_eq!(a.global.output, Output::Json);
        let b = parse(&["status", "redis", "--namespace=prod", "--kubeconfig", "/k"]).unwrap();
        assert_eq!(b.global.namespace.as_deref(), Some("prod"));
        assert_eq!(
            b.global.kubeconfig.as_deref(),
            Some(std::path::Path::new("/k"))
        );
    }

    #[test]
    fn dry_run_follows_kubectl() {
        let c = |args: &[&str]| match parse(args).unwrap().command {
            Command::Scale(s) => s.mutate.dry_run,
            _ => unreachable!(),
        };
        assert_eq!(c(&["scale", "r", "--replicas", "2"]), DryRun::None);
        assert_eq!(
            c(&["scale", "r", "--replicas", "2", "--dry-run"]),
            DryRun::Client
        );
        assert_eq!(
            c(&["scale", "r", "--replicas", "2", "--dry-run=server"]),
            DryRun::Server
        );
        assert!(parse(&["scale", "r", "--replicas", "2", "--dry-run=maybe"]).is_err());
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["rollback"][..],
            &["status", "r", "-o", "xml"],
            &["scale", "r", "--replicas", "-1"],
            &["scale", "r", "--replicas", "two"],
            &["scale", "r", "--replicas", "3", "--step", "0"],
            &["canary", "r", "--image", "x", "--resume"],
            &["canary", "r", "--soak", "soon"],
            &["status", "r", "--request-timeout", "fast"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} should fail"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn names_that_could_address_another_path_are_usage_errors() {
        for bad in [
            "redis/status",
            "redis?x=1",
            "redis#f",
            "Redis",
            "-redis",
            "redis-",
            "a..b",
            "rédis",
            &"a".repeat(254),
        ] {
            assert!(parse(&["status", bad]).is_err(), "{bad}");
        }
        for good in ["redis", "redis-0", "web.v2", "a"] {
            assert!(parse(&["status", good]).is_ok(), "{good}");
        }
        assert!(parse(&["status", "redis", "-n", "bad/ns"]).is_err());
        assert!(parse(&["status", "redis", "-n", &"n".repeat(64)]).is_err());
    }

    #[test]
    fn status_and_doctor_take_all_namespaces_and_status_lists_without_a_name() {
        let status = |args: &[&str]| match parse(args).unwrap().command {
            Command::Status(s) => (s.name, s.all_namespaces, s.watch),
            _ => unreachable!(),
        };
        assert_eq!(status(&["status"]), (None, false, false));
        assert_eq!(status(&["status", "-A", "-w"]), (None, true, true));
        assert_eq!(status(&["status", "--all-namespaces"]), (None, true, false));
        // Refused when the command runs (exit 2), with kubectl's words.
        assert_eq!(
            status(&["status", "redis", "-A"]),
            (Some("redis".into()), true, false)
        );
        match parse(&["doctor", "-A"]).unwrap().command {
            Command::Doctor(d) => assert!(d.all_namespaces && d.name.is_none()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn verbosity_counts() {
        assert_eq!(parse(&["-vvv", "status", "r"]).unwrap().global.verbose, 3);
    }

    #[test]
    fn durations_accept_days_and_zero() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("-1s").is_err());
    }
}
