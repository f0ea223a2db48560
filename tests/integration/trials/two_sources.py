"""A trial that both prints its objective (read by the StdOut collector) and reports it with
the SDK, each epoch, different values from each: 'accuracy=0.1', '0.2', '0.3' printed and
0.5, 0.6, 0.7 reported. --order says which of the two comes first in an epoch; after the
printed one the trial waits until the tuner server has recorded it (the latest 'accuracy' of
the trial's run on the server's MLflow endpoint, where collected values are kept, is that
value), so the two sources reach the server interleaved as they are here.
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

import autotune

PRINTED = ["0.1", "0.2", "0.3"]
REPORTED = [0.5, 0.6, 0.7]

p = argparse.ArgumentParser()
p.add_argument("--order", choices=["sdk-first", "print-first"], required=True)
args = p.parse_args()
autotune.get_next_parameter()


def latest_accuracy() -> float | None:
    # With a metrics collector no MLFLOW_* is set: the trial's run is named as
    # tuner_server/mlflow_names.py names it.
    exp, trial = os.environ["AUTOTUNE_EXPERIMENT_ID"], os.environ["AUTOTUNE_TRIAL_ID"]
    url = (f"{os.environ['AUTOTUNE_SERVER_URL'].rstrip('/')}/mlflow/{urllib.parse.quote(exp, safe='')}/"
           f"{urllib.parse.quote(trial, safe='')}/api/2.0/mlflow/runs/get?"
           + urllib.parse.urlencode({"run_id": re.sub(r"[^\w-]", "_", trial)[:256]}))
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["AUTOTUNE_TOKEN"]})
    with urllib.request.urlopen(req, timeout=30) as r:
        run = json.load(r)["run"]
    return next((m["value"] for m in run["data"].get("metrics", []) if m["key"] == "accuracy"), None)


def print_and_wait(text: str) -> None:
    print(f"accuracy={text}", flush=True)
    deadline = time.monotonic() + 120  # a limit, not a timing: the collector reads every second or so
    while latest_accuracy() != float(text):
        if time.monotonic() > deadline:
            sys.exit(f"the printed accuracy={text} was never recorded")
        time.sleep(0.1)


for printed, reported in zip(PRINTED, REPORTED):
    if args.order == "sdk-first":
        autotune.report_intermediate_result(reported)
        print_and_wait(printed)
    else:
        print_and_wait(printed)
        autotune.report_intermediate_result(reported)
autotune.report_final_result(REPORTED[-1])
