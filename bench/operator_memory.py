"""Operator memory: RSS of the operator process idle, and with 50 experiments running.

Usage: nice -n 10 python bench/operator_memory.py [--experiments 50] [--trials-each 2]

On a real control plane (kube_harness) with the tuner server and `autotune operator` as
local processes: reads the operator's RSS from /proc/<pid>/status (VmRSS; VmHWM for the
peak) once it is idle (started, watching, no experiments), then applies --experiments
AutoTuneExperiments at once, each with --trials-each trials running concurrently (batch
Jobs whose pods run `sleep` on the fake nodes, so they stay running), waits until every
experiment is RUNNING with all its trial pods running, and samples RSS for --sample
seconds. Prints idle / loaded / per-experiment figures and thread counts, plus where the
idle RSS comes from (a fresh interpreter's RSS after each group of the operator's
imports), and writes bench/results/operator-memory-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from operator_rig import experiment, rig, write_result  # noqa: E402


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in KiB and the thread count of a live process."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample(pid: int, seconds: float, every: float = 1.0) -> list[dict[str, int]]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(proc_status(pid))
        time.sleep(every)
    return out


def sample_with_cpu(pid: int, seconds: float) -> tuple[list[dict[str, int]], float]:
    """Samples, and the process's CPU use over them in percent of one core."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    out = sample(pid, seconds)
    return out, round(100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0), 1)


def mib(kib: float) -> float:
    return round(kib / 1024, 1)


IMPORT_STEPS = """
import json
rss = lambda: int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
out = {"python": rss()}
import kopf, kubernetes, pydantic
out["kopf + kubernetes + pydantic"] = rss()
import numpy
out["numpy (the tuners' imports; scipy stays out of the operator)"] = rss()
import autotune_operator.kopf_handlers
out["autotune_operator (spec -> every tuner/assessor/advisor)"] = rss()
print(json.dumps(out))
"""


def import_breakdown() -> dict[str, float]:
    """RSS (MiB) of a fresh interpreter after each group of the operator's imports."""
    out = subprocess.run([sys.executable, "-c", IMPORT_STEPS], capture_output=True, text=True, check=True).stdout
    return {k: mib(v) for k, v in json.loads(out).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiments", type=int, default=50)
    ap.add_argument("--trials-each", type=int, default=2, help="running trials per experiment")
    ap.add_argument("--sample", type=float, default=20, help="seconds of sampling in each state")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    n, k = args.experiments, args.trials_each
    with rig() as r:
        pid = r.operator.pid
        # Idle: the operator has connected and listed (its first log lines), nothing to do.
        deadline = time.monotonic() + 60
        while "autotune" not in r.operator_log.read_text(errors="replace") and "kopf" not in r.operator_log.read_text(errors="replace"):
            if time.monotonic() > deadline or r.operator.poll() is not None:
                raise SystemExit(f"the operator did not start:\n{r.operator_tail()}")
            time.sleep(0.5)
        time.sleep(5)
        idle, idle_cpu = sample_with_cpu(pid, args.sample)
        print(f"idle: RSS {mib(idle[-1]['VmRSS'])} MiB, {idle[-1]['Threads']} threads")

        # `sh -c 'sleep 3600' --x=<x>`: the trial runs (and never reports) until deleted.
        cmd = ["/bin/sh", "-c", "sleep 3600"]
        docs = "---\n".join(experiment(f"mem{i:03d}", cmd, max_trials=k, concurrency=k, values=max(k, 2))
                            for i in range(n))
        t0 = time.monotonic()
        r.apply(docs)

        def running() -> tuple[int, int]:
            items = json.loads(r.kubectl("get", "ate", "-n", r.namespace, "-o", "json"))["items"]
            exps = sum(1 for i in items if (i.get("status") or {}).get("phase") == "RUNNING"
                       and (i["status"].get("trials") or {}).get("running") == k)
            pods = json.loads(r.kubectl("get", "pods", "-n", r.namespace, "--field-selector=status.phase=Running", "-o", "json"))
            return exps, len(pods["items"])

        peak_during_start = 0
        while True:
            peak_during_start = max(peak_during_start, proc_status(pid)["VmRSS"])
            exps, pods = running()
            if exps == n and pods == n * k:
                break
            if time.monotonic() - t0 > args.timeout or r.operator.poll() is not None:
                raise SystemExit(f"only {exps}/{n} experiments RUNNING with {pods}/{n * k} pods after "
                                 f"{args.timeout}s\n{r.operator_tail()}")
            time.sleep(2)
        ramp = time.monotonic() - t0
        print(f"{n} experiments RUNNING with {n * k} trial pods running after {ramp:.0f}s")
        loaded, loaded_cpu = sample_with_cpu(pid, args.sample)
        last = loaded[-1]

    idle_rss = sorted(s["VmRSS"] for s in idle)[len(idle) // 2]
    loaded_rss = sorted(s["VmRSS"] for s in loaded)[len(loaded) // 2]
    res = {
        "benchmark": "operator_memory",
        "experiments": n,
        "running_trials_each": k,
        "idle_rss_mib": mib(idle_rss),
        "idle_threads": idle[-1]["Threads"],
        "loaded_rss_mib": mib(loaded_rss),
        "loaded_rss_max_mib": mib(max(s["VmRSS"] for s in loaded)),
        "peak_rss_mib_vmhwm": mib(last["VmHWM"]),
        "loaded_threads": last["Threads"],
        "per_experiment_mib": round((loaded_rss - idle_rss) / 1024 / n, 2),
        "idle_cpu_percent_of_one_core": idle_cpu,
        "loaded_cpu_percent_of_one_core": loaded_cpu,
        "ramp_seconds": round(ramp, 1),
        "import_breakdown_mib": import_breakdown(),
        "samples_idle": idle,
        "samples_loaded": loaded,
    }
    path = write_result("operator-memory", res)
    print(f"operator RSS: idle {res['idle_rss_mib']} MiB ({res['idle_threads']} threads); with {n} experiments x "
          f"{k} running trials {res['loaded_rss_mib']} MiB ({res['loaded_threads']} threads), peak (VmHWM) "
          f"{res['peak_rss_mib_vmhwm']} MiB; +{res['per_experiment_mib']} MiB per experiment; {path}")
    print(f"operator CPU: idle {idle_cpu}% of one core, with {n} running experiments {loaded_cpu}%")
    print("where the idle RSS comes from (fresh interpreter, cumulative): "
          + "; ".join(f"{k} {v} MiB" for k, v in res["import_breakdown_mib"].items()))


if __name__ == "__main__":
    main()
