"""Metric-gate benchmark (row 9 of bench/RESULTS.md): a canary whose pods must also pass
a Prometheus gate.

The seed-like Redis StatefulSet of rows 1–3 (5 replicas here) in a namespace of its own;
each run is `kubectl-sts_safe canary redis --image … --prometheus URL --fail-if ERRORS
--require UP --metric-interval 1s --metric-passes 2 --yes -o json` against the cluster's
real Prometheus, which scrapes sim-kubelet's per-pod exporter every second. The figure is,
for every step k ≥ 2, the kube-apiserver's `requestReceivedTimestamp` of the plugin's
partition PATCH of step k minus `steps[k-1].passedAt` of the report (the moment the
previous step's gate passed, in the plugin; the same machine's clock). In between the
plugin re-evaluates every pod already updated once (the re-check) and sends the guarded
patch. Per step it also counts the plugin's API requests (audit log, between consecutive
partition writes) and its Prometheus queries (the report), and cross-checks the run's
total against Prometheus' own counter of instant queries.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from collections import Counter

import audit

NS = "sts-safe-bench-metrics"
STS = "redis"
IMAGES = ("redis:7.2-alpine", "redis:7.4-alpine")
FAIL_IF = ('sum(rate(http_requests_total{namespace="$NAMESPACE",pod="$POD",code=~"5.."}[5s])) / '
           'sum(rate(http_requests_total{namespace="$NAMESPACE",pod="$POD"}[5s])) > 0.01')
REQUIRE = 'up{namespace="$NAMESPACE",pod="$POD"} == 1'
INTERVAL = "1s"
PASSES = 2
QUERIES = 2  # per evaluation of a pod: the --fail-if and the --require
GOAL_S = 0.050


def prometheus_queries(url: str) -> float | None:
    """Prometheus' own count of instant queries answered (`/api/v1/query`, every code)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    n = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line:
            n += float(line.rsplit(" ", 1)[1])
    return n


