"""Logistic regression on iris, its accuracy the result. Final training (PIPESTEP=fullytrain)
first sleeps $FINAL_SLEEP seconds: a full-budget run that takes longer than the search's."""

import os
import time

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

import autotune

params = autotune.get_next_parameter()
if os.environ.get("PIPESTEP") == "fullytrain":
    time.sleep(float(os.environ.get("FINAL_SLEEP", "0")))
X, y = load_iris(return_X_y=True)
model = LogisticRegression(C=float(params["C"]), max_iter=500)
autotune.report_final_result(float(cross_val_score(model, X, y, cv=3).mean()))
