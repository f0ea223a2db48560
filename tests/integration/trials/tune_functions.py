"""Functions that tests/integration/test_tune_function.py tunes with autotune.tune(): each
trial process imports this file and calls one of them with its parameters."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import autotune

EPOCHS = 6


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_val), y_train, y_val


def logistic_digits(params: dict) -> float:
    """A real model, one result: validation accuracy of a logistic regression."""
    x_train, x_val, y_train, y_val = _digits()
    model = LogisticRegression(C=float(params["C"]), max_iter=200).fit(x_train, y_train)
    return float(model.score(x_val, y_val))


def sgd_epochs(params: dict) -> float:
    """Each epoch's validation accuracy is an intermediate result; stops when told to."""
    x_train, x_val, y_train, y_val = _digits()
    model = SGDClassifier(eta0=float(params["eta0"]), learning_rate="constant", random_state=0)
    accuracy = 0.0
    for epoch in range(EPOCHS):
        model.partial_fit(x_train, y_train, classes=np.unique(y_train))
        accuracy = float(model.score(x_val, y_val))
        if autotune.report_intermediate_result(accuracy):
            break
    return accuracy


def _check(value: float) -> float:
    if value > 0:
        raise ValueError(f"the learning rate {value} diverged")
    return value


def modes(params: dict) -> object:
    """One behaviour per parameter value: what tune() makes of each."""
    mode = params["mode"]
    if mode == "raise":
        return _check(1.5)  # raised one call deeper: the message has the exception's last line
    if mode == "none":
        return None
    if mode == "self":
        autotune.report_final_result(0.7)
        return 123.0  # ignored: it reported its final result itself
    if mode == "dict":
        return {"default": 0.6, "loss": 0.25}
    if mode == "text":
        return "high"
    if mode == "child":  # an existing trial script, run by the function, reports as this trial
        import subprocess
        import sys

        subprocess.run([sys.executable, "-c", "import autotune; autotune.report_final_result(0.65)"], check=True)
        return None
    if mode == "arrays":
        return {"default": np.float64(0.55), "per_class": np.array([0.5, 0.6])}
    if mode == "exit":
        import sys

        sys.exit(0)
    return 0.5


def two_objectives(params: dict) -> dict:
    """Several objectives (spec.objectives): a dict with one key per objective."""
    x = float(params["x"])
    return {"accuracy": 1.0 - (x - 0.3) ** 2, "size": x}


def where(params: dict) -> dict:
    """The device local mode gave this trial, and a variable from tune(env=...)."""
    import os

    return {"default": float(os.environ["CUDA_VISIBLE_DEVICES"]), "factor": float(os.environ["TUNE_FACTOR"])}
