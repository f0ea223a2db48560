"""Train a small neural network on scikit-learn's bundled digits images, one epoch at a time.

Hyperparameters come from AutoTune (or defaults when run by hand); each epoch's
validation accuracy is reported, and the trial stops early if the assessor says so.
"""

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import autotune


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    params = {"hidden_units": 64, "learning_rate": 1e-3, "alpha": 1e-4, "batch_size": 64}
    params.update(autotune.get_next_parameter())

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    model = MLPClassifier(
        hidden_layer_sizes=(int(params["hidden_units"]),),
        learning_rate_init=float(params["learning_rate"]),
        alpha=float(params["alpha"]),
        batch_size=int(params["batch_size"]),
        random_state=autotune.get_sequence_id() or 0,
    )
    classes = np.unique(y)
    accuracy = 0.0
    warnings.simplefilter("ignore", ConvergenceWarning)
    for epoch in range(args.epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = float(model.score(x_val, y_val))
        print(f"epoch {epoch + 1}: validation accuracy {accuracy:.4f}", flush=True)
        if autotune.report_intermediate_result(accuracy):
            print("stopped early by the assessor", flush=True)
            break
    autotune.report_final_result(accuracy)


if __name__ == "__main__":
    main()
