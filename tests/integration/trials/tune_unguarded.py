"""A script that forgot the ``if __name__ == "__main__":`` guard: each trial imports this
file to find ``train``, which would call tune() again. tune() must refuse, clearly, before
any trial runs."""

import os

import autotune


def train(params: dict) -> float:
    return float(params["x"])


autotune.tune(train, {"x": {"_type": "uniform", "_value": [0, 1]}}, max_trials=3, output=os.environ["TUNE_OUTPUT"], quiet=True)
print("tune() returned")
