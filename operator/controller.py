"""The experiment controller: one loop for local mode and for the Kubernetes operator.

It observes the executor and the tuner server, asks :func:`decide` what to do, and does
it. It knows nothing of processes or Kubernetes (the executor does) nor of HTTP (the
tuner client does). ``step`` is one reconcile pass; ``run`` loops until the experiment
is finished. The clock is injected so tests can drive time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from autotune_operator.decide import Decision, Limits, Observed, Phase, decide
from autotune_operator.executors.base import Executor, TrialLaunch, trial_env
from autotune_operator.spec import Experiment
from autotune_operator.status import ExperimentStatus, build_status
from tuner_server.client import TunerClient, TunerServerError
from tuner_server.engine import AlgorithmFailure, ExperimentConfig, NotNow

log = logging.getLogger("autotune.controller")


@dataclass
class ControllerState:
    """What the controller remembers between passes (all of it re-derivable on restart)."""

    token: str = ""
    created: float = 0.0
    exhausted: bool = False
    tuner_waiting: bool = False  # the tuner gives more only after a running trial ends
    error: str | None = None
    phase: Phase = Phase.PENDING
    message: str = ""
    completion: float | None = None
    stopping: set[str] = field(default_factory=set)


class ExperimentController:
    def __init__(
        self,
        experiment: Experiment,
        exp_id: str,
        client: TunerClient,
        executor: Executor,
        server_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.exp = experiment
        self.exp_id = exp_id
        self.client = client
        self.executor = executor
        self.server_url = server_url
        self.clock = clock
        self.state = ControllerState()
        spec = experiment.spec
        self.limits = Limits(spec.maxTrialNum, spec.trialConcurrency, spec.maxExecSeconds, executor.capacity())

    # ----- lifecycle -----
    def start(self) -> None:
        """Register with the tuner server (idempotent) and adopt trials left running."""
        config = ExperimentConfig.model_validate(self.exp.tuner_config())
        reg = self.client.register(self.exp_id, self.exp.name, config)
        self.state.token, self.state.created = reg["token"], reg["created"]
        self.state.phase = Phase.RUNNING
        running = self.executor.active()
        for t in self.client.trials(self.exp_id):
            if t["state"] in ("WAITING", "RUNNING") and t["name"] not in running:
                # Left over from a crashed controller: start it again (or adopt it: launch is idempotent).
                self._launch(t["name"], t["sequence"], t["parameters"])

    def _launch(self, trial_id: str, sequence: int, parameters: dict[str, Any]) -> None:
        env = trial_env(self.server_url, self.state.token, self.exp_id, trial_id, sequence, parameters)
        self.executor.launch(TrialLaunch(trial_id, sequence, parameters, env))
        self.client.started(self.exp_id, trial_id)
        log.info("trial %s started with %s", trial_id, parameters)

    def step(self) -> Decision:
        """One reconcile pass."""
        # 1. Trials whose workload ended: the tuner server decides their final state.
        for ex in self.executor.poll():
            killed = ex.killed or ex.trial_id in self.state.stopping
            state = self.client.end(self.exp_id, ex.trial_id, ex.exit_code, killed, ex.message)
            self.state.stopping.discard(ex.trial_id)
            log.info("trial %s ended: %s", ex.trial_id, state)
        summary = self.client.summary(self.exp_id)
        # 2. Trials an assessor stopped: kill their workloads (they end EARLY_STOPPED).
        for tid in summary["stopRequested"]:
            if tid not in self.state.stopping:
                self.state.stopping.add(tid)
                self.executor.kill(tid, "stopped early by the assessor")
        counts = summary["trials"]
        active = counts["waiting"] + counts["running"]
        obs = Observed(
            elapsed=self.clock() - self.state.created,
            issued=counts["total"],
            active=active,
            exhausted=self.state.exhausted,
            error=self.state.error,
        )
        d = decide(self.limits, obs)
        # 3. Act.
        if d.stop_active:
            for tid in self.executor.active() - self.state.stopping:
                self.state.stopping.add(tid)
                self.executor.kill(tid, d.message)
        issued = counts["total"]
        self.state.tuner_waiting = False
        for _ in range(d.launch):
            try:
                a = self.client.suggest(self.exp_id, issued)
            except (AlgorithmFailure, TunerServerError) as e:
                self.state.error = f"tuner failed: {e}"
                break
            if a is None:
                self.state.exhausted = True
                break
            if isinstance(a, NotNow):
                self.state.tuner_waiting = True
                break  # asked again on the next pass, after a trial ends
            try:
                self._launch(a.trial_id, a.sequence, a.parameters)
            except Exception as e:  # a trial that cannot start is a failed trial, not a lost one
                self.client.end(self.exp_id, a.trial_id, None, False, f"could not start: {e}")
            issued += 1
        self.state.phase, self.state.message = d.phase, d.message
        if d.finished and self.state.completion is None:
            self.state.completion = self.clock()
        return d

    def status(self) -> ExperimentStatus:
        return build_status(
            self.client.summary(self.exp_id), self.state.phase, self.state.message, self.state.created, self.state.completion
        )

    def run(self, on_status: Callable[[ExperimentStatus], None] | None = None, tick: float = 0.5) -> ExperimentStatus:
        """Reconcile until the experiment is finished; wake early when a trial ends."""
        self.start()
        while True:
            d = self.step()
            status = self.status()
            if on_status:
                on_status(status)
            if d.finished:
                return status
            if d.launch and not self.state.tuner_waiting and not self.state.exhausted and self.state.error is None:
                continue  # launched up to the limit; look again at once
            self.executor.wait(tick)

    def interrupt(self, reason: str) -> ExperimentStatus:
        """Stop every running trial and record them as stopped (Ctrl-C)."""
        for tid in self.executor.active():
            self.state.stopping.add(tid)
            self.executor.kill(tid, reason)
        deadline = time.monotonic() + 15
        while self.executor.active() and time.monotonic() < deadline:
            self.executor.wait(0.2)
        for ex in self.executor.poll():
            self.client.end(self.exp_id, ex.trial_id, ex.exit_code, True, reason)
        for t in self.client.trials(self.exp_id):
            if t["state"] in ("WAITING", "RUNNING"):
                self.client.end(self.exp_id, t["name"], None, True, reason)
        self.state.phase, self.state.message = Phase.ERROR, reason
        self.state.completion = self.clock()
        return self.status()
