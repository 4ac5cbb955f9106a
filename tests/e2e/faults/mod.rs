//! Fault injection against the local control plane. `make test` runs the short version;
//! `make faults` runs the long one (`STS_SAFE_FAULT_TRIALS=50`, one test at a time).
//!
//! Every scenario checks the safety invariants on what an independent watch recorded
//! ([`Recorder`](crate::support::Recorder) in tests/support/recorder.rs: the namespace's
//! pods, StatefulSets and PVCs). Events are ordered by resourceVersion, which etcd assigns
//! from one global counter, so the order across the three watches is the order in which
//! the writes happened:
//! - never more pods of `[0, replicas)` unavailable at one moment than the step allows;
//! - the partition is lowered from `q` to `p` only while every ordinal `>= q` is available
//!   on the update revision (a write that also changes the template must be the freeze,
//!   partition >= replicas, or a rollback to the template recorded before the run);
//! - no PVC is deleted while its ordinal is live or while a pod mounts it;
//! - no lost update: the final template is the one asked for, and changes made by other
//!   clients survive.
//!
//! Scenarios and trial counts (`N` = `STS_SAFE_FAULT_TRIALS`, default 5), one module each:
//! 1. [`kill`]: `kill -9` of `canary` at random points (before/after the freeze patch,
//!    during a step): N trials, then `canary --resume` (or the same command) completes;
//!    `kill -9` of `rollback`: ceil(N/2) trials, then `rollback` again; plus the exact
//!    state a kill between rollback's write and its stuck-pod delete leaves.
//! 2. [`restart`]: kube-apiserver restarts (`scripts/cluster.sh restart-apiserver`)
//!    mid-canary and mid-scale: 3 by default, 20 with N=50 (`restart_trials`).
//! 3. [`races`]: races with other clients: template, replicas, a pod deleted, two copies of
//!    the plugin, a scale-up between prune's plan and its deletes (ceil(N/5) concurrent
//!    trials + one through the prompt).
//! 4. [`bad_input`]: a table of bad input (flags, values, names, namespaces, contexts,
//!    kubeconfigs, credentials, an unreachable server, 403 for each verb, OnDelete,
//!    partition > replicas, replicas 0, …): one clear line, the documented exit code,
//!    resourceVersion unchanged.
//! 5. [`privilege`]: least privilege: every write path as `sts-safe-limited` with only
//!    deploy/rbac.yaml, at -vvv, and no key, certificate or bearer token ever in the output.
//! 6. [`lock`]: two canaries on one StatefulSet with random offsets (4N trials): exactly
//!    one writes, the other exits 3 naming it. The lock's other faults live with their
//!    kind: `kill -9` of the holder (3 s leases: the next run takes the lock over once it
//!    ran out) in [`kill`], the API server away longer than the lease in [`restart`].
//! 7. [`resize`]: `kill -9` of `resize-pvcs` at max(4N, 20) points, every fourth at the
//!    StatefulSet's delete (before its create), then a plain re-run completes with no pod
//!    deleted; a spec edit while the claims grow stops it before the delete. An API-server
//!    restart mid-resize is in [`restart`].
//! 8. [`recover`]: `kill -9` of `recover` at random points in 10 trials, each losing a
//!    node of its own (concurrently), then a re-run (half of them breaking the dead run's
//!    lock) completes: the pod is back on the live node with its volume, attached to one
//!    node only, and the plugin never deleted any pod but the stranded one.
//! 9. [`metrics`]: the canary's Prometheus stopped mid-step (`scripts/cluster.sh
//!    prometheus-stop`): the gate fails with the server's error, the partition stays, and
//!    with Prometheus back the recorded gate resumes the canary to the end.
//! 10. [`ondelete`]: `kill -9` of a `--order primary-last` canary (OnDelete mechanism)
//!     at random points in 10 concurrent trials, each on a StatefulSet of its own: the
//!     same command again restores the original
//!     strategy (maxUnavailable included) and completes, never more than one pod down.
//!
//! Random kill points and restart times come from a seed printed by each test; set
//! `STS_SAFE_FAULT_SEED` to replay them.
//!
//! Isolation of the apiserver restarts ([`restart`]): a restart breaks every request in
//! flight, so the restart test first waits until no other test namespace (`t-*`, Active,
//! younger than 30 minutes, from this or any other test process) exists and no plugin
//! process it did not start runs (a benchmark, a demo) for 3 s, and checks again before
//! each restart; restart tests of different processes take a file lock. In `make faults`
//! (`--test-threads 1`) it never waits; in `make test` it waits for the rest of the e2e
//! binary to finish (libtest starts no new test once its queue is empty), then runs the
//! short version alone.
//!
//! This file holds what the families share: trial counts and seeds, running the plugin,
//! reading the cluster, the expectations on a converged rollout, and kubeconfig files.

