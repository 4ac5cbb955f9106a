"""Row 10 of `make bench`: the ecosystem commands (issue 16), measured side by side with
what kubectl itself does for the same question.

- `status -A` (the StatefulSet list of the whole cluster) against the 500 StatefulSets,
  2500 pods and 5000 claims of row 4, beside `kubectl get statefulsets -A` (what a user
  types today) and `kubectl get statefulsets,pods,persistentvolumeclaims -A` (the data the
  list's READY and ORPHAN PVCS columns are made of).
- Live-name completion through kubectl (`kubectl __complete sts-safe status -n NS ""`,
  which runs `kubectl_complete-sts_safe`) beside kubectl's own completion of StatefulSet
  names (`kubectl __complete get statefulsets -n NS ""`), in a namespace of 50.

Python 3.11 standard library only; the driver passes its process helpers in.
"""

from __future__ import annotations

import os
import statistics

GOAL_LIST = 1.3  # status -A wall ÷ kubectl get of the same kinds
GOAL_COMPLETE = 1.2  # completion of names through kubectl ÷ kubectl's own completion


def bench(plugin: str, kubeconfig: str, runs: int, namespace: str, measure, attempt, log, outdir: str) -> dict:
    # Absolute: kubectl (Go's exec.LookPath) ignores what it finds through a relative PATH entry.
    plugin = os.path.abspath(plugin)
    bindir = os.path.dirname(plugin)
    completer = os.path.join(bindir, "kubectl_complete-sts_safe")
    if not os.access(completer, os.X_OK):
        return {"skipped": f"{completer} was not built"}
    env = dict(os.environ, NO_COLOR="1", KUBECONFIG=kubeconfig,
               PATH=bindir + os.pathsep + os.environ["PATH"])
    cmds = {
        "status -A": [plugin, "status", "-A"],
        "get sts -A": ["kubectl", "get", "statefulsets", "-A"],
        "get sts,pods,pvc -A": ["kubectl", "get", "statefulsets,pods,persistentvolumeclaims", "-A"],
        "complete via kubectl": ["kubectl", "__complete", "sts-safe", "status", "-n", namespace, ""],
        "complete direct": [completer, "status", "-n", namespace, ""],
        "kubectl complete": ["kubectl", "__complete", "get", "statefulsets", "-n", namespace, ""],
    }
    res: dict = {k: [] for k in cmds}
    res.update({f"rss {k}": [] for k in cmds})
    res["namespace"] = namespace

    def run(name: str):
        path = os.path.join(outdir, "ecosystem-" + name.replace(" ", "_").replace(",", "_") + ".out")
        p = measure(cmds[name], env=env, stdout_path=path)
        if p.code != 0:
            with open(path + ".err") as f:
                raise RuntimeError(f"{' '.join(cmds[name])} exited {p.code}: {f.read().strip()[:300]}")
        with open(path) as f:
            p.stdout = f.read()
        return p

    order = list(cmds)
    for name in order:  # warm-up: page cache, kubectl's discovery cache
        attempt(f"ecosystem warm-up {name}", lambda: run(name))
    for i in range(runs):
        for name in (order if i % 2 == 0 else order[::-1]):
            p = attempt(f"ecosystem {i + 1} {name}", lambda: run(name))
            res[name].append(p.wall)
            res[f"rss {name}"].append(p.maxrss_kb / 1024)
            if name == "status -A":
                res["list_lines"] = len(p.stdout.splitlines()) - 1
            if name.startswith("complete") or name == "kubectl complete":
                names = [ln.split("\t")[0] for ln in p.stdout.splitlines() if ln and not ln.startswith(":")]
                res[f"names {name}"] = len(names)
        log(f"ecosystem {i + 1}/{runs}: status -A {res['status -A'][-1]:.2f}s, get sts -A "
            f"{res['get sts -A'][-1]:.2f}s; completion {res['complete via kubectl'][-1] * 1000:.0f} ms vs "
            f"{res['kubectl complete'][-1] * 1000:.0f} ms")
    want = res.get("names kubectl complete")
    for name in ("complete via kubectl", "complete direct"):
        if res.get(f"names {name}") != want:
            raise RuntimeError(f"{name} offered {res.get(f'names {name}')} names, kubectl's own completion {want}")
    res["list_ratio"] = [a / b for a, b in zip(res["status -A"], res["get sts,pods,pvc -A"])]
    res["list_ratio_sts"] = [a / b for a, b in zip(res["status -A"], res["get sts -A"])]
    res["rss_ratio"] = [a / b for a, b in zip(res["rss status -A"], res["rss get sts,pods,pvc -A"])]
    res["complete_ratio"] = [a / b for a, b in zip(res["complete via kubectl"], res["kubectl complete"])]
    return res


