"""A trial that reports with the AutoTune SDK and also keeps its model with MLflow, where
MLflow keeps things without a server (its local store in the working directory): what a
script written before AutoTune served MLflow calls does, e.g. with mlflow.autolog()."""

import os
import tempfile

import mlflow

import autotune

params = autotune.get_next_parameter()
with mlflow.start_run():
    mlflow.log_param("x", params["x"])
    mlflow.log_metric("score", float(params["x"]))
    path = os.path.join(tempfile.mkdtemp(), "model.txt")
    with open(path, "w") as f:
        f.write(f"x={params['x']}\n")
    mlflow.log_artifact(path)  # AutoTune's MLflow subset refuses artifacts: it must not be asked
    print("tracking uri:", mlflow.get_tracking_uri(), flush=True)
autotune.report_final_result(float(params["x"]))
