"""A trial that writes its metrics where Katib's File or TensorFlowEvent collector reads them:
SGDClassifier on scikit-learn's digits, one epoch at a time, no AutoTune SDK, no MLflow.

--metrics-path is a file (--kind json: one JSON object per epoch) or a directory (--kind
tfevents: an event file with a TF1 scalar 'accuracy' per epoch, written by the tests' own
encoder). --epoch-seconds makes each epoch last at least that long, so a test can kill
`autotune run` while the trial still writes. Nothing is printed.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository: tests.unit.tfevent_writer
from tests.unit import tfevent_writer as tfw  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--eta0", type=float, required=True)
p.add_argument("--epochs", type=int, default=6)
p.add_argument("--epoch-seconds", type=float, default=0.0)
p.add_argument("--kind", choices=["json", "tfevents"], required=True)
p.add_argument("--metrics-path", required=True)
args = p.parse_args()

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
classes = np.unique(y)
model = SGDClassifier(loss="log_loss", eta0=args.eta0, learning_rate="constant", random_state=0)
rng = np.random.default_rng(0)

if args.kind == "tfevents":
    os.makedirs(args.metrics_path, exist_ok=True)
    out = open(os.path.join(args.metrics_path, f"events.out.tfevents.{int(time.time())}.test.{os.getpid()}"), "ab")
    out.write(tfw.record(tfw.file_version()))
else:
    out = open(args.metrics_path, "a")
for epoch in range(args.epochs):
    started = time.monotonic()
    order = rng.permutation(len(X_tr))
    model.partial_fit(X_tr[order], y_tr[order], classes=classes)
    accuracy = round(float(model.score(X_va, y_va)), 4)
    if args.kind == "tfevents":
        out.write(tfw.record(tfw.event(epoch, tfw.simple_value("accuracy", accuracy))))
    else:
        out.write(json.dumps({"epoch": epoch, "accuracy": accuracy}) + "\n")
    out.flush()
    time.sleep(max(0.0, args.epoch_seconds - (time.monotonic() - started)))
out.close()
