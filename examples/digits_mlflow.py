"""A training script that knows nothing of AutoTune: it logs its metrics with MLflow, as
Azure ML's sweep jobs expect (seed 003), and AutoTune tunes it unchanged.

`autotune run examples/digits-mlflow.yaml` (needs `pip install mlflow-skinny`): AutoTune
points the MLflow client at its tuner server, spec.primaryMetric names "accuracy" as the
objective, and the Medianstop assessor stops poor trials. Run by hand, it logs to whatever
MLflow tracking server MLFLOW_TRACKING_URI names (./mlruns by default).
"""

import argparse

import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

p = argparse.ArgumentParser()
p.add_argument("--learning-rate", type=float, default=0.01)
p.add_argument("--alpha", type=float, default=1e-4)
p.add_argument("--epochs", type=int, default=10)
args = p.parse_args()

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_train)
X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
model = SGDClassifier(eta0=args.learning_rate, alpha=args.alpha, learning_rate="constant", random_state=0)
rng = np.random.default_rng(0)

with mlflow.start_run():
    mlflow.log_params(vars(args))
    for epoch in range(args.epochs):
        order = rng.permutation(len(X_train))
        model.partial_fit(X_train[order], y_train[order], classes=np.unique(y))
        val_accuracy = model.score(X_val, y_val)
        mlflow.log_metric("accuracy", float(val_accuracy), step=epoch)
        mlflow.log_metric("train_accuracy", float(model.score(X_train, y_train)), step=epoch)
        print(f"epoch {epoch + 1}: validation accuracy {val_accuracy:.4f}", flush=True)
