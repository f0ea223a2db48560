"""A Katib-style training script that writes its metrics to a file (Katib's File metrics
collector): hyperparameters as command-line flags, one line per epoch appended to
``--metrics-path``, either ``epoch=3 accuracy=0.9512 loss=0.2034`` (``--format text``) or a
JSON object (``--format json``: ``{"epoch": 3, "accuracy": 0.9512, "loss": 0.2034, ...}``).
It imports neither AutoTune nor MLflow and prints nothing; `autotune run
examples/digits-file.yaml` reads the file (spec.metricsCollector kind File). Run by hand, it
just writes the file.
"""

import argparse
import json
import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

p = argparse.ArgumentParser()
p.add_argument("--hidden-units", type=int, default=64)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--alpha", type=float, default=1e-4)
p.add_argument("--epochs", type=int, default=15)
p.add_argument("--metrics-path", default="/var/log/katib/metrics.log")
p.add_argument("--format", choices=["text", "json"], default="text")
args = p.parse_args()

x, y = load_digits(return_X_y=True)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(x_train)
x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
classes = np.unique(y)
model = MLPClassifier(hidden_layer_sizes=(args.hidden_units,), learning_rate_init=args.lr, alpha=args.alpha,
                      batch_size=64, random_state=0)
warnings.simplefilter("ignore", ConvergenceWarning)
os.makedirs(os.path.dirname(os.path.abspath(args.metrics_path)), exist_ok=True)
with open(args.metrics_path, "a") as out:
    for epoch in range(args.epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = round(model.score(x_val, y_val), 4)
        loss = round(log_loss(y_val, model.predict_proba(x_val), labels=classes), 4)
        if args.format == "json":
            # Keys that are no metric name (epoch, timestamp, the hyperparameters) are ignored.
            out.write(json.dumps({"epoch": epoch, "accuracy": accuracy, "loss": loss, "timestamp": time.time(),
                                  "hidden_units": args.hidden_units, "lr": args.lr, "alpha": args.alpha}) + "\n")
        else:
            out.write(f"epoch={epoch} accuracy={accuracy} loss={loss}\n")
        out.flush()  # each epoch is read as it is written: the assessor judges the curve
