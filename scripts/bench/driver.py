#!/usr/bin/env python3
"""`make bench`: measures kubectl sts-safe against the local cluster and writes
bench/RESULTS.md. Run through scripts/bench.sh, which builds the release binary and makes
sure the cluster runs. Request counts and timings of server-side events come from the
kube-apiserver's audit log; wall times of whole processes from here, their peak RSS from
GNU time (see `measure`).

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import datetime
import json
import os
import pickle
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit  # noqa: E402
import ecosystem as ecosystem_bench  # noqa: E402
import metrics as metrics_bench  # noqa: E402
import recover as recover_bench  # noqa: E402
import resize as resize_bench  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NS = "sts-safe-bench"
PRUNE_PREFIX = "sts-safe-bench-prune-"
STS = "redis"
IMAGES = ("redis:7.2-alpine", "redis:7.4-alpine")
PLUGIN_UA = "kubectl-sts-safe"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- processes


@dataclass
class Proc:
    cmd: list[str]
    code: int
    wall: float  # seconds (monotonic clock)
    start: float  # Unix time
    end: float
    maxrss_kb: int
    stdout: str = ""


# GNU time reports the peak RSS of the measured process itself. wait4(2) on a child of
# this driver cannot: exec(2) records the address space it replaces in the process's peak,
# and a child forked (or vforked) from Python replaces a copy of the driver's own 60+ MiB,
# so every figure under that was read as the driver's size.
GNU_TIME = "/usr/bin/time"


def measure(cmd: list[str], env: dict | None = None, stdout_path: str | None = None,
            stdin=subprocess.DEVNULL) -> Proc:
    """Runs `cmd` to completion: wall time (here) and peak RSS (GNU time's %M, in KiB)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = open(stdout_path + ".err", "wb") if stdout_path else subprocess.DEVNULL
    fd, rss_path = tempfile.mkstemp(prefix="bench-rss-")
    os.close(fd)
    try:
        start = time.time()
        t0 = time.perf_counter()
        p = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", rss_path, *cmd], stdout=out, stderr=err,
                             stdin=stdin, env=env)
        _, status, _ = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        with open(rss_path) as f:
            # A non-zero exit puts "Command exited with non-zero status N" before the figure.
            lines = f.read().split()
        maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    finally:
        if stdout_path:
            out.close()
            err.close()
        os.remove(rss_path)
    return Proc(cmd, p.returncode, wall, start, start + wall, maxrss)


TRANSIENT = ("connection refused", "was refused", "EOF", "connection reset", "ServiceUnavailable",
             "the server is currently unable", "etcdserver", "TLS handshake timeout", "i/o timeout",
             "the server has received too many requests", "Internal error occurred")


def kubectl(*args: str, input: str | None = None, check: bool = True, timeout: float = 300) -> str:
    """Runs kubectl; retries for up to 2 minutes while the API server is unreachable (other
    suites' fault tests restart it)."""
    deadline = time.time() + 120
    while True:
        r = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode == 0 or not check:
            return r.stdout
        if any(t in r.stderr for t in TRANSIENT) and time.time() < deadline:
            time.sleep(2)
            continue
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")


CLUSTER_DIR = os.environ.get("STS_SAFE_CLUSTER_DIR", os.path.expanduser("~/.cache/sts-safe/cluster"))


def apiserver_id() -> str:
    """The running kube-apiserver's pid (changes when someone restarts it)."""
    try:
        with open(os.path.join(CLUSTER_DIR, "run", "kube-apiserver.pid")) as f:
            return f.read().strip()
    except OSError:
        return ""


def wait_ready(timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["kubectl", "get", "--raw", "/readyz"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == "ok":
            return
        time.sleep(1)
    raise RuntimeError("the API server is not ready")


DISCARDED: list[str] = []


def attempt(what: str, fn, tries: int = 5):
    """Runs one measurement; repeats it when it failed or the API server was restarted
    meanwhile (by another suite's fault test), so that no sample spans a restart."""
    for i in range(tries):
        before = apiserver_id()
        try:
            result = fn()
            if apiserver_id() == before:
                return result
            log(f"{what}: the API server was restarted during the measurement; repeating it")
            DISCARDED.append(f"{what}: API server restarted")
        except Exception as e:  # noqa: BLE001
            if i + 1 == tries:
                raise
            log(f"{what}: {e}; repeating it")
            DISCARDED.append(f"{what}: {str(e)[:200]}")
        time.sleep(3)
        wait_ready()
    raise RuntimeError(f"{what}: no undisturbed measurement in {tries} tries")


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json"))


# ---------------------------------------------------------------------------- statistics


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Stat:
    xs: list[float]

    @property
    def med(self) -> float:
        return statistics.median(self.xs) if self.xs else float("nan")

    def fmt(self, f: str = "{:.3f}", unit: str = "") -> str:
        if not self.xs:
            return "n/a"
        m = f.format(self.med) + unit
        if len(self.xs) == 1:
            return m
        return (f"{m} ({f.format(min(self.xs))}–{f.format(max(self.xs))}; "
                f"IQR {f.format(pct(self.xs, .25))}–{f.format(pct(self.xs, .75))}, n={len(self.xs)})")


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


# ---------------------------------------------------------------------------- environment


def environment(plugin: str) -> dict:
    def sh(cmd: str) -> str:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return r.stdout.strip()

    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    server = ""
    try:
        server = json.loads(kubectl("version", "-o", "json")).get("serverVersion", {}).get("gitVersion", "")
    except Exception:  # noqa: BLE001
        pass
    client = ""
    try:
        client = json.loads(kubectl("version", "--client", "-o", "json"))["clientVersion"]["gitVersion"]
    except Exception:  # noqa: BLE001
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu} × {os.cpu_count()}",
        "mem": mem,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "rustc": sh("rustc --version"),
        "plugin": sh(f"{plugin} --version"),
        "commit": sh(f"git -C {REPO} rev-parse --short HEAD") + (
            " (+ uncommitted changes)" if sh(f"git -C {REPO} status --porcelain --untracked-files=no") else ""),
        "kubectl": client,
        "server": server,
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }


# ---------------------------------------------------------------------------- namespaces


def delete_namespaces(names: list[str], wait: float) -> float | None:
    """Deletes the namespaces and waits up to `wait` s; seconds taken, None on timeout."""
    existing = [n for n in names if kubectl("get", "namespace", n, "--ignore-not-found", "-o", "name").strip()]
    if not existing:
        return 0.0
    t0 = time.perf_counter()
    kubectl("delete", "namespace", *existing, "--wait=false", check=False)
    deadline = t0 + wait
    while time.perf_counter() < deadline:
        left = [n for n in existing if kubectl("get", "namespace", n, "--ignore-not-found", "-o", "name").strip()]
        if not left:
            return time.perf_counter() - t0
        time.sleep(2)
    return None


# ---------------------------------------------------------------------------- identity

BENCH_SA = "bench"
BENCH_USER = f"system:serviceaccount:{NS}:{BENCH_SA}"
BENCH_BINDING = "sts-safe-bench"


