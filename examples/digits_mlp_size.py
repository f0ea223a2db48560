"""Accuracy against model size: a small neural network on scikit-learn's bundled digits.

Two objectives, reported as one dict: validation ``accuracy`` (maximize) and ``n_params``,
the number of weights and biases (minimize). Wider and deeper networks score better but
are bigger; the experiment's Pareto front is the best accuracy for each size.
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
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    params = {"hidden_units": 32, "layers": 1, "learning_rate": 1e-3, "alpha": 1e-4}
    params.update(autotune.get_next_parameter())

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    model = MLPClassifier(
        hidden_layer_sizes=(int(params["hidden_units"]),) * int(params["layers"]),
        learning_rate_init=float(params["learning_rate"]),
        alpha=float(params["alpha"]),
        max_iter=args.epochs,
        random_state=0,
    )
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_val, y_val))
    n_params = int(sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_))
    print(f"accuracy {accuracy:.4f} with {n_params} parameters", flush=True)
    autotune.report_final_result({"accuracy": accuracy, "n_params": n_params})


if __name__ == "__main__":
    main()
