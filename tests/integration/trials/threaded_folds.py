"""A trial that reports from several threads at once: 4-fold cross-validation of an
SGDClassifier on digits, each fold trained in its own thread and reporting its accuracy
after every epoch (scikit-learn releases the GIL, so the reports really overlap).
Writes every value it reported to $FOLDS_RECORD (JSON list) before reporting the final mean.
"""

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

import autotune

EPOCHS = 8
params = autotune.get_next_parameter()
X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
classes = np.unique(y)
reported: list[float] = []
lock = threading.Lock()
start = threading.Barrier(4)  # all folds begin together, so their reports interleave


def fold(train: np.ndarray, test: np.ndarray) -> float:
    model = SGDClassifier(alpha=float(params.get("alpha", 1e-4)), random_state=0)
    start.wait()
    acc = 0.0
    for _ in range(EPOCHS):
        model.partial_fit(X[train], y[train], classes=classes)
        acc = float(model.score(X[test], y[test]))
        with lock:
            reported.append(acc)
        autotune.report_intermediate_result(acc)
    return acc


folds = list(StratifiedKFold(n_splits=4, shuffle=True, random_state=0).split(X, y))
with ThreadPoolExecutor(max_workers=4) as pool:
    scores = list(pool.map(lambda f: fold(*f), folds))
with open(os.environ["FOLDS_RECORD"], "w", encoding="utf-8") as f:
    json.dump(reported, f)
autotune.report_final_result(sum(scores) / len(scores))
