"""Operator latency: one trial's workload finishing -> the next trial's workload created.

Usage: nice -n 10 python bench/operator_latency.py [--trials 32] [--repeat 1]

On a real control plane (kube_harness: kube-apiserver, kube-controller-manager, fake
nodes running pods as local processes) with the tuner server and `autotune operator` as
local processes, runs an AutoTuneExperiment of --trials sequential trials
(trialConcurrency 1, GridSearch, batch Job workloads whose pod is a real Python trial that
reports its result to the tuner server and exits).

A watch on Jobs, run by this script, timestamps with this process's monotonic clock (not
creationTimestamp, which has 1 s resolution) the moment each Job is first seen (ADDED)
and the moment it is first seen finished: condition SuccessCriteriaMet=True or
Complete=True, whichever comes first (since Kubernetes 1.31 the Job controller sets
SuccessCriteriaMet as soon as the pod succeeded and Complete only after the pod's
termination is tracked, often ~1 s later; the operator acts on the first). Per transition:
    latency = ADDED of Job n+1 - finished of Job n.
It includes the operator's watch, its reconcile (LIST, tuner-server end/summary/suggest
over HTTP) and the Job create, plus both watches' delivery. Prints p50/p95/max and
writes bench/results/operator-latency-<time>.json. Target: p95 < 1 s.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from operator_rig import experiment, percentile, rig, write_result  # noqa: E402

from kube_harness.experiments import ENDED, wait_for_phase  # noqa: E402

TRIAL = """\
import autotune
x = float(autotune.get_next_parameter()["x"])
autotune.report_final_result(x)
"""


class JobClock:
    """Our own watch on the namespace's Jobs: when each was ADDED / first Complete."""

    def __init__(self, api, namespace: str) -> None:
        from kubernetes import client, watch

        self.batch = client.BatchV1Api(api)
        self.ns = namespace
        self.added: dict[str, float] = {}
        self.finished: dict[str, float] = {}  # SuccessCriteriaMet or Complete, first seen
        self.complete: dict[str, float] = {}  # Complete only (kept in the samples for reference)
        self._w = watch.Watch()
        self._ready = threading.Event()
        self._stopping = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        self._ready.wait(10)

    def _run(self) -> None:
        rv = self.batch.list_namespaced_job(self.ns).metadata.resource_version
        self._ready.set()
        try:
            for ev in self._w.stream(self.batch.list_namespaced_job, self.ns, resource_version=rv, timeout_seconds=3600):
                now = time.monotonic()  # first thing: the receipt time is the measurement
                j = ev["object"]
                name = j.metadata.name
                if ev["type"] == "ADDED":
                    self.added.setdefault(name, now)
                true = {c.type for c in (j.status.conditions or []) if c.status == "True"}
                if true & {"SuccessCriteriaMet", "Complete"}:
                    self.finished.setdefault(name, now)
                if "Complete" in true:
                    self.complete.setdefault(name, now)
        except Exception:  # the connection closes when the cluster stops
            if not self._stopping:
                raise

    def stop(self) -> None:
        self._stopping = True
        self._w.stop()

    def transitions(self, prefix: str, n: int) -> list[dict]:
        out = []
        for i in range(n - 1):
            a, b = f"{prefix}-{i}", f"{prefix}-{i + 1}"
            if a in self.finished and b in self.added:
                complete = self.complete.get(a)
                out.append({"from": a, "to": b, "seconds": round(self.added[b] - self.finished[a], 4),
                            "from_complete_s": None if complete is None else round(self.added[b] - complete, 4)})
        return out


def run_once(r, clock: JobClock, name: str, trials: int, script: Path, timeout: float) -> list[dict]:
    r.apply(experiment(name, [sys.executable, str(script)], max_trials=trials, concurrency=1, values=max(trials, 2)))
    try:
        exp = wait_for_phase(r.cluster, r.namespace, name, *ENDED, timeout=timeout, interval=1, log=r.operator_tail)
    except TimeoutError as e:
        raise SystemExit(str(e)) from None
    st = exp.get("status") or {}
    if st["phase"] != "DONE" or st["trials"]["succeeded"] != trials:
        raise SystemExit(f"{name} ended {st.get('phase')}: {st}\noperator log:\n{r.operator_tail()}")
    return clock.transitions(name, trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=32, help="sequential trials per experiment")
    ap.add_argument("--repeat", type=int, default=1, help="experiments, one after another")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    t0 = time.monotonic()
    with rig() as r:
        script = r.tmp / "trial.py"
        script.write_text(TRIAL)
        clock = JobClock(r.cluster.api_client(), r.namespace)
        transitions: list[dict] = []
        for k in range(args.repeat):
            transitions += run_once(r, clock, f"lat{k}", args.trials, script, args.timeout)
        clock.stop()
    secs = [t["seconds"] for t in transitions]
    if not secs:
        raise SystemExit("no transition measured")
    res = {
        "benchmark": "operator_latency",
        "what": "Job n SuccessCriteriaMet/Complete (first watch receipt) -> Job n+1 ADDED (watch receipt), trialConcurrency 1",
        "trials_per_experiment": args.trials,
        "experiments": args.repeat,
        "transitions": len(secs),
        "p50_s": round(percentile(secs, 50), 3),
        "p95_s": round(percentile(secs, 95), 3),
        "max_s": round(max(secs), 3),
        "min_s": round(min(secs), 3),
        "target_p95_s": 1.0,
        "wall_s": round(time.monotonic() - t0, 1),
        "samples": transitions,
    }
    path = write_result("operator-latency", res)
    print(f"operator latency over {len(secs)} transitions (Job finished -> next Job created): "
          f"p50 {res['p50_s']:.3f}s  p95 {res['p95_s']:.3f}s  max {res['max_s']:.3f}s  "
          f"(target p95 < 1 s: {'met' if res['p95_s'] < 1 else 'NOT met'}); {path}")


if __name__ == "__main__":
    main()