def make_identity(workdir: str) -> str:
    """A ServiceAccount of its own (bound to cluster-admin) for every measured command, so
    that the audit log attributes requests by user exactly, even while other suites run the
    plugin and kubectl against the same cluster. Returns the path of its kubeconfig."""
    kubectl("-n", NS, "create", "serviceaccount", BENCH_SA)
    kubectl("delete", "clusterrolebinding", BENCH_BINDING, "--ignore-not-found")
    kubectl("create", "clusterrolebinding", BENCH_BINDING, "--clusterrole=cluster-admin",
            f"--serviceaccount={NS}:{BENCH_SA}")
    # A token Secret of our own: the token controller fills it in on every server version
    # (servers since 1.24 no longer create one per ServiceAccount by themselves).
    secret = f"{BENCH_SA}-token"
    kubectl("-n", NS, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": secret, "annotations": {"kubernetes.io/service-account.name": BENCH_SA}},
    }))
    deadline = time.time() + 60
    encoded = ""
    while not encoded:
        encoded = kubectl("-n", NS, "get", "secret", secret, "-o", "jsonpath={.data.token}").strip()
        if not encoded:
            if time.time() > deadline:
                raise RuntimeError(f"no token in secret {NS}/{secret} for serviceaccount {BENCH_SA}")
            time.sleep(0.5)
    token = base64.b64decode(encoded).decode()
    view = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = view["clusters"][0]["cluster"]
    path = os.path.join(workdir, "bench.kubeconfig")
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sts-safe-bench",
        "clusters": [{"name": "sts-safe-local", "cluster": cluster}],
        "users": [{"name": "sts-safe-bench", "user": {"token": token}}],
        "contexts": [{"name": "sts-safe-bench",
                      "context": {"cluster": "sts-safe-local", "user": "sts-safe-bench", "namespace": "default"}}],
        "preferences": {},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    # The identity works (RBAC caches may lag the binding by a moment).
    env = dict(os.environ, KUBECONFIG=path)
    for _ in range(50):
        if subprocess.run(["kubectl", "-n", NS, "get", "statefulsets"], env=env, capture_output=True).returncode == 0:
            return path
        time.sleep(0.2)
    raise RuntimeError("the benchmark's ServiceAccount cannot read statefulsets")


# ---------------------------------------------------------------------------- canary

CANARY_YAML = """
apiVersion: v1
kind: Service
metadata: {{name: redis-headless, namespace: {ns}}}
spec:
  clusterIP: None
  selector: {{app: redis}}
  ports: [{{port: 6379, name: redis}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: redis, namespace: {ns}}}
spec:
  serviceName: redis-headless
  replicas: {replicas}
  selector: {{matchLabels: {{app: redis}}}}
  template:
    metadata:
      labels: {{app: redis}}
      annotations: {{sim.sts-safe.dev/ready-delay: {delay}}}
    spec:
      containers:
        - name: redis
          image: {image}
          ports: [{{containerPort: 6379}}]
          volumeMounts: [{{name: redis-data, mountPath: /data}}]
  volumeClaimTemplates:
    - metadata: {{name: redis-data}}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: sim-standard
        resources: {{requests: {{storage: 1Gi}}}}
"""


def settle(timeout: float = 180) -> dict:
    """Waits until the StatefulSet is fully rolled out, every pod Ready, none terminating."""
    deadline = time.time() + timeout
    while True:
        s = kubectl_json("-n", NS, "get", "statefulset", STS)
        st, spec = s.get("status", {}), s["spec"]
        n = spec["replicas"]
        ok = (st.get("observedGeneration") == s["metadata"]["generation"]
              and st.get("currentRevision") == st.get("updateRevision")
              and st.get("readyReplicas", 0) == n and st.get("updatedReplicas", 0) == n
              and st.get("currentReplicas", 0) == n)
        if ok:
            pods = kubectl_json("-n", NS, "get", "pods", "-l", "app=redis")["items"]
            if len(pods) == n and not any(p["metadata"].get("deletionTimestamp") for p in pods):
                return s
        if time.time() > deadline:
            raise RuntimeError(f"statefulset {NS}/{STS} did not settle within {timeout}s: {st}")
        time.sleep(0.3)


@dataclass
class CanaryRun:
    tool: str
    wall: float
    code: int
    requests: list  # audit.Event of the tool
    reactions: list[float] = field(default_factory=list)  # s, from the Ready write's response
    reactions_recv: list[float] = field(default_factory=list)  # s, from the Ready write's arrival
    recreate: list[float] = field(default_factory=list)  # s per pod
    controller_lag: list[float] = field(default_factory=list)  # partition PATCH → controller DELETE
    ideal: float = 0.0
    startup: float = 0.0  # process start → first request
    until_first_step: float = 0.0  # process start → first step's PATCH
    tail: float = 0.0  # last pod Ready → process exit
    conflicts: int = 0

    @property
    def overhead(self) -> float:
        return self.wall / self.ideal if self.ideal else float("nan")


def analyse_canary(tool: str, proc: Proc, events: list, replicas: int, agent: str) -> CanaryRun:
    reqs = audit.requests(events)
    mine = [e for e in reqs if e.user == BENCH_USER and e.agent == agent
            and proc.start - 0.05 <= e.received <= proc.end + 0.05]
    run = CanaryRun(tool, proc.wall, proc.code, mine)
    run.conflicts = sum(1 for e in mine if e.code == 409)
    patches = [e for e in mine if e.verb == "patch" and e.resource == "statefulsets"
               and e.subresource is None and e.name == STS and e.code == 200]
    # The shell loop also writes the template with `kubectl set image`; the partition
    # steps are the last `replicas` successful writes of the StatefulSet. Since the lock
    # (issue 13) the plugin ends with one more: the verdict annotation
    # (`sts-safe.dev/last-operation`), which is not a step.
    if tool == "plugin":
        patches = patches[:-1]
    steps = patches[-replicas:]
    if len(steps) < replicas:
        log(f"{tool}: expected {replicas} partition patches, found {len(patches)}")
        return run
    status_writes = [e for e in reqs if e.agent == "sim-kubelet" and e.namespace == NS
                     and e.resource == "pods" and e.subresource == "status"
                     and e.verb in ("patch", "update") and e.code == 200]
    deletes = [e for e in reqs if e.agent == "kube-controller-manager" and e.namespace == NS
               and e.resource == "pods" and e.subresource is None and e.verb == "delete"]
    run.startup = mine[0].received - proc.start if mine else 0.0
    run.until_first_step = steps[0].received - proc.start
    last_ready = None
    for k, patch in enumerate(steps):
        ordinal = replicas - 1 - k
        pod = f"{STS}-{ordinal}"
        nxt = steps[k + 1].received if k + 1 < len(steps) else proc.end
        dele = next((d for d in deletes if d.name == pod and d.received >= patch.received), None)
        ready = [w for w in status_writes if w.name == pod and patch.received <= w.received < nxt]
        if dele is None or not ready:
            log(f"{tool}: step {k + 1} ({pod}): delete {'found' if dele else 'missing'}, "
                f"{len(ready)} status writes")
            continue
        w = ready[-1]  # the write that made the pod Ready: the last one before the next step
        run.controller_lag.append(dele.received - patch.received)
        run.recreate.append(w.done - dele.received)
        if k + 1 < len(steps):
            run.reactions.append(steps[k + 1].received - w.done)
            run.reactions_recv.append(steps[k + 1].received - w.received)
        last_ready = w.done
    run.ideal = sum(run.recreate)
    if last_ready is not None:
        run.tail = proc.end - last_ready
    return run


def canary_bench(plugin: str, kubeconfig: str, tail: audit.Tail, runs: int, shell_runs: int, replicas: int,
                 delay: str, outdir: str, before: str | None = None) -> tuple:
    log(f"canary: namespace {NS}, statefulset {STS} with {replicas} replicas, ready delay {delay}")
    t0 = time.perf_counter()
    kubectl("apply", "-f", "-", input=CANARY_YAML.format(ns=NS, replicas=replicas, delay=delay,
                                                         image=IMAGES[0]))
    settle(300)
    setup = time.perf_counter() - t0
    log(f"canary: {replicas} pods Ready in {setup:.1f}s")
    env = dict(os.environ, NO_COLOR="1", KUBECONFIG=kubeconfig)
    plugin_runs, shell, before_runs = [], [], []
    # The binary from before the lock (if given) alternates with this one, run for run.
    plan = (["plugin", "before"] * runs if before else ["plugin"] * runs) + ["shell"] * shell_runs

    def one(i: int, tool: str) -> CanaryRun:
        try:
            s = settle()
        except RuntimeError:
            # A run cut short (API server restarted by someone else) left a rollout
            # half-way: finish it before the next attempt.
            kubectl("-n", NS, "patch", "statefulset", STS, "--type", "merge",
                    "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
            s = settle()
        time.sleep(1.0)  # let the controller's last status writes pass
        current = s["spec"]["template"]["spec"]["containers"][0]["image"]
        image = IMAGES[1] if current == IMAGES[0] else IMAGES[0]
        tail.read()  # skip everything before this run
        if tool in ("plugin", "before"):
            binary = plugin if tool == "plugin" else before
            cmd = [binary, "canary", STS, "-n", NS, "--image", f"redis={image}", "--soak", "0s", "--yes"]
            agent = PLUGIN_UA
        else:
            cmd = ["bash", os.path.join(REPO, "scripts/bench/shell-canary.sh"), NS, STS, "redis", image]
            agent = "kubectl"
        logf = os.path.join(outdir, f"canary-{i}-{tool}.log")
        proc = measure(cmd, env=env, stdout_path=logf)
        if proc.code != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.code}; see {logf}")
        time.sleep(1.0)  # audit events of the last requests
        events = tail.read(needles=(NS, BENCH_USER))
        r = analyse_canary(tool, proc, events, replicas, agent)
        if len(r.recreate) != replicas:
            raise RuntimeError(f"only {len(r.recreate)} of {replicas} steps found in the audit log")
        log(f"canary {i + 1}/{len(plan)} ({tool} → {image}): wall {r.wall:.2f}s, ideal {r.ideal:.2f}s, "
            f"overhead {r.overhead:.3f}, requests {len(r.requests)}, reaction median "
            f"{statistics.median(r.reactions) * 1000 if r.reactions else float('nan'):.1f}ms")
        return r

    for i, tool in enumerate(plan):
        r = attempt(f"canary {i + 1} ({tool})", lambda: one(i, tool))
        {"plugin": plugin_runs, "before": before_runs, "shell": shell}[tool].append(r)
    return plugin_runs, shell, setup, before_runs


