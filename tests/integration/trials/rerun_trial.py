"""One process of a trial: reports each value of $RUN_VALUES (comma-separated) as an
intermediate result, writing the answers (stop or not) to $RUN_ANSWERS (JSON list) when set.
Then, with $RUN_READY set, it creates that file and sleeps until it is killed (a process killed
mid-training, held deterministically), or with $RUN_RELEASE set too until that file exists (a
process that goes on beside its replacement); then it reports its last value as the final result
and exits 0. Run again for the same trial, it is the trial's restarted process (steps from 0, or
from $RUN_FROM_STEP)."""

import json
import os
import time

import autotune

values = [float(v) for v in os.environ["RUN_VALUES"].split(",")]
# $RUN_FROM_STEP: the step of the first report (a script resumed from a checkpoint), the next ones follow.
first = int(os.environ["RUN_FROM_STEP"]) if os.environ.get("RUN_FROM_STEP") else None
answers = [autotune.report_intermediate_result(v, step=first) if i == 0 and first is not None
           else autotune.report_intermediate_result(v) for i, v in enumerate(values)]
if os.environ.get("RUN_ANSWERS"):
    with open(os.environ["RUN_ANSWERS"], "w") as f:
        json.dump(answers, f)
if os.environ.get("RUN_READY"):
    open(os.environ["RUN_READY"], "w").close()
    release = os.environ.get("RUN_RELEASE")
    while not (release and os.path.exists(release)):
        time.sleep(0.05 if release else 3600)
autotune.report_final_result(values[-1])
