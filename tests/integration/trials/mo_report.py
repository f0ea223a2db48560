"""A fast two-objective trial: reports {"score": .., "cost": ..} from the parameters.

--mode ok: both objectives; missing: no "cost"; text: "cost" is a string. A bad report is
refused by the tuner server, so the SDK raises and the process exits non-zero.
"""

import argparse

import autotune

p = argparse.ArgumentParser()
p.add_argument("--mode", default="ok")
args = p.parse_args()
x = float(autotune.get_next_parameter().get("x", 0.0))
metric = {"score": 1.0 - (x - 1.0) ** 2, "cost": x * x}  # more score needs more cost up to x = 1
if args.mode == "missing":
    del metric["cost"]
elif args.mode == "text":
    metric["cost"] = "cheap"
autotune.report_final_result(metric)
