"""Tune a Python function with `autotune.tune()`: no YAML, no command line to write.

    python examples/tune_function.py [--max-trials 16] [--output autotune-runs]

``train(params)`` trains a linear classifier (SGDClassifier) on scikit-learn's bundled
digits, one epoch at a time, reports each epoch's validation accuracy (Medianstop stops
trials that fall behind the median) and returns the last one. Each trial is a separate
process that imports this file and calls ``train``: the tune() call must stay under
``if __name__ == "__main__":``, or importing the file would start it again.
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import autotune

SEARCH_SPACE = {
    "alpha": {"_type": "loguniform", "_value": [1e-6, 1e-1]},
    "eta0": {"_type": "loguniform", "_value": [1e-5, 1.0]},
    "loss": {"_type": "choice", "_value": ["hinge", "log_loss", "modified_huber"]},
}
EPOCHS = 8


def train(params: dict) -> float:
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = SGDClassifier(loss=params["loss"], alpha=params["alpha"], eta0=params["eta0"],
                          learning_rate="constant", random_state=0)
    accuracy = 0.0
    for epoch in range(EPOCHS):
        order = np.random.default_rng(epoch).permutation(len(x_train))
        model.partial_fit(x_train[order], y_train[order], classes=np.unique(y))
        accuracy = float(model.score(x_val, y_val))
        if autotune.report_intermediate_result(accuracy):
            break  # the assessor stopped this trial: it will not be the best
    return accuracy  # the final result (or a dict: {"default": accuracy, "loss": ...})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--max-trials", type=int, default=16)
    p.add_argument("--output", default="autotune-runs")
    args = p.parse_args()
    result = autotune.tune(train, SEARCH_SPACE, tuner="TPE", assessor="Medianstop", assessor_args={"start_step": 2},
                           max_trials=args.max_trials, concurrency=2, output=args.output, name="tune-function")
    if result.best_trial is None or result.best_value is None:  # every trial failed: their messages say why
        raise SystemExit(f"no trial succeeded ({result.phase}: {result.message}); see {result.output}/trials.csv")
    print(f"best accuracy {result.best_value:.4f} with {result.best_parameters} ({result.best_trial.name})")
