"""AutoTuneExperiment manifests, and waiting for an experiment's phase, on the harness's
control plane: shared by the operator e2e tests (tests/e2e) and the operator benchmarks
(bench/operator_rig.py), which both drive the real operator through the real API.

Manifests are plain dicts whose keys are the CRD's own field names, so a caller adds any
spec field (seed, objectives, advisor, assessor, finalTraining, maxExecSeconds) as it is
spelled in a manifest rather than through a parameter per field here.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from .controlplane import ControlPlane, wait_for

# The tuners' usual classArgs in the tests and benches (a JSON string, as in the CRD).
MAXIMIZE = '{"optimize_mode": "maximize"}'
ENDED = ("DONE", "ERROR", "TIMEOUT")


def task(role: str, command: list[str], *, replicas: int = 1, container: str = "pytorch",
         image: str = "python:3.11", env: dict[str, str] | None = None,
         limits: dict[str, int] | None = None) -> dict[str, Any]:
    """One entry of spec.trainingConfig.tasks: `replicas` pods of one container."""
    c: dict[str, Any] = {"name": container, "image": image, "command": [str(a) for a in command]}
    if env:
        c["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    if limits:
        c["resources"] = {"limits": limits}
    return {"type": role, "replicas": replicas, "template": {"spec": {"containers": [c]}}}


def experiment_manifest(name: str, command: list[str] | None = None, *, space: str, max_trials: int,
                        concurrency: int = 1, training_type: str = "pytorch",
                        tasks: list[dict[str, Any]] | None = None, tuner: str | None = "GridSearch",
                        tuner_args: str = MAXIMIZE, annotations: dict[str, str] | None = None,
                        **spec: Any) -> dict[str, Any]:
    """An AutoTuneExperiment: by default one master task running `command` in a container
    named after `training_type`; `tuner=None` leaves spec.tuner out (an advisor instead,
    passed in `spec`); `space` is the searchSpace JSON string, kept verbatim."""
    if tasks is None:
        if command is None:
            raise ValueError("experiment_manifest needs a command or tasks")
        tasks = [task("master", command, container=training_type)]
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    body: dict[str, Any] = {
        "maxTrialNum": max_trials,
        "trialConcurrency": concurrency,
        "searchSpace": space,
        "trainingConfig": {"type": training_type, "tasks": tasks},
    }
    if tuner is not None:
        body["tuner"] = {"builtinTunerName": tuner, "classArgs": tuner_args}
    body.update(spec)
    return {"apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment",
            "metadata": metadata, "spec": body}


def get_experiment(cluster: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    """The AutoTuneExperiment as the API has it now; {} when it does not exist."""
    r = cluster.kubectl("get", "ate", name, "-n", ns, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def phase_of(cluster: ControlPlane, ns: str, name: str) -> str | None:
    return (get_experiment(cluster, ns, name).get("status") or {}).get("phase")


def wait_for_phase(cluster: ControlPlane, ns: str, name: str, *phases: str, timeout: float,
                   interval: float = 0.5, log: Callable[[], str] | None = None) -> dict[str, Any]:
    """Wait until status.phase is one of `phases`; return the experiment read afresh after
    that. On timeout the error names the last phase seen and ends with the tail of log()
    (the operator's output), read then rather than when the wait began."""
    seen: list[str | None] = [None]

    def reached() -> bool:
        seen[0] = phase_of(cluster, ns, name)
        return seen[0] in phases

    try:
        wait_for(reached, timeout, f"{name} to be {' or '.join(phases)}", interval)
    except TimeoutError as e:
        tail = f"; operator log:\n{log()[-3000:]}" if log else ""
        raise TimeoutError(f"{e} (last phase: {seen[0]}){tail}") from None
    return get_experiment(cluster, ns, name)
