"""A fast trial for tests: a known function of the parameters, reported step by step.

Its behaviour is chosen by --mode: ok (report and succeed), fail (exit 3), nofinal
(exit 0 without a final metric), sleep (run until killed). It appends one JSON line per
run to $TOY_RECORD (parameters, argv, device variables, start/end times).
"""

import argparse
import json
import os
import sys
import time

import autotune

p = argparse.ArgumentParser()
p.add_argument("--mode", default="ok")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--echo", default=None)
args = p.parse_args()
params = autotune.get_next_parameter()
start = time.time()
record = {
    "trial": autotune.get_trial_id(),
    "sequence": autotune.get_sequence_id(),
    "params": params,
    "echo": args.echo,
    "pid": os.getpid(),
    "env": {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "DEVICE_ID", "TOY_FROM_SPEC")},
    "start": start,
}


def write(extra):
    path = os.environ.get("TOY_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({**record, **extra}) + "\n")


if args.mode == "fail":
    print("failing on purpose", file=sys.stderr)
    sys.exit(3)
x = float(params.get("x", 0))
y = float(params.get("y", 0)) if not isinstance(params.get("y"), str) else 0.0
value = -((x - 1.0) ** 2) - (y + 0.5) ** 2
stopped = False
for step in range(args.steps):
    if args.mode == "sleep":
        time.sleep(args.sleep or 60)
    elif args.sleep:
        time.sleep(args.sleep)
    if autotune.report_intermediate_result(value * (args.steps - step)):
        stopped = True
        break
if args.mode != "nofinal":
    autotune.report_final_result({"default": value, "x": x})
write({"end": time.time(), "stopped": stopped})
