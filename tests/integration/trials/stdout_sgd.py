"""A Katib-style trial: SGDClassifier on scikit-learn's digits, one epoch at a time, that
only prints its metrics (``epoch=3 accuracy=0.9512 loss=0.2034``): no AutoTune SDK, no
MLflow. AutoTune reads them from its output (spec.metricsCollector kind StdOut).

Hyperparameters arrive as --eta0/--alpha; --epoch-seconds makes each epoch last at least
that long (a trial to be stopped early is still running when the assessor judges it). It
prints with plain print() (no flush), as most training scripts do. Appends one JSON line
per epoch to $STDOUT_SGD_RECORD before printing it, so a test can compare what AutoTune
recorded with what the script printed.
"""

import argparse
import json
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

p = argparse.ArgumentParser()
p.add_argument("--eta0", type=float, required=True)
p.add_argument("--alpha", type=float, required=True)
p.add_argument("--epochs", type=int, default=6)
p.add_argument("--epoch-seconds", type=float, default=0.0)
args = p.parse_args()

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
classes = np.unique(y)
model = SGDClassifier(loss="log_loss", alpha=args.alpha, eta0=args.eta0, learning_rate="constant", random_state=0)
rng = np.random.default_rng(0)
record = os.environ.get("STDOUT_SGD_RECORD")
trial = os.environ.get("AUTOTUNE_TRIAL_ID")

print(f"training SGD on digits: eta0={args.eta0} alpha={args.alpha}")  # its names are not metrics here
for epoch in range(args.epochs):
    started = time.monotonic()
    order = rng.permutation(len(X_tr))
    model.partial_fit(X_tr[order], y_tr[order], classes=classes)
    accuracy = round(float(model.score(X_va, y_va)), 4)
    loss = round(float(log_loss(y_va, model.predict_proba(X_va), labels=classes)), 4)
    if record:
        with open(record, "a") as f:
            f.write(json.dumps({"trial": trial, "epoch": epoch, "accuracy": accuracy, "loss": loss}) + "\n")
    print(f"epoch={epoch} accuracy={accuracy} loss={loss}")
    time.sleep(max(0.0, args.epoch_seconds - (time.monotonic() - started)))
print("training finished")