# ---------------------------------------------------------------------------- start-up


def startup_bench(plugin: str, kubeconfig: str, runs: int) -> dict:
    settle()
    bindir = os.path.dirname(plugin)
    env = dict(os.environ, NO_COLOR="1", KUBECONFIG=kubeconfig, PATH=bindir + os.pathsep + os.environ["PATH"])
    res = {"kubectl sts-safe": [], "kubectl-sts_safe": [], "kubectl get ×2": [], "rss_plugin": [], "rss_kubectl": []}
    via = ["kubectl", "sts-safe", "status", STS, "-n", NS]
    direct = [plugin, "status", STS, "-n", NS]
    k1 = ["kubectl", "get", "statefulset", STS, "-n", NS]
    k2 = ["kubectl", "get", "pods", "-l", "app=redis", "-n", NS]

    def ok(p: Proc) -> Proc:
        if p.code != 0:
            raise RuntimeError(f"{' '.join(p.cmd)} exited {p.code}")
        return p

    def sample(i: int) -> tuple:
        out = {}
        for which in ([0, 1, 2] if i % 2 == 0 else [2, 1, 0]):  # alternate the order
            if which == 0:
                out[0] = ok(measure(via, env=env))
            elif which == 1:
                out[1] = ok(measure(direct, env=env))
            else:
                out[2] = (ok(measure(k1, env=env)), ok(measure(k2, env=env)))
        return out[0], out[1], out[2]

    attempt("start-up warm-up", lambda: sample(0))  # page cache, connections
    for i in range(runs):
        v, d, (a, b) = attempt(f"start-up {i + 1}", lambda: sample(i))
        res["kubectl sts-safe"].append(v.wall)
        res["kubectl-sts_safe"].append(d.wall)
        res["rss_plugin"].append(d.maxrss_kb)
        res["kubectl get ×2"].append(a.wall + b.wall)
        res["rss_kubectl"].append(max(a.maxrss_kb, b.maxrss_kb))
    res["ratio_via"] = [a / b for a, b in zip(res["kubectl sts-safe"], res["kubectl get ×2"])]
    res["ratio_direct"] = [a / b for a, b in zip(res["kubectl-sts_safe"], res["kubectl get ×2"])]
    return res


# ---------------------------------------------------------------------------- prune-pvcs at scale

PRUNE_PVC = """---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data-{sts}-{o}
  namespace: {ns}
  labels: {{app: {sts}, sts-safe-bench: prune}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: sim-unprovisioned
  volumeName: absent-{ns}-{sts}-{o}
  resources: {{requests: {{storage: 1Gi}}}}
"""

PRUNE_STS = """---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {sts}
  namespace: {ns}
  labels: {{sts-safe-bench: prune}}
spec:
  serviceName: {sts}
  replicas: {replicas}
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: {sts}}}}}
  template:
    metadata:
      labels: {{app: {sts}, sts-safe-bench: prune}}
    spec:
      schedulerName: sts-safe-bench-none
      containers:
        - name: db
          image: postgres:16
          volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: sim-unprovisioned
        resources: {{requests: {{storage: 1Gi}}}}
"""


def create_chunks(files: list[str], parallel: int) -> None:
    def one(f: str) -> None:
        for i in range(5):
            r = subprocess.run(["kubectl", "create", "-f", f, "-o", "name"], capture_output=True, text=True)
            errors = [l for l in r.stderr.splitlines() if l.strip() and "already exists" not in l]
            if r.returncode == 0 or not errors:
                return
            if i < 4 and any(t in r.stderr for t in TRANSIENT):
                time.sleep(3)  # the API server restarted: create what is still missing
                continue
            raise RuntimeError(f"kubectl create -f {f}: {r.stderr.strip()[-500:]}")

    with cf.ThreadPoolExecutor(parallel) as ex:
        for fut in [ex.submit(one, f) for f in files]:
            fut.result()


def count(kind: str) -> int:
    out = kubectl("get", kind, "-A", "-l", "sts-safe-bench=prune", "-o", "name", "--chunk-size=0")
    return len(out.split())


# The shape of every run: rows 1–3's StatefulSet, and row 4's cluster (which row 10 reuses).
BASE_CFG = {"replicas": 10, "delay": "1s", "parallel": 8, "prune_replicas": 5, "prune_ordinals": 10,
            "prune_namespaces": 10, "prune_per_ns": 50}


def prune_namespaces(count: int) -> list[str]:
    return [f"{PRUNE_PREFIX}{i}" for i in range(count)]


def prune_cluster(cfg: dict) -> dict:
    """Row 4's cluster, in prune_namespaces(cfg["prune_namespaces"])."""
    with tempfile.TemporaryDirectory() as tmp:
        return prune_setup(cfg["prune_namespaces"], cfg["prune_per_ns"], cfg["prune_ordinals"],
                           cfg["prune_replicas"], cfg["parallel"], tmp)


