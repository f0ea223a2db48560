"""Train a linear classifier (SGDClassifier) on scikit-learn's digits, one epoch at a time,
for as many epochs as a multi-fidelity advisor (Hyperband, ASHA, BOHB...) gives this trial.

The budget is ``autotune.get_budget()`` (else --epochs when run by hand). After training the
model and its epoch count are pickled into ``autotune.get_checkpoint_dir()``; a promoted
trial (same parameters, larger budget) finds the lower rung's checkpoint in
``autotune.get_resume_dir()`` and trains only the epochs it lacks. Every epoch's validation
accuracy is reported, and the last one is the final result.
"""

import argparse
import os
import pickle

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import autotune

CHECKPOINT = "model.pkl"


def load_checkpoint(directory: str | None) -> tuple[SGDClassifier | None, int]:
    """The (model, epochs trained) a lower rung saved, or (None, 0) to start from scratch."""
    if directory is None or not os.path.exists(os.path.join(directory, CHECKPOINT)):
        return None, 0
    with open(os.path.join(directory, CHECKPOINT), "rb") as f:
        model, epochs = pickle.load(f)
    return model, int(epochs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=9, help="epochs when no advisor gives a budget")
    args = p.parse_args()
    params = {"alpha": 1e-4, "eta0": 0.01, "loss": "hinge"}
    params.update(autotune.get_next_parameter())
    budget = autotune.get_budget() or args.epochs

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(y)

    model, done = load_checkpoint(autotune.get_resume_dir())
    if model is None:
        model = SGDClassifier(loss=str(params["loss"]), alpha=float(params["alpha"]), eta0=float(params["eta0"]),
                              learning_rate="constant", random_state=0)
    else:
        print(f"resuming after epoch {done}", flush=True)
    if autotune.is_final_training():
        print(f"final training: {budget} epochs", flush=True)
    # The shuffling seed depends on the epoch, so a resumed run sees the same data order
    # as one that trained all its epochs in one go.
    accuracy = float(model.score(x_val, y_val)) if done else 0.0
    for epoch in range(done, budget):
        order = np.random.default_rng(epoch).permutation(len(x_train))
        model.partial_fit(x_train[order], y_train[order], classes=classes)
        accuracy = float(model.score(x_val, y_val))
        done = epoch + 1
        print(f"epoch {done}/{budget}: validation accuracy {accuracy:.4f}", flush=True)
        if autotune.report_intermediate_result(accuracy):
            print("stopped early by the assessor", flush=True)
            break

    save = autotune.get_checkpoint_dir()
    if save is not None:
        with open(os.path.join(save, CHECKPOINT), "wb") as f:
            pickle.dump((model, done), f)
    autotune.report_final_result(accuracy)


if __name__ == "__main__":
    main()
