"""A trial that reports its objective with the SDK and also sends it by another channel, each
epoch, different values from each: 0.5, 0.6, 0.7 reported with the SDK, and 0.1, 0.2, 0.3
printed (--other print: 'accuracy=0.1', read by the StdOut collector) or logged with MLflow
(--other mlflow: mlflow.log_metric, through the variables AutoTune sets). --order says which
of the two comes first in an epoch (sdk-first, or print-first: the other channel first).
After a printed value the trial waits until the tuner server has recorded it (the latest
'accuracy' of the trial's run on the server's MLflow endpoint, where collected values are
kept, is that value); an MLflow call returns once it is recorded. So the two channels reach
the server interleaved as they are here. --no-final: no autotune.report_final_result, so the
final result is the one AutoTune takes by itself on exit 0.
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
p.add_argument("--other", choices=["print", "mlflow"], default="print")
p.add_argument("--no-final", action="store_true")
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


def send_other(step: int, text: str) -> None:
    if args.other == "print":
        print_and_wait(text)
    else:
        import mlflow  # (only here: the print case runs without MLflow's client)

        mlflow.log_metric("accuracy", float(text), step=step)


for step, (printed, reported) in enumerate(zip(PRINTED, REPORTED)):
    if args.order == "sdk-first":
        autotune.report_intermediate_result(reported)
        send_other(step, printed)
    else:
        send_other(step, printed)
        autotune.report_intermediate_result(reported)
if not args.no_final:
    autotune.report_final_result(REPORTED[-1])
