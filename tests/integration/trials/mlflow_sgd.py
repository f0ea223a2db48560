"""A trial that knows nothing of AutoTune: SGDClassifier on scikit-learn's digits, one
epoch at a time, reporting only through MLflow (Azure ML's convention, seed 003).

Hyperparameters arrive as --eta0/--alpha (the template's ${parameters.*}); --epoch-seconds
makes each epoch last at least that long (a trial to be stopped early stays alive until
the experiment kills it). Appends one JSON line per epoch to $MLFLOW_SGD_RECORD, so a test
can compare what AutoTune recorded with what the script logged.
"""

import argparse
import json
import os
import time

import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
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
model = SGDClassifier(alpha=args.alpha, eta0=args.eta0, learning_rate="constant", random_state=0)
rng = np.random.default_rng(0)

# Read before MLflow's first call, which consumes it (the run it names is then active).
run_id = os.environ.get("MLFLOW_RUN_ID")
mlflow.log_params({"eta0": args.eta0, "alpha": args.alpha, "epochs": args.epochs})
record = os.environ.get("MLFLOW_SGD_RECORD")
for epoch in range(args.epochs):
    started = time.monotonic()
    order = rng.permutation(len(X_tr))
    model.partial_fit(X_tr[order], y_tr[order], classes=classes)
    val_accuracy = float(model.score(X_va, y_va))
    train_accuracy = float(model.score(X_tr, y_tr))
    # Recorded before it is logged: a trial the assessor stops is killed at any moment after
    # the server has a value, so the record may hold one epoch more than the server, never less.
    if record:
        with open(record, "a") as f:
            f.write(json.dumps({"run": run_id, "epoch": epoch, "accuracy": val_accuracy,
                                "train_accuracy": train_accuracy, "eta0": args.eta0}) + "\n")
    mlflow.log_metric("accuracy", float(val_accuracy), step=epoch)
    mlflow.log_metric("train_accuracy", train_accuracy, step=epoch)
    print(f"epoch {epoch + 1}: validation accuracy {val_accuracy:.4f}", flush=True)
    time.sleep(max(0.0, args.epoch_seconds - (time.monotonic() - started)))
mlflow.set_tag("finished", "yes")
print("training finished", flush=True)