mod bad_input;
mod kill;
mod lock;
mod metrics;
mod ondelete;
mod privilege;
mod races;
mod recover;
mod resize;
mod restart;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::ResourceExt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sts_safe::model;

use crate::support::{images_of, kubeconfig, template_of, Run, TestNs, PLUGIN};

const ADMIN: &str = "sts-safe-admin";
const LIMITED: &str = "sts-safe-limited";
const WAIT: Duration = Duration::from_secs(90);

// ---- configuration -----------------------------------------------------------------------

/// `STS_SAFE_FAULT_TRIALS` (default 5): kill trials per scenario.
fn fault_trials() -> usize {
    match std::env::var("STS_SAFE_FAULT_TRIALS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("STS_SAFE_FAULT_TRIALS={v:?} is not a whole number"))
            .max(1),
        _ => 5,
    }
}

/// Apiserver restarts: 20 for N=50, 3 for the default N=5 (about 2N/5, at least min(N, 3)).
fn restart_trials() -> usize {
    let n = fault_trials();
    ((2 * n).div_ceil(5)).max(n.min(3))
}

fn seeded(test: &str, trials: usize) -> StdRng {
    let seed = std::env::var("STS_SAFE_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: {trials} trial(s), seed {seed} (STS_SAFE_FAULT_SEED={seed} replays it)");
    StdRng::seed_from_u64(seed)
}

// ---- running the plugin --------------------------------------------------------------------

/// Namespaces whose plugin runs hold 3 s leases (`STS_SAFE_LEASE_DURATION`): a killed
/// holder's lock runs out in 3 s + 5 s instead of 35 s.
static SHORT_LEASE: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn use_short_lease(ns: &TestNs) {
    SHORT_LEASE.lock().unwrap().insert(ns.name.clone());
}

/// The holder of redis's lock in `ns`, if a lease is there.
async fn lock_of(ns: &TestNs) -> Option<String> {
    let l = ns
        .api::<k8s_openapi::api::coordination::v1::Lease>()
        .get_opt("sts-safe-redis")
        .await
        .unwrap()?;
    l.spec?.holder_identity
}

async fn wait_partition(ns: &TestNs, p: i32) {
    ns.eventually(WAIT, &format!("partition {p}"), || async {
        let s = ns.api::<StatefulSet>().get("redis").await.ok()?;
        (model::partition(&s) == p).then_some(())
    })
    .await;
}

/// Waits until the lock a killed run left on redis counts as abandoned by the plugin's
/// own rule (`renewTime` + the lease's duration + `plan::lease::SKEW`), so the next run
/// is not refused by it. Returns at once when no lease is held.
async fn wait_lock_lapsed(ns: &TestNs) {
    let Ok(Some(lease)) = ns
        .api::<k8s_openapi::api::coordination::v1::Lease>()
        .get_opt("sts-safe-redis")
        .await
    else {
        return;
    };
    let Some(spec) = lease.spec.filter(|s| s.holder_identity.is_some()) else {
        return;
    };
    let (Some(renewed), Some(secs)) = (spec.renew_time, spec.lease_duration_seconds) else {
        return;
    };
    let lapses = renewed.0
        + Duration::from_secs(secs as u64)
        + sts_safe::plan::lease::SKEW
        + Duration::from_millis(500);
    let left = lapses.duration_since(k8s_openapi::jiff::Timestamp::now());
    if left.is_positive() {
        tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
    }
}

/// What a run refused by another's lock says.
const LOCKED: &str = "is being changed by";