def _med(xs):
    return statistics.median(xs) if xs else float("nan")


def summary_rows(res: dict, Stat, verdict) -> list[str]:
    if not res:
        return []
    if res.get("skipped"):
        return [f"| 10 | status -A; completion through kubectl | not measured: {res['skipped']} | | |"]
    return [
        f"| 10 | `status -A` wall ÷ `kubectl get statefulsets,pods,persistentvolumeclaims -A` (500 StatefulSets) | "
        f"{Stat(res['list_ratio']).fmt('{:.2f}')} | ≤ {GOAL_LIST} | {verdict(_med(res['list_ratio']) <= GOAL_LIST)} |",
        f"| 10 | live-name completion through kubectl ÷ kubectl's own completion of StatefulSet names | "
        f"{Stat(res['complete_ratio']).fmt('{:.2f}')} | ≤ {GOAL_COMPLETE} | "
        f"{verdict(_med(res['complete_ratio']) <= GOAL_COMPLETE)} |",
    ]


def summary_line(res: dict) -> str | None:
    if not res:
        return None
    if res.get("skipped"):
        return f"10 ecosystem    not measured: {res['skipped']}"
    lr, cr = _med(res["list_ratio"]), _med(res["complete_ratio"])
    return (f"10 ecosystem    status -A ÷ kubectl get {lr:.2f} (≤ {GOAL_LIST}) {'met' if lr <= GOAL_LIST else 'MISSED'}, "
            f"completion ÷ kubectl's {cr:.2f} (≤ {GOAL_COMPLETE}) {'met' if cr <= GOAL_COMPLETE else 'MISSED'}")


def section(res: dict, Stat, fmt_ms) -> list[str]:
    if not res:
        return []
    L = ["## 10. status -A and completion through kubectl", ""]
    if res.get("skipped"):
        return L + [f"Not measured: {res['skipped']}.", ""]
    n = len(res["status -A"])
    L.append(f"Against the cluster of row 4 (500 StatefulSets, 2500 pods, 5000 claims, plus whatever other suites "
             f"have there), {n} runs of each command after one warm-up each, alternating the order; whole "
             "processes, output to a file, as the benchmark's identity.")
    L.append("")
    L.append("| command | wall time | peak RSS | ratio |")
    L.append("| --- | --- | --- | --- |")

    def row(label: str, key: str, ratio: str) -> None:
        L.append(f"| {label} | {fmt_ms(res[key])} | {Stat(res['rss ' + key]).fmt('{:.0f}', ' MiB')} | {ratio} |")

    row(f"`kubectl-sts_safe status -A` ({res.get('list_lines', '?')} lines)", "status -A",
        f"{Stat(res['list_ratio']).fmt('{:.2f}')} of the next row; {Stat(res['list_ratio_sts']).fmt('{:.2f}')} of "
        "the one after")
    row("`kubectl get statefulsets,pods,persistentvolumeclaims -A`", "get sts,pods,pvc -A", "1")
    row("`kubectl get statefulsets -A`", "get sts -A", "")
    L.append("")
    L.append(f"Completion of a StatefulSet name in namespace `{res['namespace']}` (50 StatefulSets; every command "
             f"offered {res.get('names kubectl complete', '?')} names). kubectl is the one on PATH; the plugin's "
             "completion executable is found on PATH next to the plugin. Peak RSS through kubectl is the larger of "
             "kubectl's and the completion executable's (the kernel folds a waited-for child's peak into its "
             "parent's figure).")
    L.append("")
    L.append("| command | wall time | peak RSS | ratio |")
    L.append("| --- | --- | --- | --- |")
    row(f"`kubectl __complete sts-safe status -n {res['namespace']} \"\"`", "complete via kubectl",
        Stat(res["complete_ratio"]).fmt("{:.2f}"))
    row(f"`kubectl __complete get statefulsets -n {res['namespace']} \"\"` (kubectl's own)", "kubectl complete",
        "1")
    row(f"`kubectl_complete-sts_safe status -n {res['namespace']} \"\"` (directly)", "complete direct", "")
    L.append("")
    return L
