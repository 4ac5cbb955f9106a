"""resize-pvcs benchmark (row 7 of bench/RESULTS.md): a 10-replica online resize.

sim-kubelet plays the external resizer; its StorageClass annotation
`sts-safe.dev/resize-delay` fixes how long it takes to grow one volume, so the sum of the
simulated resize times is known exactly: replicas × delay (the plugin grows the claims one at
a time, top ordinal first). The figure is the plugin's wall time (process start to exit,
including its start-up, preflight, lock, the re-create of the StatefulSet and its check)
divided by that sum, and its API requests per claim, counted in the audit log by the
benchmark's own identity.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter

NS = "sts-safe-bench-resize"
CLASS = "sim-bench-resize"
STS = "db"

YAML = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {cls}
  annotations: {{sts-safe.dev/expansion: online, sts-safe.dev/resize-delay: {delay}}}
provisioner: sts-safe.dev/sim
reclaimPolicy: Delete
allowVolumeExpansion: true
---
apiVersion: v1
kind: Service
metadata: {{name: {sts}, namespace: {ns}}}
spec: {{clusterIP: None, selector: {{app: {sts}}}, ports: [{{port: 5432, name: db}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {sts}, namespace: {ns}}}
spec:
  serviceName: {sts}
  replicas: {replicas}
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: {sts}}}}}
  template:
    metadata: {{labels: {{app: {sts}}}}}
    spec:
      containers: [{{name: db, image: "postgres:17", volumeMounts: [{{name: data, mountPath: /data}}]}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: {cls}
        resources: {{requests: {{storage: 1Gi}}}}
"""


def bench(h, plugin: str, kubeconfig: str, tail, user: str, runs: int, replicas: int = 10,
          delay_s: float = 1.0) -> dict:
    """`h` holds the driver's helpers: kubectl, measure, log, delete_namespaces, wait_sts."""
    h.delete_namespaces([NS], 300)
    h.kubectl("create", "namespace", NS)
    h.kubectl("apply", "-f", "-", input=YAML.format(cls=CLASS, delay=f"{int(delay_s * 1000)}ms", ns=NS,
                                                    sts=STS, replicas=replicas))
    h.wait_sts(NS, STS, replicas)
    out = []
    for i in range(runs):
        size = f"{2 + i}Gi"
        h.log(f"resize-pvcs: run {i + 1}/{runs} → {size}")
        tail.read()  # skip what came before
        p = h.measure([plugin, "resize-pvcs", STS, "-n", NS, "--kubeconfig", kubeconfig, "--size", size,
                       "--yes", "-o", "json"], stdout_path=f"{h.workdir}/resize-{i}.json")
        if p.code != 0:
            raise RuntimeError(f"resize-pvcs run {i} exited {p.code}: see {h.workdir}/resize-{i}.json.err")
        with open(f"{h.workdir}/resize-{i}.json") as f:
            report = json.load(f)
        grown = sum(1 for c in report["claims"] if c["outcome"] == "grown")
        replaced = (report.get("recreate") or {}).get("podsReplaced")
        if grown != replicas or replaced != 0:
            raise RuntimeError(f"resize-pvcs run {i}: {grown} claims grown, {replaced} pods replaced")
        reqs = [e for e in h.requests(tail.read()) if e.user == user and p.start - 1 <= e.received <= p.end + 1]
        kinds = Counter(f"{e.verb} {e.kind}" for e in reqs)
        simulated = replicas * delay_s
        out.append({"wall": p.wall, "simulated": simulated, "ratio": p.wall / simulated,
                    "requests": len(reqs), "per_pvc": len(reqs) / replicas, "kinds": dict(kinds),
                    "recreate": report.get("recreate")})
    h.delete_namespaces([NS], 120)
    h.kubectl("delete", "storageclass", CLASS, "--ignore-not-found", check=False)
    return {"runs": out, "replicas": replicas, "delay": delay_s}


def summary_rows(res: dict, Stat, verdict) -> list[str]:
    if not res or not res.get("runs"):
        return []
    ratio = [r["ratio"] for r in res["runs"]]
    per = [r["per_pvc"] for r in res["runs"]]
    ok = statistics.median(ratio) <= 1.1
    return [
        f"| 7 | resize-pvcs, {res['replicas']} replicas online: wall ÷ Σ simulated resize time | "
        f"{Stat(ratio).fmt('{:.3f}')} | ≤ 1.1 | {verdict(ok)} |",
        f"| 7 | resize-pvcs API requests per PVC | {Stat(per).fmt('{:.1f}')} | (no goal) | |",
    ]


def section(res: dict, Stat, user: str) -> list[str]:
    if not res or not res.get("runs"):
        return []
    runs = res["runs"]
    L = ["## 7. resize-pvcs: a 10-replica online resize", ""]
    L.append(f"StatefulSet `{STS}` in namespace `{NS}`: {res['replicas']} replicas, a 1 Gi claim each in "
             f"StorageClass `{CLASS}` (`sts-safe.dev/expansion: online`, `sts-safe.dev/resize-delay: "
             f"{int(res['delay'] * 1000)}ms`: sim-kubelet's resizer takes exactly that long per volume). Each run "
             f"grows every claim by 1 Gi (`kubectl-sts_safe resize-pvcs {STS} --size NGi --yes -o json`): the "
             "claims one at a time, top ordinal first, then the StatefulSet deleted with "
             "propagationPolicy=Orphan and created again, and the adoption checked.")
    L.append("")
    L.append(f"- *wall*: the whole process, start to exit. *Σ simulated*: replicas × delay = "
             f"{res['replicas'] * res['delay']:.0f} s, the time the simulated resizer is defined to take.")
    L.append(f"- *requests*: every request of the benchmark's identity (`{user}`) during the run, from the "
             "audit log (watches counted once).")
    L.append("")
    L.append("| run | wall (s) | Σ simulated (s) | ratio | requests | per PVC | pods adopted | pods replaced |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, r in enumerate(runs):
        rc = r.get("recreate") or {}
        L.append(f"| {i + 1} | {r['wall']:.2f} | {r['simulated']:.0f} | {r['ratio']:.3f} | {r['requests']} | "
                 f"{r['per_pvc']:.1f} | {rc.get('podsAdopted', '?')} | {rc.get('podsReplaced', '?')} |")
    L.append("")
    L.append(f"Ratio {Stat([r['ratio'] for r in runs]).fmt('{:.3f}')}; requests per PVC "
             f"{Stat([r['per_pvc'] for r in runs]).fmt('{:.1f}')}.")
    L.append("")
    mid = sorted(runs, key=lambda r: r["requests"])[len(runs) // 2]
    L.append("Requests of the median run, by verb and resource:")
    L.append("")
    L.append("| request | count |")
    L.append("| --- | --- |")
    for k, n in sorted(mid["kinds"].items(), key=lambda kv: (-kv[1], kv[0])):
        L.append(f"| {k} | {n} |")
    L.append("")
    return L