fn plugin_cmd(ns: &TestNs, context: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(PLUGIN);
    if SHORT_LEASE.lock().unwrap().contains(&ns.name) {
        cmd.env("STS_SAFE_LEASE_DURATION", "3s");
    }
    cmd.args(args)
        .args(["-n", &ns.name, "--context", context])
        .env("KUBECONFIG", kubeconfig())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(child: tokio::process::Child, what: &[&str]) -> Run {
    match tokio::time::timeout(Duration::from_secs(300), child.wait_with_output()).await {
        Ok(out) => Run::from(out.expect("plugin output")),
        Err(_) => panic!("the plugin ({what:?}) did not finish within 300s"),
    }
}

async fn plugin(ns: &TestNs, context: &str, args: &[&str]) -> Run {
    let child = plugin_cmd(ns, context, args)
        .spawn()
        .expect("start the plugin");
    finish(child, args).await
}

/// Runs the plugin until the lock of a killed run has run out: a refusal naming that
/// run's lock is waited out (every 500 ms, up to [`WAIT`]); the run that got through.
async fn plugin_after_lock(ns: &TestNs, context: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    loop {
        let r = plugin(ns, context, args).await;
        if r.code == 3 && r.stderr.contains(LOCKED) && started.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        return r;
    }
}

#[track_caller]
fn expect_code(r: &Run, code: i32, what: &str) {
    assert_eq!(
        r.code, code,
        "{what}: unexpected exit code\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

// ---- reading the cluster (tolerant of an apiserver that just restarted) --------------------

async fn get_sts(ns: &TestNs, name: &str) -> StatefulSet {
    let api = ns.api::<StatefulSet>();
    ns.eventually(WAIT, &format!("get statefulset {name}"), || async {
        api.get(name).await.ok()
    })
    .await
}

async fn list_pods(ns: &TestNs) -> Vec<Pod> {
    let api = ns.api::<Pod>();
    ns.eventually(WAIT, "list pods", || async {
        api.list(&ListParams::default()).await.ok().map(|l| l.items)
    })
    .await
}

fn with_image(template: &serde_json::Value, image: &str) -> serde_json::Value {
    let mut t = template.clone();
    t["spec"]["containers"][0]["image"] = image.into();
    t
}

/// Waits until every pod of `redis` is available on the update revision, the revision is
/// promoted and the partition is 0, then checks the template is exactly `template`.
async fn expect_converged(ns: &TestNs, template: &serde_json::Value, what: &str) -> StatefulSet {
    let sts = ns.wait_ready("redis", WAIT).await;
    assert_eq!(model::partition(&sts), 0, "{what}: partition back to 0");
    assert!(!model::rollout_pending(&sts), "{what}: nothing pending");
    assert_eq!(
        &template_of(&sts),
        template,
        "{what}: the template is exactly the one asked for (no lost update)"
    );
    let update = model::update_revision(&sts).unwrap_or_default().to_string();
    let want = images_of(template);
    for p in list_pods(ns).await {
        assert!(
            model::is_available(&p),
            "{what}: {} available",
            p.name_any()
        );
        assert_eq!(
            model::revision(&p),
            Some(update.as_str()),
            "{what}: {}",
            p.name_any()
        );
        assert_eq!(model::images(&p), want, "{what}: {} image", p.name_any());
    }
    sts
}

// ---- continuing as an operator would -------------------------------------------------------

/// Re-runs the canary until the plugin reports it done: `--resume` when a rollout is
/// pending (or the same `--image` command when `resume` is false), the same command when
/// nothing was written yet. Returns every run (the last one failed if its code is not 0).
async fn complete_canary(ns: &TestNs, image: &str, resume: bool) -> Vec<Run> {
    let mut runs: Vec<Run> = vec![];
    let started = Instant::now();
    while started.elapsed() < WAIT {
        let sts = get_sts(ns, "redis").await;
        let on_new = images_of(&template_of(&sts)) == [image];
        let pending = model::rollout_pending(&sts);
        if on_new && !pending && model::partition(&sts) == 0 && model::observed(&sts) {
            return runs;
        }
        let args: Vec<&str> = if on_new && pending && resume {
            vec!["canary", "redis", "--resume", "--yes"]
        } else if !on_new || pending {
            vec!["canary", "redis", "--image", image, "--yes"]
        } else {
            // The freeze is written but the controller has not reported the new revision.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let r = plugin_after_lock(ns, ADMIN, &args).await;
        let failed = r.code != 0;
        runs.push(r);
        if failed || runs.len() >= 3 {
            return runs;
        }
    }
    runs
}

#[track_caller]
fn expect_all_ok(runs: &[Run], what: &str) {
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(
            r.code,
            0,
            "{what}: re-run {} failed\nstdout:\n{}\nstderr:\n{}",
            i + 1,
            r.stdout,
            r.stderr
        );
    }
}

async fn scale_with_kubectl(ns: &TestNs, replicas: i32) {
    ns.kubectl(&[
        "scale",
        "statefulset",
        "redis",
        &format!("--replicas={replicas}"),
    ])
    .expect_code(0);
    ns.eventually(WAIT, &format!("{replicas} pods"), || async {
        (ns.pods().await.len() == replicas as usize).then_some(())
    })
    .await;
    ns.wait_ready("redis", WAIT).await;
}

// ---- kubeconfig files (bad input, bearer tokens) -------------------------------------------

/// A private directory for a test's files (kubeconfigs with credentials), removed on drop.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(ns: &TestNs) -> TempDir {
    use std::os::unix::fs::DirBuilderExt;
    let d = std::env::temp_dir().join(format!("sts-safe-faults-{}", ns.name));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .unwrap();
    TempDir(d)
}

/// The local cluster's server URL and CA data, from the kubeconfig.
fn cluster_entry() -> (String, String) {
    let kc: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
    let c = &kc["clusters"][0]["cluster"];
    (
        c["server"].as_str().unwrap().to_string(),
        c["certificate-authority-data"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

fn write_kubeconfig(dir: &Path, file: &str, server: &str, ca: Option<&str>, user: &str) -> PathBuf {
    let ca = ca
        .map(|c| format!(", certificate-authority-data: \"{c}\""))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"{ca}}}}}]\n\
         users: [{{name: u, user: {user}}}]\ncontexts: [{{name: faults, context: {{cluster: c, user: u}}}}]\n\
         current-context: faults\n"
    );
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}
