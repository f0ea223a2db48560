"""A real PBT member: SGDClassifier.partial_fit on scikit-learn's digits, two epochs per
generation, continuing from the model in ``load_checkpoint_dir`` (empty: from scratch) and
saving to ``save_checkpoint_dir`` with a tag ($PBT_TAG) naming the run that wrote it, and
``writer.txt`` naming the trial that did. Appends one JSON line per trial to $PBT_RECORD:
its tag and trial id, the directories, and the tag found in the checkpoint it loaded
(another run's tag: two experiments shared a directory).
"""

import hashlib
import json
import os
import pickle

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import autotune

params = autotune.get_next_parameter()
tag = os.environ["PBT_TAG"]
load, save = str(params["load_checkpoint_dir"]), str(params["save_checkpoint_dir"])

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)

model, loaded_tag = None, None
if load:
    with open(os.path.join(load, "model.pkl"), "rb") as f:
        model, loaded_tag = pickle.load(f)
    model.set_params(alpha=float(params["alpha"]))
if model is None:
    model = SGDClassifier(alpha=float(params["alpha"]), learning_rate="optimal", random_state=0)
rng = np.random.default_rng(0)
acc = 0.0
for _ in range(2):
    order = rng.permutation(len(X_tr))
    model.partial_fit(X_tr[order], y_tr[order], classes=np.unique(y))
    acc = float(model.score(X_va, y_va))
os.makedirs(save, exist_ok=True)
with open(os.path.join(save, "model.pkl"), "wb") as f:
    pickle.dump((model, tag), f)
trial = os.environ["AUTOTUNE_TRIAL_ID"]
with open(os.path.join(save, "model.pkl"), "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
with open(os.path.join(save, "writer.txt"), "w") as f:
    f.write(trial)
with open(os.environ["PBT_RECORD"], "a") as f:
    f.write(json.dumps({"tag": tag, "trial": trial, "load": load, "save": save, "sha256": digest,
                        "loaded_tag": loaded_tag}) + "\n")
autotune.report_final_result(acc)