def one_run(h, plugin: str, kubeconfig: str, tail, user: str, agent: str, prom: str, replicas: int,
            i: int) -> dict:
    current = json.loads(h.kubectl("-n", NS, "get", "statefulset", STS, "-o", "json"))
    st = current.get("status", {})
    if (current["spec"].get("updateStrategy", {}).get("rollingUpdate", {}).get("partition", 0)
            or st.get("currentRevision") != st.get("updateRevision")):
        # A run cut short (API server or Prometheus stopped by someone else's fault test)
        # left a rollout half-way: finish it before the next attempt.
        h.kubectl("-n", NS, "patch", "statefulset", STS, "--type", "merge",
                  "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    h.wait_sts(NS, STS, replicas)
    time.sleep(1.0)  # the controller's last status writes
    current = json.loads(h.kubectl("-n", NS, "get", "statefulset", STS, "-o", "json"))
    image = IMAGES[1] if current["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGES[0] else IMAGES[0]
    out = f"{h.workdir}/metrics-{i}.json"
    tail.read()  # skip what came before
    q0 = prometheus_queries(prom)
    p = h.measure([plugin, "canary", STS, "-n", NS, "--kubeconfig", kubeconfig, "--image", f"redis={image}",
                   "--prometheus", prom, "--fail-if", FAIL_IF, "--require", REQUIRE,
                   "--metric-interval", INTERVAL, "--metric-passes", str(PASSES), "--yes", "-o", "json"],
                  stdout_path=out)
    q1 = prometheus_queries(prom)
    if p.code != 0:
        raise RuntimeError(f"metric-gate canary run {i + 1} exited {p.code}: see {out}.err")
    with open(out) as f:
        report = json.load(f)
    steps = report["steps"]
    if report.get("outcome") != "completed" or len(steps) != replicas:
        raise RuntimeError(f"metric-gate canary run {i + 1}: outcome {report.get('outcome')}, "
                           f"{len(steps)} of {replicas} steps")
    time.sleep(1.0)  # audit events of the last requests
    reqs = [e for e in h.requests(tail.read(needles=(NS, user)))
            if e.user == user and e.agent == agent and p.start - 0.05 <= e.received <= p.end + 0.05]
    writes = [e for e in reqs if e.verb == "patch" and e.resource == "statefulsets" and e.subresource is None
              and e.namespace == NS and e.name == STS and e.code == 200]
    # The freeze (template and partition) first, one partition write per step, the
    # verdict annotation last.
    if len(writes) != replicas + 2:
        raise RuntimeError(f"metric-gate canary run {i + 1}: {len(writes)} StatefulSet patches in the audit "
                           f"log, expected {replicas + 2} (freeze, {replicas} steps, verdict)")
    parts = writes[1:-1]
    passed = [audit.ts(s["passedAt"]) for s in steps]
    rows = []
    for k, s in enumerate(steps):
        lo = parts[k].received
        hi = parts[k + 1].received if k + 1 < len(parts) else passed[k]
        window = [e for e in reqs if lo <= e.received < hi]
        rows.append({
            "number": s["number"], "partition": s["partition"], "ordinals": s["ordinals"],
            "seconds": s["seconds"], "queries": s.get("prometheusQueries"),
            "latency": lo - passed[k - 1] if k > 0 else None,
            "requests": len(window), "kinds": dict(Counter(f"{e.verb} {e.kind}" for e in window)),
        })
    before = [e for e in reqs if e.received < parts[0].received]
    after = [e for e in reqs if e.received > passed[-1]]
    lat = [r["latency"] for r in rows if r["latency"] is not None]
    h.log(f"metric gate run {i + 1} (→ {image}): wall {p.wall:.1f}s, pass → next write "
          f"{', '.join(f'{x * 1000:.1f}' for x in lat)} ms, queries per step "
          f"{[r['queries'] for r in rows]}, requests {len(reqs)}")
    return {
        "wall": p.wall, "image": image, "steps": rows, "requests": len(reqs),
        "before": dict(Counter(f"{e.verb} {e.kind}" for e in before)),
        "after": dict(Counter(f"{e.verb} {e.kind}" for e in after)),
        "queries_steps": sum(r["queries"] or 0 for r in rows),
        "queries_prometheus": (q1 - q0) if q0 is not None and q1 is not None else None,
    }


def bench(h, plugin: str, kubeconfig: str, tail, user: str, agent: str, runs: int, prom: str,
          replicas: int = 5, delay: str = "1s") -> dict:
    """`h` holds the driver's helpers: kubectl, measure, log, delete_namespaces, wait_sts,
    requests, attempt, canary_yaml (the rows 1–3 StatefulSet), workdir."""
    h.delete_namespaces([NS], 300)
    h.kubectl("create", "namespace", NS)
    try:
        h.kubectl("apply", "-f", "-", input=h.canary_yaml.format(ns=NS, replicas=replicas, delay=delay,
                                                                 image=IMAGES[0]))
        h.wait_sts(NS, STS, replicas)
        out = []
        for i in range(runs):
            out.append(h.attempt(f"metric gate {i + 1}", lambda i=i: one_run(
                h, plugin, kubeconfig, tail, user, agent, prom, replicas, i)))
    finally:
        h.delete_namespaces([NS], 120)
    return {"runs": out, "replicas": replicas, "delay": delay, "prometheus": prom}


def _latencies(res: dict) -> list[float]:
    return [s["latency"] for r in res["runs"] for s in r["steps"] if s["latency"] is not None]


def summary_rows(res: dict, Stat, verdict) -> list[str]:
    if not res:
        return []
    if not res.get("runs"):
        return [f"| 9 | canary with a metric gate | not measured: {res.get('skipped', 'no runs')} | "
                "median ≤ 50 ms | |"]
    lat = [x * 1000 for x in _latencies(res)]
    per_step = [s["requests"] for r in res["runs"] for s in r["steps"]]
    queries = [s["queries"] for r in res["runs"] for s in r["steps"] if s["queries"] is not None]
    return [
        f"| 9 | canary with a metric gate: step's gate passed (`passedAt`) → next partition PATCH "
        f"(re-check of the updated pods included) | {Stat(lat).fmt('{:.1f}', ' ms')} | median ≤ 50 ms | "
        f"{verdict(statistics.median(lat) <= GOAL_S * 1000)} |",
        f"| 9 | metric-gate canary per step: API requests; Prometheus queries | {Stat(per_step).fmt('{:.0f}')}; "
        f"{Stat(queries).fmt('{:.0f}')} | (no goal) | |",
    ]


def summary_line(res: dict) -> str | None:
    if not res:
        return None
    if not res.get("runs"):
        return f"9 metric gate    not measured: {res.get('skipped', 'no runs')}"
    m = statistics.median(_latencies(res)) * 1000
    return f"9 metric gate    pass → next write median {m:.1f} ms (goal ≤ 50)    {'met' if m <= 50 else 'MISSED'}"


def _kinds(c: dict) -> str:
    return ", ".join(f"{k} {n:g}" for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def section(res: dict, Stat, user: str) -> list[str]:
    if not res:
        return []
    L = ["## 9. canary with a Prometheus metric gate", ""]
    if not res.get("runs"):
        L += [f"Not measured: {res.get('skipped', 'no runs')}.", ""]
        return L
    runs = res["runs"]
    n = res["replicas"]
    L.append(f"StatefulSet `{STS}` in namespace `{NS}`: the StatefulSet of rows 1–3 with {n} replicas "
             f"(ready delay {res['delay']}). Each run changes the image ({IMAGES[0]} ↔ {IMAGES[1]}) with "
             f"`kubectl-sts_safe canary {STS} --image redis=IMAGE --prometheus URL --fail-if ERRORS --require UP "
             f"--metric-interval {INTERVAL} --metric-passes {PASSES} --yes -o json` against the cluster's "
             "Prometheus, which scrapes sim-kubelet's exporter of every pod once a second. ERRORS is "
             f"`{FAIL_IF}` (the pod's error ratio over 5 s above 1 %), UP is `{REQUIRE}`. A pod passes once it "
             f"is Ready and {PASSES} evaluations in a row (one per {INTERVAL} from its Ready on) passed; before "
             "each later step every pod already updated is evaluated once more (the re-check).")
    L.append("")
    L.append("- *pass → next write*: for each step k ≥ 2, the `requestReceivedTimestamp` of the plugin's "
             "partition PATCH of step k (audit log: the StatefulSet patches of the benchmark's identity with "
             "the plugin's user agent, in order, between the freeze and the verdict) minus "
             "`steps[k-1].passedAt` of the report (when the plugin found step k−1's gate passed; same machine "
             f"clock). It spans the re-check (2 queries per updated pod, all at once) and the guarded patch "
             f"going out. {n - 1} per run.")
    L.append(f"- *API requests* of a step: every request of the benchmark's identity (`{user}`) with the "
             "plugin's user agent from the step's partition PATCH up to the next one (the last step: up to its "
             "pass); watches are counted once, when they start. *Prometheus queries* of a step: "
             "`steps[].prometheusQueries` of the report (the re-check before its write and its pod's "
             "evaluations). *Prometheus' own count*: the increase of "
             "`prometheus_http_requests_total{handler=\"/api/v1/query\"}` on its `/metrics` during the run "
             "(the plugin's queries: the preflight's 2 plus the steps'; other suites' queries would add to it).")
    L.append("")
    L.append("| run | wall (s) | pass → next write (ms) | API requests | Prometheus queries: Σ steps (report) | Prometheus' own count |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for i, r in enumerate(runs):
        lat = ", ".join(f"{s['latency'] * 1000:.1f}" for s in r["steps"] if s["latency"] is not None)
        own = r["queries_prometheus"]
        L.append(f"| {i + 1} | {r['wall']:.2f} | {lat} | {r['requests']} | {r['queries_steps']} | "
                 f"{'n/a' if own is None else f'{own:.0f}'} |")
    L.append("")
    L.append(f"Pass → next write: {Stat([x * 1000 for x in _latencies(res)]).fmt('{:.1f}', ' ms')}.")
    L.append("")
    L.append("Per step, over the runs (requests by verb and resource: average per run):")
    L.append("")
    L.append("| step | partition | pass of the previous step → this write | re-check queries | API requests | by verb and resource | Prometheus queries (report) | step (s) |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    before: Counter = Counter()
    after: Counter = Counter()
    for r in runs:
        before.update(r["before"])
        after.update(r["after"])
    L.append(f"| before step 1 (preflight, lock, freeze, watches) | | | | "
             f"{Stat([sum(r['before'].values()) for r in runs]).fmt('{:.0f}')} | "
             f"{_kinds({k: v / len(runs) for k, v in before.items()})} | 2 (preflight) | |")
    for k in range(n):
        ss = [r["steps"][k] for r in runs]
        kinds: Counter = Counter()
        for s in ss:
            kinds.update(s["kinds"])
        lat = [s["latency"] * 1000 for s in ss if s["latency"] is not None]
        L.append(f"| {ss[0]['number']} | {ss[0]['partition']} | {Stat(lat).fmt('{:.1f}', ' ms') if lat else '—'} | "
                 f"{QUERIES * k} | {Stat([s['requests'] for s in ss]).fmt('{:.0f}')} | "
                 f"{_kinds({kk: v / len(runs) for kk, v in kinds.items()})} | "
                 f"{Stat([s['queries'] for s in ss if s['queries'] is not None]).fmt('{:.0f}')} | "
                 f"{Stat([s['seconds'] for s in ss]).fmt('{:.1f}')} |")
    L.append(f"| after the last pass (verdict, lock release) | | | | "
             f"{Stat([sum(r['after'].values()) for r in runs]).fmt('{:.0f}')} | "
             f"{_kinds({k: v / len(runs) for k, v in after.items()})} | 0 | |")
    L.append("")
    return L
