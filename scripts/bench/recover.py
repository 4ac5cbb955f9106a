"""recover benchmark (row 8 of bench/RESULTS.md): a pod stranded on a lost node.

Two nodes of the benchmark's own (played by sim-kubelet, labelled, tainted and zoned so no
other pod lands there) and a 1-replica StatefulSet whose pod has the annotation
`sim.sts-safe.dev/ready-delay`. Each run powers off the pod's node
(`sim.sts-safe.dev/power=off`), waits until the node lifecycle controller marks it Unknown
and evicts the pod (Terminating, never replaced), then measures
`kubectl-sts_safe recover db --fence-cmd true --yes` from process start to exit (the exit
comes once the replacement is Ready on the other node). The figure divides that by the
simulator's own delays on the way: scheduling (0: the real kube-scheduler binds), attach
(`--attach-delay`, 100 ms) and ready (the annotation). On the current server the method is
the out-of-service taint; the floor's figure (force-delete: the attach/detach controller
detaches only after its 6-minute timeout) is measured on the 1.20 cluster by
`recover.py --floor` and shown next to it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

NS = "sts-safe-bench-recover"
STS = "db"
ZONE = "sts-safe-bench-recover"
NODES = [f"sts-safe-bench-recover-{i}" for i in range(2)]
READY_DELAY_S = 3.0
ATTACH_DELAY_S = 0.1
SCHEDULE_DELAY_S = 0.0

YAML = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {sts}, namespace: {ns}}}
spec:
  serviceName: {sts}
  replicas: 1
  selector: {{matchLabels: {{app: {sts}}}}}
  template:
    metadata:
      labels: {{app: {sts}}}
      annotations: {{sim.sts-safe.dev/ready-delay: {ready}}}
    spec:
      terminationGracePeriodSeconds: 3
      nodeSelector: {{topology.kubernetes.io/zone: {zone}}}
      tolerations: [{{key: sts-safe.dev/test, operator: Exists, effect: NoSchedule}}]
      containers: [{{name: db, image: "postgres:17"}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"""


def _kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    r = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def _wait(what: str, timeout: float, f):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = f()
        if v:
            return v
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def _node_ready(name: str) -> bool:
    n = json.loads(_kubectl("get", "node", name, "-o", "json"))
    return any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))


def _pod(name: str) -> dict | None:
    out = _kubectl("-n", NS, "get", "pod", name, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def setup() -> None:
    _kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true")
    for n in NODES:
        _kubectl("delete", "node", n, "--ignore-not-found")
        _kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n, "labels": {"sim.sts-safe.dev/node": "true", "kubernetes.io/hostname": n,
                                               "topology.kubernetes.io/zone": ZONE}},
            "spec": {"taints": [{"key": "sts-safe.dev/test", "value": ZONE, "effect": "NoSchedule"}]},
        }))
    for n in NODES:
        _wait(f"node {n} Ready", 60, lambda n=n: _node_ready(n))
    _kubectl("create", "namespace", NS)
    _kubectl("apply", "-f", "-", input=YAML.format(sts=STS, ns=NS, zone=ZONE, ready=f"{int(READY_DELAY_S * 1000)}ms"))
    _kubectl("-n", NS, "rollout", "status", f"statefulset/{STS}", "--timeout=180s")


def teardown() -> None:
    _kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
    for n in NODES:
        _kubectl("delete", "node", n, "--ignore-not-found", check=False)


