"""A Katib-style trial: its hyperparameters arrive as command-line flags (Katib's
${trialParameters.X} placeholders), its epochs as --num-epochs (Katib Hyperband's
resource parameter). Reports through AutoTune's SDK, the one change a Katib script needs.
Appends one JSON line per run to $KATIB_RECORD (argv and the advisor's budget)."""

import argparse
import json
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import autotune

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--alpha", type=float, default=1e-4)
p.add_argument("--num-epochs", type=int, required=True)
args = p.parse_args()

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
model = SGDClassifier(alpha=args.alpha, eta0=args.lr, learning_rate="constant", random_state=0)
accuracy = 0.0
for _ in range(args.num_epochs):
    model.partial_fit(X_tr, y_tr, classes=np.unique(y))
    accuracy = float(model.score(X_va, y_va))
    autotune.report_intermediate_result(accuracy)
autotune.report_final_result(accuracy)
if os.environ.get("KATIB_RECORD"):
    with open(os.environ["KATIB_RECORD"], "a") as f:
        f.write(json.dumps({"num_epochs": args.num_epochs, "lr": args.lr, "budget": autotune.get_budget(),
                            "params": autotune.get_next_parameter()}) + "\n")
