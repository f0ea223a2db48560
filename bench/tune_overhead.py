"""What `autotune.tune()` costs over `autotune run` for the same trials (not a test).

Usage: python bench/tune_overhead.py [--small 4] [--large 16] [--repeat 2]

One file defines ``train(params)`` (3 intermediate reports, returns its result). It runs as
an experiment of N trials, concurrency 1, twice: ``autotune.tune(train, ...)`` from the
file's ``__main__`` block (each trial: the launcher imports the file and calls train), and
`autotune run` of a manifest whose command runs the file as a script that calls train and
reports. For two values of N, (time(large) - time(small)) / (large - small) is the time per
trial, start-up cancelled; the intercept is the fixed cost (tune()'s includes its one
import check of the file). Medians over --repeat runs; table printed and written to
bench/results/tune_overhead.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # with PYTHONSAFEPATH too
from local_overhead import manifest  # noqa: E402

TRIAL_FILE = '''
import sys

import autotune

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}


def train(params):
    x = float(params.get("x", 0.5))
    for step in range(3):
        autotune.report_intermediate_result(x * step)
    return x


if __name__ == "__main__":
    if sys.argv[1] == "tune":
        autotune.tune(train, SPACE, tuner="Random", max_trials=int(sys.argv[2]), output=sys.argv[3],
                      name="overhead", quiet=True)
    else:  # a trial of `autotune run`
        autotune.report_final_result(train(autotune.get_next_parameter()))
'''


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_once(tmp: Path, script: Path, way: str, n: int, k: int) -> float:
    out = tmp / f"{way}-{n}-{k}"
    if way == "tune":
        return timed([sys.executable, str(script), "tune", str(n), str(out)], tmp)
    path = tmp / f"m-{n}.yaml"
    path.write_text(yaml.safe_dump(manifest(script, n, "trial")))
    return timed([sys.executable, "-m", "autotune_operator.cli", "run", str(path), "--output", str(out), "--quiet"], tmp)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--small", type=int, default=4)
    p.add_argument("--large", type=int, default=16)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        script = tmp / "overhead_train.py"
        script.write_text(TRIAL_FILE)
        times: dict[tuple[str, int], list[float]] = {}
        for k in range(args.repeat):  # interleaved, so a slow spell of the machine hits both ways
            for n in (args.small, args.large):
                for way in ("run", "tune"):
                    times.setdefault((way, n), []).append(run_once(tmp, script, way, n, k))
    for way in ("run", "tune"):
        small, large = statistics.median(times[(way, args.small)]), statistics.median(times[(way, args.large)])
        per = (large - small) / (args.large - args.small)
        rows.append((way, per, small - per * args.small))
    lines = ["| way | per trial (ms) | fixed (s) |", "|---|---:|---:|"]
    lines += [f"| {'autotune.tune()' if w == 'tune' else 'autotune run'} | {per * 1000:.0f} | {fixed:.2f} |"
              for w, per, fixed in rows]
    ratio = rows[1][1] / rows[0][1] if rows[0][1] > 0 else float("nan")
    lines.append(f"\ntune()/run per trial: {ratio:.2f} ({args.small} and {args.large} trials, concurrency 1, "
                 f"median of {args.repeat})")
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "tune_overhead.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
