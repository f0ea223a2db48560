"""A Katib-style training script: hyperparameters as command-line flags, metrics printed
as ``name=value`` (``epoch=3 accuracy=0.9512 loss=0.2034``). It imports neither AutoTune
nor MLflow; `autotune run examples/digits-stdout.yaml` reads the printed metrics
(spec.metricsCollector, as Katib's default StdOut collector does) and the Medianstop
assessor stops poor trials from them. Run by hand, it just prints.
"""

import argparse
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
args = p.parse_args()

x, y = load_digits(return_X_y=True)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(x_train)
x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
classes = np.unique(y)
model = MLPClassifier(hidden_layer_sizes=(args.hidden_units,), learning_rate_init=args.lr, alpha=args.alpha,
                      batch_size=64, random_state=0)
warnings.simplefilter("ignore", ConvergenceWarning)
for epoch in range(args.epochs):
    model.partial_fit(x_train, y_train, classes=classes)
    accuracy = model.score(x_val, y_val)
    loss = log_loss(y_val, model.predict_proba(x_val), labels=classes)
    print(f"epoch={epoch} accuracy={accuracy:.4f} loss={loss:.4f}")
