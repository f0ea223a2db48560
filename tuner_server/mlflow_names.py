"""How a trial is named to its MLflow client (dependency-free: the operator imports it).

A trial's ``MLFLOW_TRACKING_URI`` is ``<server>/mlflow/<experiment>/<trial>`` (the path
names the trial, so even a run the script creates is the trial's run) and its run id is the
trial's id with what MLflow refuses in a run id (``[^\\w-]``, e.g. '.') as '_'.
"""

from __future__ import annotations

import re
from urllib.parse import quote

PREFIX = "/mlflow"
_NOT_ID = re.compile(r"[^\w-]")


def tracking_uri(server_url: str, exp_id: str, trial_id: str) -> str:
    return f"{server_url.rstrip('/')}{PREFIX}/{quote(exp_id, safe='')}/{quote(trial_id, safe='')}"


def run_id_of(trial_id: str) -> str:
    """The MLflow run id of a trial (MLflow's client checks ``^[a-zA-Z0-9][\\w-]{0,255}$``)."""
    return _NOT_ID.sub("_", trial_id)[:256]


def experiment_id_of(exp_id: str) -> str:
    """The MLflow experiment id of an AutoTune experiment (``^[a-zA-Z0-9][\\w-]{0,63}$``)."""
    return _NOT_ID.sub("_", exp_id)[:64]
