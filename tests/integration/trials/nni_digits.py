"""An NNI trial script after `autotune convert`'s one-line change (`import autotune as nni`):
SGD logistic regression on scikit-learn's bundled digits, one report per epoch."""

import autotune as nni  # was: import nni
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

params = nni.get_next_parameter()
X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
model = SGDClassifier(loss="log_loss", alpha=params["alpha"], learning_rate="constant", eta0=params["eta0"],
                      random_state=0)
classes = np.unique(y)
accuracy = 0.0
for epoch in range(int(params.get("epochs", 5))):
    model.partial_fit(X_train, y_train, classes=classes)
    accuracy = float(model.score(X_val, y_val))
    nni.report_intermediate_result(accuracy)
nni.report_final_result(accuracy)
