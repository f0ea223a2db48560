"""A real epoch-by-epoch trial: SGDClassifier.partial_fit on scikit-learn's digits.

Trains for ``autotune.get_budget()`` epochs (else --epochs), one report per epoch, and
saves its model to ``autotune.get_checkpoint_dir()``. A promoted trial finds the lower-rung
run's model in ``autotune.get_resume_dir()`` and trains only the epochs it lacks.
Appends one JSON line per run to $SGD_RECORD (budget, resumed epochs, env).
"""

import argparse
import json
import os
import pickle

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import autotune

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=5)
args = p.parse_args()
params = autotune.get_next_parameter()
budget = autotune.get_budget() or args.epochs

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
classes = np.unique(y)

model, done = None, 0
resume = autotune.get_resume_dir()
if resume and os.path.exists(os.path.join(resume, "model.pkl")):
    with open(os.path.join(resume, "model.pkl"), "rb") as f:
        model, done = pickle.load(f)
if model is None:
    model = SGDClassifier(alpha=float(params.get("alpha", 1e-4)), eta0=float(params.get("eta0", 0.01)),
                          learning_rate="constant", random_state=0)
start = done
rng = np.random.default_rng(0)
acc = 0.0
for epoch in range(done, budget):
    order = rng.permutation(len(X_tr))
    model.partial_fit(X_tr[order], y_tr[order], classes=classes)
    acc = float(model.score(X_va, y_va))
    done = epoch + 1
    print(f"epoch {done}: validation accuracy {acc:.4f}", flush=True)
    if autotune.report_intermediate_result(acc):
        break
if done == start:  # nothing left to train: evaluate the resumed model
    acc = float(model.score(X_va, y_va))
save = autotune.get_checkpoint_dir()
if save:
    with open(os.path.join(save, "model.pkl"), "wb") as f:
        pickle.dump((model, done), f)
record = os.environ.get("SGD_RECORD")
if record:
    with open(record, "a") as f:
        f.write(json.dumps({"trial": autotune.get_trial_id(), "budget": budget, "start": start, "epochs": done,
                            "final": autotune.is_final_training(), "EPOCHS": os.environ.get("EPOCHS"),
                            "PIPESTEP": os.environ.get("PIPESTEP")}) + "\n")
autotune.report_final_result(acc)
