"""Local-mode overhead per trial over running the same script bare (not a test).

Usage: python bench/local_overhead.py [--small 5] [--large 25] [--repeat 3]

Runs the same trial script (3 intermediate reports and a final one) N times bare, one
after another, and as an `autotune run` experiment of N trials with concurrency 1, for
two values of N. The difference of the two autotune runs divided by the difference in
trial count cancels autotune's fixed start-up cost; subtracting the bare per-trial time
leaves what local mode adds to each trial (launch, HTTP reports, durable writes,
bookkeeping). Medians over --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SCRIPT = """
import autotune
p = autotune.get_next_parameter()
x = float(p.get("x", 0.5))
for step in range(3):
    autotune.report_intermediate_result(x * step)
autotune.report_final_result(x)
"""


def manifest(script: Path, n: int, *args: str) -> dict:
    """N trials, one at a time, of Random search over x, each running ``python script *args``
    (also bench/tune_overhead.py's `autotune run` side)."""
    return {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "AutoTuneExperiment",
        "metadata": {"name": "overhead"},
        "spec": {
            "maxTrialNum": n,
            "trialConcurrency": 1,
            "searchSpace": '{"x": {"_type": "uniform", "_value": [0, 1]}}',
            "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1, "template": {"spec": {
                "containers": [{"name": "t", "image": "none", "command": [sys.executable, str(script), *args]}]}}}]},
            "tuner": {"builtinTunerName": "Random", "classArgs": '{"optimize_mode": "maximize"}'},
        },
    }


def bare(script: Path, n: int, sdk: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTUNE_")}
    env["PYTHONPATH"] = sdk
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, str(script)], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def local(tmp: Path, script: Path, n: int) -> float:
    path = tmp / f"exp{n}.yaml"
    path.write_text(yaml.safe_dump(manifest(script, n)))
    out = tmp / f"out{n}"
    shutil.rmtree(out, ignore_errors=True)
    exe = shutil.which("autotune", path=str(Path(sys.executable).parent)) or "autotune"
    t0 = time.perf_counter()
    subprocess.run([exe, "run", str(path), "--output", str(out), "--quiet"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=5)
    ap.add_argument("--large", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import autotune

    sdk = str(Path(autotune.__file__).parent.parent)
    tmp = Path(tempfile.mkdtemp())
    script = tmp / "trial.py"
    script.write_text(SCRIPT)
    bare_per, local_per = [], []
    for _ in range(args.repeat):
        bare_per.append(bare(script, args.large, sdk) / args.large)
        local_per.append((local(tmp, script, args.large) - local(tmp, script, args.small)) / (args.large - args.small))
    b, l = statistics.median(bare_per), statistics.median(local_per)
    print(f"bare script:        {b * 1000:8.1f} ms per run")
    print(f"autotune run:       {l * 1000:8.1f} ms per trial (fixed start-up cancelled)")
    print(f"local-mode overhead {(l - b) * 1000:8.1f} ms per trial (target < 100 ms)")


if __name__ == "__main__":
    main()
