"""What reading metrics from a trial's output costs the controller (not a test).

Usage: python bench/log_metrics_speed.py [--lines 200000] [--repeat 5]

Writes a trial.log of Katib-style lines (``epoch=N accuracy=0.9512 loss=0.2034`` among
progress lines that hold no metric), then measures, medians over --repeat:
- the parser alone (operator/log_metrics.py, Katib's default format): lines per second;
- LocalExecutor.read_log + the parser, reading the whole log in the controller's parts
  (final=True): MB per second;
- one pass over a log with nothing new (what each reconcile pass costs per running trial
  once it has caught up): microseconds.
Prints a table and writes it to bench/results/log_metrics_speed.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autotune_operator.executors.local import LocalExecutor, ProcessTemplate
from autotune_operator.log_metrics import LogParser


def make_log(path: Path, n: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            if i % 4 == 3:
                f.write(f"epoch={i // 4} accuracy={0.5 + (i % 997) / 2000:.4f} loss={1.0 / (i + 1):.6f}\n")
            else:
                f.write(f"step {i}: batch {i % 128}/128 [{'=' * (i % 30):<30}] lr 0.001\n")
    return path.stat().st_size


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        size = make_log(out / "trials" / "t-0" / "trial.log", args.lines)
        lines = (out / "trials" / "t-0" / "trial.log").read_text().splitlines()
        ex = LocalExecutor(ProcessTemplate(("true",), {}, tmp), out)

        def parse_only() -> None:
            got = LogParser.of(None, ["accuracy", "loss"]).feed(lines)
            assert len(got) == 2 * (args.lines // 4)

        def read_and_parse() -> None:
            p, cursor, n = LogParser.of(None, ["accuracy", "loss"]), None, 0
            while (chunk := ex.read_log("t-0", cursor, final=True)) is not None and chunk.lines:
                n += len(p.feed(chunk.lines))
                cursor = chunk.cursor
            assert n == 2 * (args.lines // 4)

        def idle_pass() -> None:
            for _ in range(1000):
                chunk = ex.read_log("t-0", size)
                assert chunk is not None and not chunk.lines

        t_parse = median_time(parse_only, args.repeat)
        t_read = median_time(read_and_parse, args.repeat)
        t_idle = median_time(idle_pass, args.repeat) / 1000
    rows = [
        ("log", f"{args.lines:,} lines, {size / 1e6:.1f} MB, a metric line in 4"),
        ("parser (default format)", f"{args.lines / t_parse:,.0f} lines/s"),
        ("read_log + parser (whole log)", f"{size / 1e6 / t_read:.1f} MB/s ({t_read:.2f} s)"),
        ("pass with nothing new, per trial", f"{t_idle * 1e6:.0f} µs"),
    ]
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    print(table)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "log_metrics_speed.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
