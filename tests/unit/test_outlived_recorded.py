"""An outlived trial's workload (a mesh proxy keeps its pod running: workloads/outlived.py)
goes with its pod's log, so it is deleted only once what was read of that log was accepted by
the tuner server, not merely read: the controller keeps unsent values in memory only, and
the operator rebuilds its controller and executor after every failed pass (runtime.py), as
after its own restart. The real controller and KubernetesExecutor, the tuner server's engine
behind an in-process client that refuses collected metrics (503) while ``down``, and the
recorded API stand-in of test_outlived_output (kubelet-shaped log answers)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune_operator.controller import ExperimentController
from autotune_operator.executors.kubernetes import ExperimentRef, KubernetesExecutor
from autotune_operator.spec import validate_manifest
from tests.unit.test_collected_metrics import FlakyClient
from tests.unit.test_k8s_read_log import Api, lines_at, manifest, pod
from tests.unit.test_k8s_trial_start import UID, Events
from tests.unit.test_outlived_output import DeletingCluster, outlived_pod, running_job
from tests.unit.test_trial_start import T0
from tuner_server.engine import Engine
from tuner_server.history import TrialState
from tuner_server.store import Store


@dataclass
class CreatingCluster(DeletingCluster):
    created: list[str] = field(default_factory=list)

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: Any) -> None:
        name = body["metadata"]["name"]
        self.created.append(name)
        self.jobs.append(running_job() if name == "q-0" else {})

    def create_namespaced_secret(self, ns: str, body: Any) -> None:
        pass

    def patch_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str,
                                       body: Any) -> None:
        for j in self.jobs:  # the annotations an operator restarted after reads (ENDED_ANNOTATION)
            if j["metadata"]["name"] == name:
                j["metadata"].setdefault("annotations", {}).update(body["metadata"]["annotations"])


def operator(engine: Engine, cluster: CreatingCluster, events: Events, clock: list[float] | None = None
             ) -> tuple[ExperimentController, FlakyClient]:
    """A controller and executor as the operator builds them (again after a failed pass)."""
    now = clock if clock is not None else [0.0]
    m = copy.deepcopy(manifest())
    m["metadata"]["name"] = "q"
    m["spec"].update(maxTrialNum=1, trialConcurrency=1)
    exp = validate_manifest(m)
    ex = KubernetesExecutor(Api(cluster), ExperimentRef("ns", "q", UID), exp.spec, "job", events=events,  # type: ignore[arg-type]
                            clock=lambda: now[0])
    ex.custom = cluster  # type: ignore[assignment]
    ex.core = cluster  # type: ignore[assignment]
    ex.now = lambda: T0 + 200  # the trial's container ended 100 s ago: past the 30 s grace
    tuner = FlakyClient(engine)
    return ExperimentController(exp, "q", tuner, ex, "http://u"), tuner


def test_a_workload_whose_read_output_the_tuner_server_refused_is_kept_until_it_took_it(tmp_path: Path) -> None:
    engine, cluster, events = Engine(Store(tmp_path / "t.db")), CreatingCluster(), Events()
    c, tuner = operator(engine, cluster, events)
    c.start()
    c.step()
    assert cluster.created == ["q-0"]
    cluster.pods = [outlived_pod()]  # it ran, printed, exited 0; istio-proxy runs on
    lines_at(cluster, "q-0-a", "c", (1.0, "accuracy=0.5"), (90.0, "accuracy=0.9"))
    tuner.down = True  # the tuner server restarts while the pass that ends the trial reads its output
    c.step()
    assert engine.trial("q", "q-0").record.state is TrialState.RUNNING  # its end waits (controller.draining)
    assert cluster.deleted == []  # before: deleted here, the two values only in this controller's memory
    # The operator rebuilds its controller after a failed pass (or restarts): that memory is gone.
    c, tuner = operator(engine, cluster, events)
    c.start()
    c.step()  # the output read again from its start; the server keeps each step once
    t = engine.trial("q", "q-0").record
    assert t.state is TrialState.SUCCEEDED and t.intermediate == [0.5, 0.9] and t.value == 0.9
    assert cluster.deleted == ["q-0"] and cluster.created == ["q-0"]  # deleted now; never created twice
    assert [r for r, _ in events.emitted] == ["TrialCreated", "TrialSidecarOutlived"]  # nothing given up


def test_a_failed_outlived_trials_output_is_read_again_after_a_failed_read(tmp_path: Path) -> None:
    """Its container exited 1 beside the proxy and the log API failed on the pass that ended
    it. Before, the controller read a failed trial's output once and ended it at once: its last
    values were lost, and its Job was kept OUTPUT_WAIT_SECONDS for a read that never came, then
    deleted with TrialOutputUnread. Now it is read again on the next pass, like a succeeded one."""
    engine, cluster, events, clock = Engine(Store(tmp_path / "t.db")), CreatingCluster(), Events(), [0.0]
    c, _ = operator(engine, cluster, events, clock)
    c.start()
    c.step()
    cluster.pods = [pod("q-0-a", "q-0", "u0", containers=("c", "istio-proxy"))]  # running, printing
    lines_at(cluster, "q-0-a", "c", (1.0, "accuracy=0.5"))
    c.step()
    assert engine.trial("q", "q-0").record.intermediate == [0.5]
    p = outlived_pod()
    p["status"]["containerStatuses"][0]["state"]["terminated"].update(exitCode=1, reason="Error")
    cluster.pods = [p]
    lines_at(cluster, "q-0-a", "c", (90.0, "accuracy=0.4"), (95.0, "ValueError: diverged"))
    cluster.down = True  # the log GETs of this pass fail
    clock[0] += 10  # (pods are looked at for an outliving sidecar at most every 10 s)
    c.step()
    assert engine.trial("q", "q-0").record.state is TrialState.RUNNING and cluster.deleted == []
    cluster.down = False
    c.step()
    t = engine.trial("q", "q-0")
    assert t.record.state is TrialState.FAILED and t.exit_code == 1 and t.record.intermediate == [0.5, 0.4]
    assert cluster.deleted == ["q-0"]
    assert [r for r, _ in events.emitted] == ["TrialCreated", "TrialSidecarOutlived"]  # no TrialOutputUnread