def one_run(plugin: str, kubeconfig: str | None, method: str, timeout: str, workdir: str, i: int, log) -> dict:
    pod = _pod(f"{STS}-0")
    lost = pod["spec"]["nodeName"]
    _kubectl("annotate", "node", lost, "sim.sts-safe.dev/power=off", "--overwrite")
    t_off = time.time()
    _wait("the pod stranded (Terminating past its grace period on an Unknown node)", 180, lambda: (
        (p := _pod(f"{STS}-0")) is not None and p["metadata"].get("deletionTimestamp")
        and datetime.datetime.fromisoformat(p["metadata"]["deletionTimestamp"].replace("Z", "+00:00"))
        < datetime.datetime.now(datetime.timezone.utc) and not _node_ready(lost)))
    stranded_after = time.time() - t_off
    cmd = [plugin, "recover", STS, "-n", NS, "--min-down", "5s", "--yes", "--fence-cmd", "true",
           "--method", method, "--timeout", timeout, "-o", "json"]
    if kubeconfig:
        cmd += ["--kubeconfig", kubeconfig]
    out = os.path.join(workdir, f"recover-{method}-{i}.json")
    t0 = time.perf_counter()
    with open(out, "wb") as f, open(out + ".err", "wb") as e:
        code = subprocess.run(cmd, stdout=f, stderr=e, stdin=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"recover run {i} exited {code}: see {out}.err")
    with open(out) as f:
        report = json.load(f)
    p = report["pods"][0]
    if p["newNode"] == lost or not p["newUid"]:
        raise RuntimeError(f"recover run {i}: came back on {p['newNode']} (lost {lost})")
    simulated = SCHEDULE_DELAY_S + ATTACH_DELAY_S + READY_DELAY_S
    log(f"recover ({method}) run {i + 1}: {wall:.2f} s (stranded {stranded_after:.0f} s after power-off)")
    # Give the node back for the next run.
    _kubectl("annotate", "node", lost, "sim.sts-safe.dev/power=on", "--overwrite")
    _wait(f"node {lost} Ready again", 60, lambda: _node_ready(lost))
    if report.get("tainted"):
        untaint = [plugin, "recover", "--untaint", lost, "--yes"] + (["--kubeconfig", kubeconfig] if kubeconfig else [])
        subprocess.run(untaint, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return {"wall": wall, "simulated": simulated, "ratio": wall / simulated, "method": report["method"],
            "stranded_after": stranded_after, "from": lost, "to": p["newNode"]}


def bench(plugin: str, kubeconfig: str | None, runs: int, workdir: str, log, method: str = "auto",
          timeout: str = "3m") -> dict:
    setup()
    try:
        out = [one_run(plugin, kubeconfig, method, timeout, workdir, i, log) for i in range(runs)]
    finally:
        teardown()
    return {"runs": out, "ready_delay": READY_DELAY_S, "attach_delay": ATTACH_DELAY_S}


def summary_rows(res: dict, floor: dict | None, Stat, verdict) -> list[str]:
    if not res or not res.get("runs"):
        return []
    ratio = [r["ratio"] for r in res["runs"]]
    rows = [f"| 8 | recover ({res['runs'][0]['method']}): start → replacement Ready ÷ simulated "
            f"schedule + attach + ready | {Stat(ratio).fmt('{:.3f}')} | ≤ 1.2 | {verdict(statistics.median(ratio) <= 1.2)} |"]
    if floor and floor.get("runs"):
        fr = [r["ratio"] for r in floor["runs"]]
        rows.append(f"| 8 | recover on the 1.20 floor ({floor['runs'][0]['method']}, the controller's 6-minute "
                    f"force detach): same ratio | {Stat(fr).fmt('{:.1f}')} | (no goal: the controller's wait) | |")
    return rows


def section(res: dict, floor: dict | None, Stat) -> list[str]:
    if not res or not res.get("runs"):
        return []
    L = ["## 8. recover: a pod stranded on a lost node", ""]
    L.append(f"A 1-replica StatefulSet `{STS}` in namespace `{NS}` on two nodes of its own "
             f"({', '.join(NODES)}), its pod annotated `sim.sts-safe.dev/ready-delay: {int(READY_DELAY_S * 1000)}ms`. "
             "Each run powers off the pod's node, waits until the node lifecycle controller marks it Unknown and "
             "the pod is evicted (Terminating, not replaced), then times `kubectl-sts_safe recover "
             f"{STS} --fence-cmd true --yes -o json` from start to exit (the exit comes with the replacement "
             "Ready on the other node), and gives the node back (`recover --untaint` after the taint).")
    L.append("")
    L.append(f"- *simulated*: what the simulator is defined to take on the way: scheduling {SCHEDULE_DELAY_S:.1f} s "
             f"(the real kube-scheduler binds), attach {ATTACH_DELAY_S:.1f} s (`--attach-delay`), ready "
             f"{READY_DELAY_S:.1f} s (the annotation) = {SCHEDULE_DELAY_S + ATTACH_DELAY_S + READY_DELAY_S:.1f} s.")
    L.append("")
    L.append("| server | run | method | wall (s) | simulated (s) | ratio | stranded after power-off (s) |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in (("current", res), ("1.20 floor", floor or {})):
        for i, x in enumerate(r.get("runs", [])):
            L.append(f"| {name} | {i + 1} | {x['method']} | {x['wall']:.2f} | {x['simulated']:.1f} | "
                     f"{x['ratio']:.3f} | {x['stranded_after']:.0f} |")
    L.append("")
    if floor and floor.get("runs"):
        L.append("On the floor the wall time is the attach/detach controller's force-detach timeout (6 minutes "
                 "after the pod is gone, while the node is not Ready) plus the same path: the reason the current "
                 "server's out-of-service taint is the method `auto` picks there.")
        L.append("")
    return L


def main() -> int:
    """`recover.py --floor OUT.json`: the floor's runs (force-delete), for bench.sh."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workdir", default="target/bench")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    res = bench(a.plugin, None, a.runs, a.workdir, lambda m: print(f"bench: {m}", file=sys.stderr),
                method="force-delete", timeout="10m")
    with open(a.out, "w") as f:
        json.dump(res, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
