"""A real trial that turns a Ctrl-C into exit code 1, as many training launchers do.

SGDClassifier.partial_fit on scikit-learn's digits, one report per epoch, --sleep S seconds
per epoch (a window for the signal). On KeyboardInterrupt it prints a line and exits 1: the
exit code alone would read as a failure of its code. Appends ``{"ev": "start"|"report"|
"interrupted"|"exit", "pid", ...}`` lines to ``$AUTOTUNE_TRIAL_DIR/attempts.jsonl``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

import autotune

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--sleep", type=float, default=0.3)
args = p.parse_args()


def note(ev, **kw):
    with open(os.path.join(os.environ.get("AUTOTUNE_TRIAL_DIR", "."), "attempts.jsonl"), "a") as f:
        f.write(json.dumps({"ev": ev, "pid": os.getpid(), **kw}) + "\n")


try:
    note("start")
    params = autotune.get_next_parameter()
    X, y = load_digits(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)
    model = SGDClassifier(alpha=float(params.get("alpha", 1e-4)), eta0=float(params.get("eta0", 0.01)),
                          learning_rate="constant", random_state=0)
    acc = 0.0
    for epoch in range(args.epochs):
        model.partial_fit(X_tr, y_tr, classes=np.unique(y))
        acc = float(model.score(X_va, y_va))
        time.sleep(args.sleep)
        autotune.report_intermediate_result(acc)
        note("report", step=epoch, value=acc)
    autotune.report_final_result(acc)
    note("exit")
except KeyboardInterrupt:
    note("interrupted")
    print("interrupted", file=sys.stderr)
    sys.exit(1)
