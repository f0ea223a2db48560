"""The name of a trial's training job (Kubeflow, T9k), which its replicas' Services derive from.

Kubeflow's training operator names each replica's pod and Service ``<job>-<type>-<index>``
(type lowercase: ``<job>-worker-2``), and T9k's does the same. A Service name must be a
DNS-1035 label: a lowercase letter first, then letters, digits and '-', at most 63
characters (and Kubeflow's admission webhook holds the job's own name to that rule). A trial
is named ``<experiment>-<n>`` or ``<experiment>-final-<n>`` from an experiment name that is
a DNS-1123 subdomain of up to 47 characters: dots and a leading digit are allowed, and a
47-character name leaves no room for ``-final-<n>-evaluator-<i>``. Such a trial's job was
created but none of its Services could be (the training operator retried for ever and the
job never reached a condition; with the webhook the job itself was refused).

So a training job is named after its trial when every replica's Service name derived from
it is a valid DNS-1035 label, and otherwise ``<trial, dots as '-', cut short>-<8 hex digits
of the trial name's SHA-256>`` (``t-`` in front when the trial does not start with a letter):
still readable, distinct per trial (two experiments ``a.b`` and ``a-b`` in one namespace do
not meet), and the same every time (a restarted operator finds the job it created). The
trial name itself stays on the job and its pods as the label ``autotune.tensorstack.dev/trial``,
through which the operator finds them. ``trainingConfig`` cannot change on an existing
experiment, so the replica counts the name depends on do not either.
A batch/v1 Job keeps the trial's name: it makes no Services, and its pods are named by
``generateName`` and labelled ``job-name`` (a label value: 63 characters, dots allowed).
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

MAX_CHARS = 63  # a DNS-1035 label
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
HASH_CHARS = 8


def replica_suffix(rtype: str, replicas: int) -> str:
    """What a training operator appends to the job's name for the last replica of a type."""
    return f"-{rtype.lower()}-{max(replicas, 1) - 1}"


def training_job_name(trial: str, replicas: Iterable[tuple[str, int]]) -> str:
    """The name of trial ``trial``'s training job with these (replica type, count) pairs."""
    longest = max((len(replica_suffix(t, n)) for t, n in replicas), default=0)
    if DNS1035.match(trial) and len(trial) + longest <= MAX_CHARS:
        return trial
    digest = hashlib.sha256(trial.encode("utf-8")).hexdigest()[:HASH_CHARS]
    base = trial.replace(".", "-")
    if not base[:1].isalpha():
        base = "t-" + base
    room = MAX_CHARS - longest - 1 - HASH_CHARS
    base = base[:max(room, 1)].rstrip("-") or "t"
    return f"{base}-{digest}"


def workload_name(family: str, trial: str, replicas: Iterable[tuple[str, int]]) -> str:
    """The name of trial ``trial``'s workload of ``family`` ("job", "kubeflow", "t9k")."""
    return trial if family == "job" else training_job_name(trial, replicas)
