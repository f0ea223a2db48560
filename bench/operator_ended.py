"""Operator cost of ended experiments, and how fast a raised limit resumes one.

Usage: nice -n 10 python bench/operator_ended.py [--experiments 60] [--sample 10]   (about 3 minutes)

On a real control plane (kube_harness) with the tuner server and `autotune operator` as
local processes: samples the operator's RSS and thread count idle, applies --experiments
AutoTuneExperiments of one quick trial each and waits until all are DONE, samples again,
applies as many again (is the memory kept per ended experiment?),
restarts the operator (it finds them all ended and unedited: no reconcile loop, no thread)
and samples a third time; then raises maxTrialNum on one of them and measures the seconds
from the patch to RUNNING and to DONE with 2 trials. Prints the figures and writes
bench/results/operator-ended-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from operator_memory import mib, sample  # noqa: E402
from operator_rig import _stop, experiment, rig, write_result  # noqa: E402


def median(samples: list[dict[str, int]], key: str) -> int:
    return sorted(s[key] for s in samples)[len(samples) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiments", type=int, default=60)
    ap.add_argument("--sample", type=float, default=10, help="seconds of sampling in each state")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    n = args.experiments
    with rig() as r:
        time.sleep(8)
        idle = sample(r.operator.pid, args.sample)
        print(f"idle: RSS {mib(median(idle, 'VmRSS'))} MiB, {median(idle, 'Threads')} threads")

        def phases() -> dict[str, int]:
            items = json.loads(r.kubectl("get", "ate", "-n", r.namespace, "-o", "json"))["items"]
            out: dict[str, int] = {}
            for i in items:
                p = (i.get("status") or {}).get("phase") or "none"
                out[p] = out.get(p, 0) + 1
            return out

        def batch(b: int) -> list[dict[str, int]]:
            # The trial exits at once without a final metric: each experiment ends DONE (1 failed trial).
            docs = "---\n".join(experiment(f"end{b}-{i:03d}", ["/bin/sh", "-c", "true"], max_trials=1)
                                 for i in range(n))
            t0 = time.monotonic()
            r.apply(docs)
            while phases().get("DONE", 0) < n * b:
                if time.monotonic() - t0 > args.timeout or r.operator.poll() is not None:
                    raise SystemExit(f"not all DONE after {args.timeout}s: {phases()}\n{r.operator_tail()}")
                time.sleep(2)
            time.sleep(5)
            out = sample(r.operator.pid, args.sample)
            print(f"batch {b}: {n} more DONE after {time.monotonic() - t0:.0f}s; {n * b} ended: "
                  f"RSS {mib(median(out, 'VmRSS'))} MiB, {median(out, 'Threads')} threads")
            return out

        # Two batches: a second one that costs little more than the first means the memory
        # is the high-water mark of running them, not kept per ended experiment.
        ended = batch(1)
        ended2 = batch(2)

        # Restart: every experiment is found ended and unedited.
        _stop(r.operator)
        env = {**r.cluster.env(), "AUTOTUNE_SERVER_URL": r.server_url, "AUTOTUNE_ADMIN_TOKEN": r.admin_token,
               "AUTOTUNE_NAMESPACES": r.namespace, "AUTOTUNE_WORKLOAD_KIND": "job"}
        op = subprocess.Popen([sys.executable, "-m", "autotune_operator.cli", "operator"], env=env,
                              start_new_session=True, stdout=open(r.operator_log, "ab"), stderr=subprocess.STDOUT)
        try:
            time.sleep(10)
            restarted = sample(op.pid, args.sample)
            print(f"restarted with {2 * n} ended: RSS {mib(median(restarted, 'VmRSS'))} MiB, "
                  f"{median(restarted, 'Threads')} threads; phases {phases()}")

            t1 = time.monotonic()
            r.kubectl("patch", "ate", "end1-000", "-n", r.namespace, "--type=merge", "-p", '{"spec":{"maxTrialNum":2}}')
            to_running = to_done = None
            while to_done is None and time.monotonic() - t1 < 120:
                st = r.status("end1-000")
                if to_running is None and st.get("phase") == "RUNNING":
                    to_running = time.monotonic() - t1
                if st.get("phase") == "DONE" and (st.get("trials") or {}).get("total") == 2:
                    to_done = time.monotonic() - t1
                time.sleep(0.2)
            print(f"resume: patch -> RUNNING {to_running if to_running is None else round(to_running, 2)}s, "
                  f"-> DONE with 2 trials {to_done if to_done is None else round(to_done, 2)}s")
        finally:
            _stop(op)

    res = {
        "benchmark": "operator_ended",
        "experiments": n,
        "idle": {"rss_mib": mib(median(idle, "VmRSS")), "threads": median(idle, "Threads")},
        "ended": {"rss_mib": mib(median(ended, "VmRSS")), "threads": median(ended, "Threads")},
        "ended_twice_as_many": {"rss_mib": mib(median(ended2, "VmRSS")), "threads": median(ended2, "Threads")},
        "restarted_with_ended": {"rss_mib": mib(median(restarted, "VmRSS")), "threads": median(restarted, "Threads")},
        "resume_to_running_s": to_running,
        "resume_to_done_s": to_done,
    }
    print(f"written to {write_result('operator-ended', res)}")


if __name__ == "__main__":
    main()