def prune_setup(namespaces: int, per_ns: int, ordinals: int, replicas: int, parallel: int,
                workdir: str) -> dict:
    nss = prune_namespaces(namespaces)
    log(f"prune: creating {namespaces * per_ns} StatefulSets, {namespaces * per_ns * ordinals} PVCs "
        f"in {namespaces} namespaces")
    delete_namespaces(nss, 600)
    timings = {}
    t0 = time.perf_counter()
    for ns in nss:
        kubectl("create", "namespace", ns)
    timings["namespaces"] = time.perf_counter() - t0
    # PVCs first (all ordinals), so that the StatefulSet controller finds every claim and
    # creates none of its own; chunks of 125 objects, `parallel` kubectl processes.
    files = []
    for ns in nss:
        docs = [PRUNE_PVC.format(ns=ns, sts=f"s{j:03d}", o=o) for j in range(per_ns) for o in range(ordinals)]
        for c in range(0, len(docs), 125):
            f = os.path.join(workdir, f"pvc-{ns}-{c}.yaml")
            with open(f, "w") as fh:
                fh.write("".join(docs[c:c + 125]))
            files.append(f)
    t1 = time.perf_counter()
    create_chunks(files, parallel)
    timings["pvcs"] = time.perf_counter() - t1
    log(f"prune: {len(files)} chunks of PVCs created in {timings['pvcs']:.1f}s")
    files = []
    for ns in nss:
        docs = [PRUNE_STS.format(ns=ns, sts=f"s{j:03d}", replicas=replicas) for j in range(per_ns)]
        f = os.path.join(workdir, f"sts-{ns}.yaml")
        with open(f, "w") as fh:
            fh.write("".join(docs))
        files.append(f)
    t2 = time.perf_counter()
    create_chunks(files, parallel)
    timings["statefulsets"] = time.perf_counter() - t2
    want = namespaces * per_ns * replicas
    while True:
        n = count("pods")
        if n >= want:
            break
        if time.perf_counter() - t2 > 900:
            raise RuntimeError(f"only {n} of {want} pods after 900s")
        time.sleep(2)
    timings["pods"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    log(f"prune: {want} pods exist {timings['pods']:.1f}s after the StatefulSets were sent; "
        f"total {timings['total']:.1f}s")
    return {"namespaces": nss, "timings": timings, "pvcs": namespaces * per_ns * ordinals,
            "statefulsets": namespaces * per_ns, "pods": want}


def prune_bench(plugin: str, kubeconfig: str, runs: int, outdir: str, tail: audit.Tail) -> dict:
    env = dict(os.environ, NO_COLOR="1", KUBECONFIG=kubeconfig)
    plug = [plugin, "prune-pvcs", "-A", "--dry-run", "-o", "json"]
    kube = ["kubectl", "get", "statefulsets,pods,persistentvolumeclaims,persistentvolumes", "-A", "-o", "json"]
    res = {"plugin_wall": [], "plugin_rss": [], "kubectl_wall": [], "kubectl_rss": [],
           "plugin_requests": [], "kubectl_requests": []}
    attempt("prune warm-up", lambda: (measure(plug, env=env, stdout_path=os.path.join(outdir, "prune.json")),
                                      measure(kube, env=env, stdout_path=os.path.join(outdir, "kubectl-get.json"))))
    def one(which: str) -> tuple[Proc, int]:
        tail.read()
        if which == "plugin":
            p = measure(plug, env=env, stdout_path=os.path.join(outdir, "prune.json"))
        else:
            p = measure(kube, env=env, stdout_path=os.path.join(outdir, "kubectl-get.json"))
        if p.code not in (0, 3):
            raise RuntimeError(f"{' '.join(p.cmd)} exited {p.code}")
        time.sleep(0.3)
        agent = PLUGIN_UA if which == "plugin" else "kubectl"
        reqs = [e for e in audit.requests(tail.read(needles=(BENCH_USER,)))
                if e.user == BENCH_USER and e.agent == agent and p.start - 0.05 <= e.received <= p.end + 0.05]
        return p, len(reqs)

    for i in range(runs):
        for which in (("plugin", "kubectl") if i % 2 == 0 else ("kubectl", "plugin")):
            p, n = attempt(f"prune {i + 1} ({which})", lambda: one(which))
            res[f"{which}_wall"].append(p.wall)
            res[f"{which}_rss"].append(p.maxrss_kb / 1024)
            res[f"{which}_requests"].append(n)
        log(f"prune {i + 1}/{runs}: plugin {res['plugin_wall'][-1]:.2f}s {res['plugin_rss'][-1]:.0f}MiB, "
            f"kubectl {res['kubectl_wall'][-1]:.2f}s {res['kubectl_rss'][-1]:.0f}MiB")
    with open(os.path.join(outdir, "prune.json")) as f:
        plan = json.load(f)
    p = plan.get("plan", plan)
    res["proposed"] = len(p.get("pvcs", []))
    res["skipped"] = Counter(s.get("code") for s in p.get("skipped", []))
    res["plan_bytes"] = os.path.getsize(os.path.join(outdir, "prune.json"))
    res["kubectl_bytes"] = os.path.getsize(os.path.join(outdir, "kubectl-get.json"))
    res["wall_ratio"] = [a / b for a, b in zip(res["plugin_wall"], res["kubectl_wall"])]
    res["rss_ratio"] = [a / b for a, b in zip(res["plugin_rss"], res["kubectl_rss"])]
    return res


# ---------------------------------------------------------------------------- report


def fmt_ms(xs: list[float]) -> str:
    return Stat([x * 1000 for x in xs]).fmt("{:.1f}", " ms")


def breakdown(runs: list[CanaryRun]) -> list[str]:
    rows = []
    for name, get in [
        ("process start → first API request", lambda r: r.startup),
        ("process start → first partition step", lambda r: r.until_first_step),
        ("Σ partition PATCH → controller deletes the pod", lambda r: sum(r.controller_lag)),
        ("Σ reaction (Ready write's arrival → next PATCH)", lambda r: sum(r.reactions_recv)),
        ("last pod Ready → process exit", lambda r: r.tail),
        ("wall − ideal", lambda r: r.wall - r.ideal),
    ]:
        rows.append(f"| {name} | " + " | ".join(Stat([get(r) for r in rs]).fmt("{:.2f}", " s") if rs else "n/a"
                                               for rs in runs) + " |")
    return rows


def request_table(runs: list[CanaryRun]) -> list[str]:
    c: Counter = Counter()
    for r in runs:
        for e in r.requests:
            c[(e.verb, e.kind, e.code)] += 1
    rows = ["| verb | resource | response | per run |", "| --- | --- | --- | --- |"]
    for (verb, kind, code), n in sorted(c.items(), key=lambda x: (-x[1], x[0])):
        rows.append(f"| {verb} | {kind} | {code} | {n / len(runs):.1f} |")
    return rows


def lock_cost(plugin_runs: list, before_runs: list, cfg: dict) -> dict | None:
    """The lock's cost, from runs of this binary and of the one before the lock, taken
    side by side: extra requests per run, the lease requests among them, the reaction."""
    if not plugin_runs or not before_runs:
        return None
    def lease_reqs(r: CanaryRun, verbs: tuple) -> int:
        return sum(1 for e in r.requests if e.resource == "leases" and e.verb in verbs)
    with_ = statistics.median(len(r.requests) for r in plugin_runs)
    without = statistics.median(len(r.requests) for r in before_runs)
    renewals = statistics.median(lease_reqs(r, ("update",)) for r in plugin_runs)
    wall = statistics.median(r.wall for r in plugin_runs)
    rw = [x for r in plugin_runs for x in r.reactions_recv]
    rb = [x for r in before_runs for x in r.reactions_recv]
    return {
        "with": with_, "without": without, "extra": with_ - without,
        "renewals": renewals, "fixed": with_ - without - renewals,
        # Measured over all runs together: renewals ÷ minutes of run.
        "per_min": sum(lease_reqs(r, ("update",)) for r in plugin_runs)
        / (sum(r.wall for r in plugin_runs) / 60),
        "wall": wall,
        "reaction_with": statistics.median(rw) if rw else float("nan"),
        "reaction_without": statistics.median(rb) if rb else float("nan"),
        "reaction_ratio": (statistics.median(rw) / statistics.median(rb)) if rw and rb else float("nan"),
    }


def report(env: dict, cfg: dict, canary: tuple, startup: dict, prune: dict, setup: dict,
           binary: dict, cleanup: dict, total: float, notes: str, resize: dict | None = None,
           recover: dict | None = None, recover_floor: dict | None = None,
           metrics: dict | None = None, ecosystem: dict | None = None) -> tuple[str, str]:
    plugin_runs, shell_runs, canary_setup, *rest = canary
    before_runs = rest[0] if rest else []
    reactions = [x for r in plugin_runs for x in r.reactions]
    overhead = [r.overhead for r in plugin_runs]
    reqs = [len(r.requests) for r in plugin_runs]
    shell_reqs = [len(r.requests) for r in shell_runs]
    shell_reactions = [x for r in shell_runs for x in r.reactions]
    reactions_recv = [x for r in plugin_runs for x in r.reactions_recv]
    shell_reactions_recv = [x for r in shell_runs for x in r.reactions_recv]
    # Judged on the conservative figure (from the Ready write's arrival at the API server).
    g1 = statistics.median(reactions_recv) <= 0.050 if reactions_recv else False
    g2 = statistics.median(overhead) <= 1.05 if overhead else False
    g3 = statistics.median(reqs) <= 40 if reqs else False
    g4w = statistics.median(prune["wall_ratio"]) <= 1.3
    g4m = statistics.median(prune["rss_ratio"]) <= 1.0
    L = []
    L.append("# Benchmarks: kubectl sts-safe on the local cluster")
    L.append("")
    L.append("Generated by `make bench` (scripts/bench.sh → scripts/bench/driver.py); do not edit by hand.")
    L.append("Request counts and server-side timings come from the kube-apiserver's audit log")
    L.append("(scripts/audit-policy.yaml: Metadata level, one event per request, microsecond timestamps);")
    L.append("wall time of whole processes measured here, their peak RSS from GNU time's `%M` (the process's own")
    L.append("`ru_maxrss`; until 2026-12-07 it was read through wait4(2) of the driver's child, which floors every")
    L.append("figure at the size of the Python driver, about 60 MiB, because exec records the replaced address")
    L.append("space in the peak). The machine is")
    L.append("shared and noisy, so every comparison is a ratio of measurements taken side by side in")
    L.append("the same run, and every figure is a median with its spread: median (min–max; IQR, n).")
    L.append("Every measured command runs as the benchmark's own ServiceAccount "
             f"(`{BENCH_USER}`, bound to cluster-admin for the run), so that the audit log tells its "
             "requests apart from those of other suites using the same cluster; a sample during which "
             "the API server was restarted (other suites' fault tests do that) is discarded and repeated.")
    L.append("")
    L.append("| | |")
    L.append("| --- | --- |")
    for k, label in [("date", "date"), ("cpu", "CPU"), ("mem", "memory"), ("os", "OS"), ("kernel", "kernel"),
                     ("server", "cluster"), ("kubectl", "kubectl"), ("plugin", "plugin"), ("commit", "commit"),
                     ("rustc", "rustc"), ("python", "python")]:
        v = env.get(k, "")
        if k == "server":
            parts = "kube-apiserver + kube-controller-manager" + ("" if v == "v1.20.2" else " + kube-scheduler")
            v = f"{parts} {v}, sim-kubelet (scripts/cluster.sh, K8S_VERSION={v})"
        L.append(f"| {label} | {v} |")
    L.append(f"| load average | {env['load'][0]:.2f} at the start, {cfg['load_end'][0]:.2f} at the end "
             f"(other test suites share the machine and the cluster) |")
    L.append(f"| duration | `make bench` measured for {total / 60:.1f} min (after the build) |")
    L.append("")
    L.append("Reproduce: `make bench` (builds `cargo build --release`, starts the local cluster if it is not")
    L.append("running and stops it again afterwards). Knobs: `BENCH_CANARY_RUNS`, `BENCH_SHELL_RUNS`,")
    L.append("`BENCH_STARTUP_RUNS`, `BENCH_PRUNE_RUNS`, `BENCH_RESIZE_RUNS`, `BENCH_METRICS_RUNS`, `BENCH_ECOSYSTEM_RUNS`, `BENCH_SKIP_PRUNE=1`. Raw logs: `target/bench/`.")
    L.append("The Analysis section at the end is `scripts/bench/analysis.md`; after editing it,")
    L.append("`python3 scripts/bench/driver.py --report-only` rewrites this file from the last run's data.")
    L.append("")
    L.append("## Summary")
    L.append("")
    L.append("| # | measurement | result | goal | |")
    L.append("| --- | --- | --- | --- | --- |")
    L.append(f"| 1 | canary reaction (pod's Ready write → next partition PATCH) | {fmt_ms(reactions_recv)} from the write's arrival; {fmt_ms(reactions)} from its response | median ≤ 50 ms | {verdict(g1)} |")
    L.append(f"| 2 | canary overhead (wall ÷ Σ recreate-to-Ready) | {Stat(overhead).fmt('{:.3f}')} | ≤ 1.05 | {verdict(g2)} |")
    L.append(f"| 3 | canary API requests | {Stat(reqs).fmt('{:.0f}')} (shell loop: {Stat(shell_reqs).fmt('{:.0f}')}; ratio {statistics.median(reqs) / statistics.median(shell_reqs):.2f}) | ≤ 40 | {verdict(g3)} |" if shell_reqs else f"| 3 | canary API requests | {Stat(reqs).fmt('{:.0f}')} | ≤ 40 | {verdict(g3)} |")
    L.append(f"| 4 | prune-pvcs -A wall ÷ kubectl get's | {Stat(prune['wall_ratio']).fmt('{:.2f}')} | ≤ 1.3 | {verdict(g4w)} |")
    L.append(f"| 4 | prune-pvcs -A peak RSS ÷ kubectl get's | {Stat(prune['rss_ratio']).fmt('{:.2f}')} | ≤ 1.0 | {verdict(g4m)} |")
    lock = lock_cost(plugin_runs, before_runs, cfg)
    if lock:
        L.append(f"| 6 | the lock's cost: canary API requests with it − without (side by side) | +{lock['extra']:.0f} per run "
                 f"({lock['with']:.0f} vs {lock['without']:.0f}): {lock['fixed']:.0f} fixed (rights preflight for the lease, "
                 f"SelfSubjectReview, lease read, create and delete, the verdict's read and write) and "
                 f"{lock['renewals']:.0f} renewals in runs of {lock['wall']:.0f} s (one per 15 s; see Analysis for a longer run) "
                 f"| ≤ +4 per minute of run | renewals: met; the fixed part is per run, not per minute |")
        L.append(f"| 6 | the lock's cost: canary reaction with it ÷ without | {lock['reaction_ratio']:.2f} "
                 f"({lock['reaction_with'] * 1000:.1f} ms vs {lock['reaction_without'] * 1000:.1f} ms, medians from the write's arrival) | unchanged (≤ 1.2) | {verdict(lock['reaction_ratio'] <= 1.2)} |")
    L.extend(resize_bench.summary_rows(resize, Stat, verdict))
    L.extend(recover_bench.summary_rows(recover, recover_floor, Stat, verdict))
    L.extend(metrics_bench.summary_rows(metrics, Stat, verdict))
    L.extend(ecosystem_bench.summary_rows(ecosystem, Stat, verdict))
    L.append(f"| 5 | `kubectl sts-safe status` ÷ two `kubectl get` | {Stat(startup['ratio_via']).fmt('{:.2f}')} | (no goal) | |")
    L.append(f"| 5 | release binary (stripped) | {binary['size'] / 2**20:.1f} MiB | (no goal) | |")
    L.append("")

    L.append("## 1–3. Canary: reaction, overhead, API cost")
    L.append("")
    L.append(f"StatefulSet `{STS}` in namespace `{NS}`: {cfg['replicas']} replicas, a 1 Gi claim each "
             f"(`sim-standard`), pod template annotation `sim.sts-safe.dev/ready-delay: {cfg['delay']}`; "
             f"created and Ready in {canary_setup:.1f} s. Each run changes the image "
             f"({IMAGES[0]} ↔ {IMAGES[1]}) after the previous rollout settled.")
    L.append("")
    L.append(f"- **plugin**: `kubectl-sts_safe canary {STS} -n {NS} --image redis=IMAGE --soak 0s --yes` "
             f"({len(plugin_runs)} runs; one pod per step, {cfg['replicas']} steps).")
    L.append("- **shell loop** (the seed's way, `scripts/bench/shell-canary.sh`): `kubectl patch` the partition "
             "to the replica count, `kubectl set image`, then per pod `kubectl patch` the partition one lower "
             "and every 2 s `kubectl get pods` + `kubectl rollout status --watch=false` until it reports the "
             f"partitioned roll-out complete ({len(shell_runs)} runs).")
    L.append("")
    L.append("Definitions, all from the audit log of the run:")
    L.append("")
    L.append("- *reaction*: from sim-kubelet's `pods/status` write that made the step's pod Ready (its last "
             "status write for that pod before the next step) to the `requestReceivedTimestamp` of the tool's "
             "next successful partition PATCH; "
             f"{cfg['replicas'] - 1} per run (the last pod has no next step). Measured from the write's "
             "`requestReceivedTimestamp` (an upper bound: the pod cannot be seen Ready before the write arrives; "
             "the goal is judged on this) and from its `stageTimestamp` (response sent; a lower bound, which can "
             "be slightly negative because the watch event reaches the tool while the API server is still "
             "finishing the writer's response).")
    L.append("- *recreate-to-Ready* of a pod: from kube-controller-manager's DELETE of the old pod (received) to "
             "that Ready write of its replacement. *Ideal* = Σ over the pods; *overhead* = the tool's whole "
             "process wall time ÷ ideal.")
    L.append("- *API requests*: distinct audit IDs sent by the tool's process (its user agent, "
             "`kubectl-sts-safe/…` resp. `kubectl/…`, during the process) as the benchmark's own identity. "
             "A watch counts once (its event stream is one request). Requests the audit policy does not "
             "record (discovery, namespaces, health) are not counted: kubectl makes discovery requests the "
             "plugin does not.")
    L.append("")
    L.append("| | plugin | shell loop |")
    L.append("| --- | --- | --- |")
    L.append(f"| **reaction**, from the Ready write's arrival | {fmt_ms(reactions_recv)} | {fmt_ms(shell_reactions_recv)} |")
    L.append(f"| reaction, from the Ready write's response | {fmt_ms(reactions)} | {fmt_ms(shell_reactions)} |")
    L.append(f"| wall time | {Stat([r.wall for r in plugin_runs]).fmt('{:.2f}', ' s')} | {Stat([r.wall for r in shell_runs]).fmt('{:.2f}', ' s')} |")
    L.append(f"| ideal (Σ recreate-to-Ready) | {Stat([r.ideal for r in plugin_runs]).fmt('{:.2f}', ' s')} | {Stat([r.ideal for r in shell_runs]).fmt('{:.2f}', ' s')} |")
    L.append(f"| per pod recreate-to-Ready | {fmt_ms([x for r in plugin_runs for x in r.recreate])} | {fmt_ms([x for r in shell_runs for x in r.recreate])} |")
    L.append(f"| **overhead** (wall ÷ ideal) | {Stat(overhead).fmt('{:.3f}')} | {Stat([r.overhead for r in shell_runs]).fmt('{:.3f}')} |")
    L.append(f"| **API requests** | {Stat(reqs).fmt('{:.0f}')} | {Stat(shell_reqs).fmt('{:.0f}')} |")
    L.append(f"| of which 409 Conflict | {Stat([r.conflicts for r in plugin_runs]).fmt('{:.0f}')} | {Stat([r.conflicts for r in shell_runs]).fmt('{:.0f}')} |")
    if reqs and shell_reqs:
        L.append(f"| ratio plugin ÷ shell (medians) | requests {statistics.median(reqs) / statistics.median(shell_reqs):.2f}, "
                 f"wall {statistics.median([r.wall for r in plugin_runs]) / statistics.median([r.wall for r in shell_runs]):.2f} | |")
    L.append("")
    L.append("Where the time beyond the ideal goes (per run, median (min–max)):")
    L.append("")
    L.append("| | plugin | shell loop |")
    L.append("| --- | --- | --- |")
    L.extend(breakdown([plugin_runs, shell_runs]))
    L.append("")
    L.append("Requests of one plugin canary (average per run):")
    L.append("")
    L.extend(request_table(plugin_runs))
    L.append("")
    if shell_runs:
        L.append("Requests of one shell-loop canary (average per run):")
        L.append("")
        L.extend(request_table(shell_runs))
        L.append("")

    if not setup["pvcs"]:
        L.append("## 4. prune-pvcs at scale")
        L.append("")
        L.append("Skipped (BENCH_SKIP_PRUNE=1).")
        L.append("")
    else:
        L.append("## 4. prune-pvcs at scale")
        L.append("")
        t = setup["timings"]
        L.append(f"{setup['statefulsets']} StatefulSets in {len(setup['namespaces'])} namespaces "
                 f"(`{PRUNE_PREFIX}0…{len(setup['namespaces']) - 1}`), each with one volumeClaimTemplate, "
                 f"`replicas: {cfg['prune_replicas']}` and the PVCs of ordinals 0–{cfg['prune_ordinals'] - 1}: "
                 f"{setup['pvcs']} PVCs, {setup['pods']} pods (half of the ordinals), so {setup['pvcs'] - setup['pods']} "
                 "PVCs are orphaned by a scale-down from 10 to 5.")
        L.append("")
        L.append("How the data is made, fast and without flooding the shared cluster:")
        L.append("")
        L.append(f"- PVCs: multi-document YAML files of 125 claims, `kubectl create -f` with {cfg['parallel']} processes "
                 "in parallel. Class `sim-unprovisioned` (nothing provisions it) **and** `spec.volumeName` naming a PV "
                 "that does not exist: with only the class, kube-controller-manager v1.20's PV controller annotates "
                 "every claim once and records an `ExternalProvisioning` event for every claim on every 15 s resync "
                 "(measured: 1 update + 1 event per claim, then an event PATCH per claim per resync) — 5,000 claims "
                 "would saturate its 100 QPS client and stall PVC binding for everyone else's tests. A claim that "
                 "names an absent volume stays `Pending` and the controller writes nothing for it (measured: 0 "
                 "requests). The plan shows these claims' reclaim policy as unknown (PV not found); the amount of "
                 "data listed and planned is the same.")
        L.append(f"- StatefulSets: one file per namespace, created in parallel; `podManagementPolicy: Parallel`, "
                 "and `schedulerName: sts-safe-bench-none` in the pod template, so kube-controller-manager's "
                 "StatefulSet controller creates the pods (finding every claim already there) but sim-kubelet, which "
                 "only schedules default-scheduler pods, ignores them: they stay Pending and unscheduled.")
        L.append("")
        L.append("| creation step | seconds |")
        L.append("| --- | --- |")
        L.append(f"| {len(setup['namespaces'])} namespaces | {t['namespaces']:.1f} |")
        L.append(f"| {setup['pvcs']} PVCs ({cfg['parallel']} × `kubectl create -f`) | {t['pvcs']:.1f} |")
        L.append(f"| {setup['statefulsets']} StatefulSets sent | {t['statefulsets']:.1f} |")
        L.append(f"| … until the controller created all {setup['pods']} pods (its client is limited to 100 requests/s) | {t['pods']:.1f} |")
        L.append(f"| total | {t['total']:.1f} |")
        L.append("")
        L.append(f"Then, alternating which goes first, {cfg['prune_runs']} runs each (after one warm-up each) of "
                 "`kubectl-sts_safe prune-pvcs -A --dry-run -o json` and "
                 "`kubectl get statefulsets,pods,persistentvolumeclaims,persistentvolumes -A -o json` (the raw data "
                 "the plan is computed from). Both see the whole cluster, including other test suites' objects.")
        L.append("")
        L.append("| | prune-pvcs -A --dry-run -o json | kubectl get … -A -o json | ratio | goal | |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        L.append(f"| wall time | {Stat(prune['plugin_wall']).fmt('{:.2f}', ' s')} | {Stat(prune['kubectl_wall']).fmt('{:.2f}', ' s')} | {Stat(prune['wall_ratio']).fmt('{:.2f}')} | ≤ 1.3 | {verdict(g4w)} |")
        L.append(f"| peak RSS | {Stat(prune['plugin_rss']).fmt('{:.0f}', ' MiB')} | {Stat(prune['kubectl_rss']).fmt('{:.0f}', ' MiB')} | {Stat(prune['rss_ratio']).fmt('{:.2f}')} | ≤ 1.0 | {verdict(g4m)} |")
        L.append(f"| API requests (audit log) | {Stat(prune['plugin_requests']).fmt('{:.0f}')} | {Stat(prune['kubectl_requests']).fmt('{:.0f}')} | | | |")
        L.append(f"| output | {prune['plan_bytes'] / 1e6:.1f} MB: {prune['proposed']} PVCs proposed; skipped: "
                 f"{dict(prune['skipped']) or 'none'} | {prune['kubectl_bytes'] / 1e6:.1f} MB | | | |")
        L.append("")
        c = cleanup.get("prune")
        L.append(f"Clean-up: deleting the {len(setup['namespaces'])} namespaces took "
                 f"{'%.0f s' % c if c is not None else 'longer than the time-out (left to finish in the background)'} "
                 "(the namespace controller deletes the pods, then the claims; the PVC-protection controller "
                 "removes each claim's finalizer).")
        L.append("")

    L.extend(resize_bench.section(resize, Stat, BENCH_USER))
    L.extend(recover_bench.section(recover, recover_floor, Stat))
    L.extend(metrics_bench.section(metrics, Stat, BENCH_USER))
    L.extend(ecosystem_bench.section(ecosystem, Stat, fmt_ms))
    L.append("## 5. Start-up")
    L.append("")
    L.append(f"`status {STS}` against the 10-replica StatefulSet above (whole process, output to /dev/null), "
             f"{cfg['startup_runs']} runs each after one warm-up, alternating the order; kubectl's side is "
             f"`kubectl get statefulset {STS}` followed by `kubectl get pods -l app=redis` (two processes, times "
             "added).")
    L.append("")
    L.append("| command | wall time | ratio to the two kubectl gets | peak RSS |")
    L.append("| --- | --- | --- | --- |")
    L.append(f"| `kubectl sts-safe status {STS}` (through kubectl's plugin lookup) | {fmt_ms(startup['kubectl sts-safe'])} | {Stat(startup['ratio_via']).fmt('{:.2f}')} | |")
    L.append(f"| `kubectl-sts_safe status {STS}` (the binary directly) | {fmt_ms(startup['kubectl-sts_safe'])} | {Stat(startup['ratio_direct']).fmt('{:.2f}')} | {Stat([x / 1024 for x in startup['rss_plugin']]).fmt('{:.1f}', ' MiB')} |")
    L.append(f"| `kubectl get statefulset` + `kubectl get pods` | {fmt_ms(startup['kubectl get ×2'])} | 1 | {Stat([x / 1024 for x in startup['rss_kubectl']]).fmt('{:.1f}', ' MiB')} (larger of the two) |")
    L.append("")
    L.append(f"Release binary `target/release/kubectl-sts_safe` (profile: lto, codegen-units=1, strip, "
             f"panic=abort): **{binary['size']:,} bytes ({binary['size'] / 2**20:.1f} MiB)**; kubectl "
             f"(`{binary['kubectl_path']}`): {binary['kubectl_size']:,} bytes ({binary['kubectl_size'] / 2**20:.1f} MiB).")
    L.append("")
    L.append("## Discarded samples")
    L.append("")
    if DISCARDED:
        L.append("Samples repeated because they failed or the API server was restarted while they ran "
                 "(by other suites' fault tests on the shared cluster):")
        L.append("")
        for d in DISCARDED:
            L.append(f"- {d}")
    else:
        L.append("None.")
    L.append("")
    if notes:
        L.append(notes.rstrip())
        L.append("")

    summary = [
        f"1 reaction      median {statistics.median(reactions_recv) * 1000 if reactions_recv else float('nan'):.1f} ms "
        f"(from the Ready write's response: {statistics.median(reactions) * 1000 if reactions else float('nan'):.1f} ms) "
        f"(goal ≤ 50)      {'met' if g1 else 'MISSED'}",
        f"2 overhead      median {statistics.median(overhead) if overhead else float('nan'):.3f} (goal ≤ 1.05)     {'met' if g2 else 'MISSED'}",
        f"3 API requests  median {statistics.median(reqs) if reqs else float('nan'):.0f} (goal ≤ 40)"
        + (f", shell loop {statistics.median(shell_reqs):.0f}" if shell_reqs else "") + f"    {'met' if g3 else 'MISSED'}",
        (f"4 prune -A      wall ratio {statistics.median(prune['wall_ratio']):.2f} (≤ 1.3) {'met' if g4w else 'MISSED'}, "
         f"RSS ratio {statistics.median(prune['rss_ratio']):.2f} (≤ 1.0) {'met' if g4m else 'MISSED'}"
         if setup["pvcs"] else "4 prune -A      skipped"),
        f"5 start-up      status ÷ 2×kubectl get {statistics.median(startup['ratio_via']):.2f} (via kubectl), "
        f"{statistics.median(startup['ratio_direct']):.2f} (direct); binary {binary['size'] / 2**20:.1f} MiB",
    ]
    if resize and resize.get("runs"):
        ratio = statistics.median(r["ratio"] for r in resize["runs"])
        per = statistics.median(r["per_pvc"] for r in resize["runs"])
        summary.append(f"7 resize-pvcs   wall ÷ Σ simulated {ratio:.3f} (goal ≤ 1.1) {'met' if ratio <= 1.1 else 'MISSED'}, "
                       f"{per:.1f} requests per PVC")
    if recover and recover.get("runs"):
        ratio = statistics.median(r["ratio"] for r in recover["runs"])
        line = f"8 recover       start → Ready ÷ simulated {ratio:.3f} (goal ≤ 1.2) {'met' if ratio <= 1.2 else 'MISSED'}"
        if recover_floor and recover_floor.get("runs"):
            line += f"; 1.20 floor (force detach) {statistics.median(r['ratio'] for r in recover_floor['runs']):.1f}"
        summary.append(line)
    if metrics_bench.summary_line(metrics):
        summary.append(metrics_bench.summary_line(metrics))
    if ecosystem_bench.summary_line(ecosystem):
        summary.append(ecosystem_bench.summary_line(ecosystem))
    return "\n".join(L).rstrip() + "\n", "\n".join(summary)


# ---------------------------------------------------------------------------- main


def make_helpers(workdir: str):
    """What the rows in their own modules (resize.py, metrics.py) use of the driver."""
    return type("Helpers", (), dict(
        kubectl=staticmethod(kubectl), measure=staticmethod(measure), log=staticmethod(log),
        delete_namespaces=staticmethod(delete_namespaces), requests=staticmethod(audit.requests),
        attempt=staticmethod(attempt), canary_yaml=CANARY_YAML,
        wait_sts=staticmethod(lambda ns, name, n: kubectl("-n", ns, "rollout", "status", f"statefulset/{name}",
                                                          "--timeout=180s")),
        workdir=workdir))


def metrics_row(a, helpers, kubeconfig: str, tail: audit.Tail) -> dict:
    """Row 9: the canary with a Prometheus metric gate (scripts/bench/metrics.py)."""
    if a.metrics_runs <= 0:
        return {}
    if not a.prometheus:
        log("metric gate: skipped (no Prometheus: STS_SAFE_PROMETHEUS is not set)")
        return {"runs": [], "skipped": "no Prometheus (STS_SAFE_PROMETHEUS not set: the cluster runs without it)"}
    log(f"metric gate: a 5-replica canary gated by Prometheus at {a.prometheus}")
    return metrics_bench.bench(helpers, a.plugin, kubeconfig, tail, BENCH_USER, PLUGIN_UA, a.metrics_runs,
                               a.prometheus)


def only(a) -> int:
    """`--only metrics|ecosystem`: one row against the running cluster, printed to stdout; its
    data go to target/bench/only-ROW.json. RESULTS.md and results.pickle are left alone."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(a.workdir, exist_ok=True)
    tail = audit.Tail(a.audit_log)
    prune_nss: list[str] = []
    try:
        delete_namespaces([NS], 300)
        kubectl("create", "namespace", NS)
        kubeconfig = make_identity(a.workdir)
        if a.only == "metrics":
            res = metrics_row(a, make_helpers(a.workdir), kubeconfig, tail)
        else:
            prune_nss = prune_namespaces(BASE_CFG["prune_namespaces"])
            prune_cluster(BASE_CFG)
            res = ecosystem_bench.bench(a.plugin, kubeconfig, a.ecosystem_runs, prune_nss[0], measure, attempt,
                                        log, a.workdir)
    finally:
        log("cleaning up")
        kubectl("delete", "clusterrolebinding", BENCH_BINDING, "--ignore-not-found", check=False)
        try:
            os.remove(os.path.join(a.workdir, "bench.kubeconfig"))
        except OSError:
            pass
        if prune_nss:
            kubectl("delete", "namespace", *prune_nss, "--wait=false", "--ignore-not-found", check=False)
        delete_namespaces([NS] + prune_nss, 600)
    with open(os.path.join(a.workdir, f"only-{a.only}.json"), "w") as f:
        json.dump(res, f, indent=1)
    rows = metrics_bench if a.only == "metrics" else ecosystem_bench
    lines = ["| # | measurement | result | goal | |", "| --- | --- | --- | --- | --- |"]
    lines += rows.summary_rows(res, Stat, verdict) + [""]
    if a.only == "metrics":
        lines += metrics_bench.section(res, Stat, BENCH_USER)
    else:
        lines += ecosystem_bench.section(res, Stat, fmt_ms)
    if DISCARDED:
        lines += ["Discarded samples:", ""] + [f"- {d}" for d in DISCARDED] + [""]
    print("\n".join(lines))
    line = rows.summary_line(res)
    if line:
        log(line)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin")
    ap.add_argument("--before-plugin", help="the plugin built from the commit before the lock, "
                    "run alternately with --plugin in the canary benchmark")
    ap.add_argument("--before-commit", default="")
    ap.add_argument("--audit-log")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "RESULTS.md"))
    ap.add_argument("--workdir", default=os.path.join(REPO, "target", "bench"))
    ap.add_argument("--notes", default=os.path.join(REPO, "scripts", "bench", "analysis.md"))
    ap.add_argument("--canary-runs", type=int, default=int(os.environ.get("BENCH_CANARY_RUNS", 5)))
    ap.add_argument("--shell-runs", type=int, default=int(os.environ.get("BENCH_SHELL_RUNS", 3)))
    ap.add_argument("--startup-runs", type=int, default=int(os.environ.get("BENCH_STARTUP_RUNS", 10)))
    ap.add_argument("--prune-runs", type=int, default=int(os.environ.get("BENCH_PRUNE_RUNS", 7)))
    ap.add_argument("--skip-prune", action="store_true", default=os.environ.get("BENCH_SKIP_PRUNE") == "1")
    ap.add_argument("--resize-runs", type=int, default=int(os.environ.get("BENCH_RESIZE_RUNS", 3)))
    ap.add_argument("--recover-runs", type=int, default=int(os.environ.get("BENCH_RECOVER_RUNS", 3)))
    ap.add_argument("--recover-floor", default="", help="recover.py --floor's results (JSON) from the 1.20 cluster")
    ap.add_argument("--ecosystem-runs", type=int, default=int(os.environ.get("BENCH_ECOSYSTEM_RUNS", 7)))
    ap.add_argument("--metrics-runs", type=int, default=int(os.environ.get("BENCH_METRICS_RUNS", 3)))
    ap.add_argument("--prometheus", default=os.environ.get("STS_SAFE_PROMETHEUS", ""),
                    help="the cluster's Prometheus (row 9's metric gate; default: $STS_SAFE_PROMETHEUS)")
    ap.add_argument("--only", choices=["metrics", "ecosystem"],
                    help="development: run only this row against the running cluster and print its summary "
                         "rows and section to stdout; RESULTS.md and the saved data stay as they are")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite RESULTS.md from the last run's data (target/bench/results.pickle), e.g. "
                         "after editing scripts/bench/analysis.md")
    a = ap.parse_args()
    saved = os.path.join(a.workdir, "results.pickle")
    if a.report_only:
        with open(saved, "rb") as f:
            d = pickle.load(f)
        DISCARDED[:] = d.pop("discarded")
        d["notes"] = open(a.notes).read() if os.path.exists(a.notes) else ""
        text, summary = report(**d)
        with open(a.out, "w") as f:
            f.write(text)
        print(summary)
        return 0
    if not a.plugin or not a.audit_log:
        ap.error("--plugin and --audit-log are required (except with --report-only)")
    if a.only:
        return only(a)
    # SIGTERM (e.g. a time-out) runs the clean-up below too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(a.workdir, exist_ok=True)
    t_start = time.perf_counter()
    env = environment(a.plugin)
    cfg = dict(BASE_CFG, prune_runs=a.prune_runs, startup_runs=a.startup_runs)
    tail = audit.Tail(a.audit_log)
    cleanup: dict = {}
    prune_nss: list[str] = []
    resize: dict = {}
    recover: dict = {}
    recover_floor: dict = {}
    metrics: dict = {}
    ecosystem: dict = {}
    if a.recover_floor and os.path.exists(a.recover_floor):
        with open(a.recover_floor) as f:
            recover_floor = json.load(f)
    try:
        delete_namespaces([NS], 300)
        kubectl("create", "namespace", NS)
        kubeconfig = make_identity(a.workdir)
        canary = canary_bench(a.plugin, kubeconfig, tail, a.canary_runs, a.shell_runs, cfg["replicas"],
                              cfg["delay"], a.workdir, a.before_plugin)
        cfg["before_commit"] = a.before_commit
        log("start-up: status vs kubectl get")
        startup = startup_bench(a.plugin, kubeconfig, a.startup_runs)
        log("resize-pvcs: a 10-replica online resize")
        helpers = make_helpers(a.workdir)
        resize = resize_bench.bench(helpers, a.plugin, kubeconfig, tail, BENCH_USER, a.resize_runs)
        if a.recover_runs > 0:
            log("recover: a pod stranded on a lost node")
            recover = recover_bench.bench(a.plugin, kubeconfig, a.recover_runs, a.workdir, log)
        metrics = metrics_row(a, helpers, kubeconfig, tail)
        if a.skip_prune:
            setup = {"namespaces": [], "timings": {k: float("nan") for k in
                                                   ("namespaces", "pvcs", "statefulsets", "pods", "total")},
                     "pvcs": 0, "statefulsets": 0, "pods": 0}
            prune = {k: [float("nan")] for k in ("plugin_wall", "plugin_rss", "kubectl_wall", "kubectl_rss",
                                                  "wall_ratio", "rss_ratio", "plugin_requests", "kubectl_requests")}
            prune.update(proposed=0, skipped={}, plan_bytes=0, kubectl_bytes=0)
        else:
            prune_nss = prune_namespaces(cfg["prune_namespaces"])
            setup = prune_cluster(cfg)
            log(f"prune: measuring ({a.prune_runs} runs each)")
            prune = prune_bench(a.plugin, kubeconfig, a.prune_runs, a.workdir, tail)
            log(f"ecosystem: status -A and completion ({a.ecosystem_runs} runs each)")
            ecosystem = ecosystem_bench.bench(a.plugin, kubeconfig, a.ecosystem_runs, prune_nss[0], measure,
                                              attempt, log, a.workdir)
    finally:
        log("cleaning up namespaces (waiting up to 10 min)")
        kubectl("delete", "clusterrolebinding", BENCH_BINDING, "--ignore-not-found", check=False)
        try:
            os.remove(os.path.join(a.workdir, "bench.kubeconfig"))  # its token dies with the namespace
        except OSError:
            pass
        t_del = time.perf_counter()
        if prune_nss:
            kubectl("delete", "namespace", *prune_nss, "--wait=false", "--ignore-not-found", check=False)
        cleanup["canary"] = delete_namespaces([NS], 120)
        if prune_nss:
            if delete_namespaces(prune_nss, 600) is not None:
                cleanup["prune"] = time.perf_counter() - t_del
                log(f"prune namespaces deleted in {cleanup['prune']:.0f}s")
            else:
                log("prune namespaces still being deleted after 10 min; left to the namespace controller")
    kubectl_path = shutil.which("kubectl") or "kubectl"
    binary = {"size": os.path.getsize(a.plugin), "kubectl_path": os.path.realpath(kubectl_path),
              "kubectl_size": os.path.getsize(os.path.realpath(kubectl_path))}
    cfg["load_end"] = os.getloadavg()
    d = dict(env=env, cfg=cfg, canary=canary, startup=startup, prune=prune, setup=setup, binary=binary,
             cleanup=cleanup, total=time.perf_counter() - t_start, resize=resize,
             recover=recover, recover_floor=recover_floor, metrics=metrics,
             ecosystem=ecosystem)
    with open(saved, "wb") as f:
        pickle.dump(dict(d, discarded=list(DISCARDED)), f)
    d["notes"] = open(a.notes).read() if os.path.exists(a.notes) else ""
    text, summary = report(**d)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(summary)
    print(f"written: {os.path.relpath(a.out, REPO)} ({(time.perf_counter() - t_start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
