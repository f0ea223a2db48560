"""The experiment controller: one loop for local mode and for the Kubernetes operator.

It observes the executor and the tuner server, asks :func:`decide` what to do, and does
it. It knows nothing of processes or Kubernetes (the executor does) nor of HTTP (the
tuner client does). ``step`` is one reconcile pass; ``run`` loops until the experiment
is finished. The clock is injected so tests can drive time.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from autotune_operator.cut_lines import dropped_line_note, killed_mid_write
from autotune_operator.decide import (
    EARLY_STOP_REASON,
    Decision,
    Goal,
    Limits,
    Observed,
    Phase,
    attempt_since,
    decide,
    experiment_stop_before_restart,
    final_pending,
    final_trained,
    is_overdue_reason,
    overdue_reason,
    overdue_trials,
    rerun_own_keys,
    stopped_before_restart,
)
from autotune_operator.executors.base import Executor, LaunchRefused, StopCause, TrialExit, TrialLaunch, trial_env
from autotune_operator.log_metrics import Collected
from autotune_operator.metric_parsers import MetricParser, parser_for, why_no_objective
from autotune_operator.spec import Experiment
from autotune_operator.status import ExperimentStatus, WarmStartStatus, build_status
from autotune_operator.warm_start import Lookup, WarmStartOutcome, run_warm_start
from tuner_server.client import TunerClient, TunerServerError
from tuner_server.engine import AlgorithmFailure, Assignment, ExperimentConfig, NotNow
from tuner_server.history import OptimizeMode

log = logging.getLogger("autotune.controller")


@dataclass
class ControllerState:
    """What the controller remembers between passes (all of it re-derivable on restart)."""

    token: str = ""
    created: float = 0.0
    # Seconds the experiment sat ended before it was resumed: not counted against
    # maxExecSeconds, which limits the time the experiment runs (as NNI's duration does).
    paused: float = 0.0
    exhausted: bool = False
    tuner_waiting: bool = False  # the tuner gives more only after a running trial ends
    error: str | None = None
    phase: Phase = Phase.PENDING
    message: str = ""
    reason: str = "Running"  # the Decision's, for the conditions
    completion: float | None = None
    stopping: set[str] = field(default_factory=set)
    # Trials stopped for running past maxTrialSeconds -> why (they end FAILED, not STOPPED).
    overdue: dict[str, str] = field(default_factory=dict)
    # Trials whose real start (executor.started()) the tuner server was told of. A restarted
    # controller tells it again once per trial: idempotent there.
    start_reported: set[str] = field(default_factory=set)
    # spec.metricsCollector: each running trial's log cursor and parser. Not persisted: a
    # restarted controller reads each log from its start and the tuner server skips the
    # steps it has (MlflowRuns.log_collected).
    logs: dict[str, "TrialLog"] = field(default_factory=dict)
    # Trials that exited by themselves whose output could not be read to its end or recorded
    # yet (a log API error, the tuner server refusing for now) -> (the exit, when it was first
    # seen). Their end waits: ending them now would make an earlier printed value a succeeded
    # trial's result, and drop a failed one's last values (the server takes none once it ended).
    draining: dict[str, tuple[TrialExit, float]] = field(default_factory=dict)
    # Trial -> its interrupted attempts this controller relaunched at once (_ended): bounded by
    # MAX_RELAUNCHES. Not persisted: a resumed run may try each again that many times.
    relaunched: dict[str, int] = field(default_factory=dict)


# A drained log (final=True) is read in parts (the executor caps one read): at most this many.
MAX_FINAL_READS = 256

# Interrupted attempts of one trial relaunched at once (_ended) before it ends FAILED.
MAX_RELAUNCHES = 3
# How long a succeeded trial's end waits for its output to be read whole and recorded; past
# this it ends with what was recorded (a log that is gone for good: a deleted pod).
DRAIN_WAIT_SECONDS = 60.0


@dataclass
class TrialLog:
    """Where the controller is in one trial's output, and what it read but could not send yet."""

    parser: MetricParser
    cursor: Any = None
    read: bool = False  # some of the log was read (else nothing can be said of what it printed)
    pending: list[Collected] = field(default_factory=list)
    # Why an unterminated last line of a killed trial was dropped (cut_lines), for its message.
    cut_note: str | None = None
    # Why its output cannot be read (LogChunk.note), for the message of a trial without a value.
    unreadable: str | None = None


class ExperimentController:
    def __init__(
        self,
        experiment: Experiment,
        exp_id: str,
        client: TunerClient,
        executor: Executor,
        server_url: str,
        clock: Callable[[], float] = time.time,
        checkpoint_root: str | None = None,
        owner: dict[str, str] | None = None,
        find_source: Callable[[str], Lookup] | None = None,
        paused_seconds: float = 0.0,
    ) -> None:
        self.exp = experiment
        self.exp_id = exp_id
        # Parameters the tuner gives a final rerun afresh (PBT's save folder): not compared
        # when telling whether a configuration was final-trained.
        self.rerun_own = rerun_own_keys(experiment.algorithm)
        self.client = client
        self.executor = executor
        self.server_url = server_url
        self.clock = clock
        # Where trials save checkpoints (<root>/<trial>): a promoted trial of a multi-fidelity
        # advisor is told its predecessor's. None: no checkpoint directories (promotions restart).
        self.checkpoint_root = checkpoint_root
        # {namespace, name, uid} of the AutoTuneExperiment (None in local mode): stored by the
        # tuner server so the operator's orphan sweep can tell whose state it is.
        self.owner = owner
        # spec.warmStart: how to find an earlier experiment by the name the spec gives
        # (local runs on disk, or AutoTuneExperiments on the cluster); None: no warm start.
        self.find_source = find_source
        self.warm: WarmStartOutcome | None = None
        self.state = ControllerState(paused=paused_seconds)
        spec = experiment.spec
        final = spec.finalTraining is not None and spec.finalTraining.enabled
        self.limits = Limits(spec.maxTrialNum, spec.trialConcurrency, spec.maxExecSeconds, executor.capacity(), final,
                             spec.maxFailedTrialNum, spec.maxTrialSeconds)
        # Not a limit: it cannot change on an existing experiment (Katib's objective is fixed too).
        self.goal = (Goal(spec.objectiveGoal, experiment.optimize_mode is OptimizeMode.MAXIMIZE)
                     if spec.objectiveGoal is not None else None)
        # spec.metricsCollector: the objective name(s) first, then the additional metrics.
        mc = self.collector = spec.metricsCollector
        self.objective_names = ([o.name for o in spec.objectives] if spec.objectives
                                else [spec.primaryMetric] if spec.primaryMetric else [])
        self.collected_names = (self.objective_names + list(mc.additionalMetricNames or [])) if mc else []
        self.reads_mlflow = mc is None and bool(self.objective_names)

    # ----- lifecycle -----
    def start(self) -> None:
        """Register with the tuner server (idempotent) and adopt trials left running."""
        config = ExperimentConfig.model_validate(self.exp.tuner_config())
        reg = self.client.register(self.exp_id, self.exp.name, config, owner=self.owner)
        self.state.token, self.state.created = reg["token"], reg["created"]
        self.state.phase = Phase.RUNNING
        ws = self.exp.spec.warmStart
        if ws is not None and self.find_source is not None:
            # Before the first suggestion, so the tuner's first trials already use them.
            self.warm = run_warm_start(ws, self.exp.optimize_mode, self.exp.spec.objectives, self.client, self.exp_id,
                                       self.find_source)
            if self.warm.error is not None:
                self.state.error = self.warm.error
        running = self.executor.active()
        # Trials a crashed controller may have been stopping: where their workload is gone, they
        # end with that stop's reason (an overdue one FAILED), and are not started again.
        # And where the experiment was already stopping its trials (TIMEOUT, goal, ERROR), by
        # the same rules a pass acts on, those trials end with the experiment's reason.
        summary = self.client.summary(self.exp_id)
        trials = self.client.trials(self.exp_id)
        stops = stopped_before_restart(summary["stopRequested"], summary.get("runningSince") or {}, self.clock(),
                                       self.limits.max_trial_seconds,
                                       experiment_stop_before_restart(self.limits, self._observe(summary), self.goal),
                                       [t["name"] for t in trials if t["state"] in ("WAITING", "RUNNING")])
        for t in trials:
            if t["state"] in ("WAITING", "RUNNING") and t["name"] not in running:
                # Left over from a crashed controller: start it again (or adopt it: launch is idempotent).
                info = t.get("info") or {}
                try:
                    self._launch(Assignment(t["name"], t["sequence"], t["parameters"], t.get("budget"),
                                            info.get("resume"), t.get("kind", "search")), stopped=stops.get(t["name"]))
                except LaunchRefused as e:  # (other errors: the pass fails and the whole start is retried)
                    self.client.end(self.exp_id, t["name"], None, False, f"could not start: {e}")

    def _checkpoint_dir(self, trial_id: str | None) -> str | None:
        if trial_id is None or self.checkpoint_root is None:
            return None
        return os.path.join(self.checkpoint_root, trial_id)

    def _launch(self, a: Assignment, stopped: str | None = None) -> None:
        user_env = self.exp.template_env_names()
        env = trial_env(self.server_url, self.state.token, self.exp_id, a.trial_id, a.sequence, a.parameters,
                        budget=a.budget, checkpoint_dir=self._checkpoint_dir(a.trial_id),
                        resume_dir=self._checkpoint_dir(a.resume), kind=a.kind, user_env=user_env,
                        # MLflow's variables only when the objective is read from MLflow (else they
                        # sent a script's MLflow calls, artifacts too, to a server that refuses those):
                        # not when it is read from the trial's output (spec.metricsCollector).
                        mlflow=self.reads_mlflow)
        if self.exp.spec.metricsCollector is not None and "PYTHONUNBUFFERED" not in user_env:
            # Python buffers a pipe's output in 8 KiB blocks: a script's print()s would reach
            # the log (and the assessor) only at its end. Its user's own setting wins.
            env["PYTHONUNBUFFERED"] = "1"
        self.executor.launch(TrialLaunch(a.trial_id, a.sequence, a.parameters, env, stopped=stopped))
        if self.executor.starts_on_launch:
            self.client.started(self.exp_id, a.trial_id)
        # else the trial stays WAITING until its executor sees it run (step(), below): on a
        # cluster its pods may queue for a device for hours, which is not the trial's time.
        log.info("trial %s started with %s%s", a.trial_id, a.parameters, f" (budget {a.budget})" if a.budget else "")

    def step(self) -> Decision:
        """One reconcile pass."""
        # 1. Trials whose workload ended: the tuner server decides their final state.
        waiting = [ex for ex, _ in self.state.draining.values()]
        for ex in waiting + [ex for ex in self.executor.poll() if ex.trial_id not in self.state.draining]:
            self._ended(ex)
        # When trials really began (before the summary, so its runningSince, the clock of
        # maxTrialSeconds below, already has them). Trials not begun stay WAITING: never overdue.
        starts = self.executor.started()
        for tid, at in sorted(starts.items()):
            if tid not in self.state.start_reported:
                self.client.started(self.exp_id, tid, at)
                self.state.start_reported.add(tid)
        # Only what the executor still reports: it forgets ended trials (a long experiment runs
        # thousands), and this set lives as long as the experiment. One it reported again would
        # be told again: idempotent in the tuner server.
        self.state.start_reported &= set(starts)
        # What running trials printed since the last pass (their curves: the assessor may ask
        # for a stop, acted on below in this same pass).
        if self.collector is not None:
            for tid in sorted(self.executor.active()):
                self._collect(tid)
        summary = self.client.summary(self.exp_id)
        # 2. Trials an assessor stopped: kill their workloads (they end EARLY_STOPPED).
        for tid in summary["stopRequested"]:
            if tid not in self.state.stopping:
                self.state.stopping.add(tid)
                self.executor.kill(tid, EARLY_STOP_REASON, StopCause.ASSESSOR)
        limit = self.limits.max_trial_seconds
        since = attempt_since(summary.get("runningSince") or {}, self.executor.attempt_starts())
        for tid in overdue_trials(since, self.clock(), limit):
            if tid not in self.state.stopping and tid not in self.state.overdue and tid not in self.state.draining:
                self.state.overdue[tid] = overdue_reason(limit)
                self.executor.kill(tid, self.state.overdue[tid], StopCause.OVERDUE)
        counts = summary["trials"]
        d = decide(self.limits, self._observe(summary), self.goal)
        # 3. Act.
        if d.stop_active:
            for tid in self.executor.active() - self.state.stopping:
                self.state.stopping.add(tid)
                self.executor.kill(tid, d.message, StopCause.EXPERIMENT)
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
            self._launch_or_fail(a)
            issued += 1
        if d.launch_final:
            self._final_training(summary, issued, d.final_room)
        self.state.phase, self.state.message, self.state.reason = d.phase, d.message, d.reason
        if d.finished and self.state.completion is None:
            self.state.completion = self.clock()
        return d

    def _observe(self, summary: dict[str, Any]) -> Observed:
        """What decide() sees: the tuner server's summary, the experiment's time, the tuner's state."""
        counts = summary["trials"]
        active = counts["waiting"] + counts["running"]
        finals = summary.get("finalTrials") or []
        final_active = sum(1 for f in finals if f["state"] in ("WAITING", "RUNNING"))
        last_failure = summary.get("lastFailure") or {}
        best = summary.get("bestTrial") or {}
        return Observed(
            elapsed=self.clock() - self.state.created - self.state.paused,
            issued=counts["total"] - len(finals),
            active=active - final_active,
            exhausted=self.state.exhausted,
            error=self.state.error,
            failed=counts["failed"] - sum(1 for f in finals if f["state"] == "FAILED"),
            last_failure=f"{last_failure['name']}: {last_failure['message']}" if last_failure else "",
            final_issued=len(finals),
            final_active=final_active,
            final_pending=(final_pending([c["parameters"] for c in _chosen(summary)], final_trained(finals), self.rerun_own)
                           if self.limits.final_training else None),  # a pass's JSON work only when it matters
            best=best.get("value"),
            best_name=best.get("name", ""),
        )

    def _ended(self, ex: TrialExit) -> None:
        """Record a trial's end, after reading all it printed (spec.metricsCollector): its last
        values are its final result. A trial that exited by itself (succeeded or failed) whose
        output (read before) could not be read whole or recorded now waits for a later pass (at
        most DRAIN_WAIT_SECONDS): a failed trial's last values are its curve's end, which the
        record and assessors judging later trials keep, and the tuner server takes no value for
        an ended trial. Trials the experiment stopped, and workloads gone (no exit code), end at
        once.

        A last output line without a newline counts only when the trial exited by itself: a
        killed trial's may be cut mid-write (cut_lines.py)."""
        cut = killed_mid_write(ex.exit_code, ex.killed or ex.trial_id in self.state.stopping
                               or ex.trial_id in self.state.overdue)
        drained = self._collect(ex.trial_id, final=True, whole_last_line=not cut)
        # Only a log read before is waited for: one never read may not exist (a pod gone, logs
        # the operator may not read), and every trial would wait for nothing.
        r = self.state.logs.get(ex.trial_id)
        readable = r is not None and r.read
        cut_note = r.cut_note if r is not None else None
        # Stopped for maxTrialSeconds by this run, or by a run that died before the trial
        # exited (the executor kept the stop's reason): a failure of the trial either way.
        # The executor's cause when it kept one; else the reason's text (a Kubernetes stop
        # annotation, a stop recomputed at a restart: decide.stopped_before_restart).
        overdue = self.state.overdue.get(ex.trial_id) or (
            ex.message if ex.killed and (ex.cause is StopCause.OVERDUE or (ex.cause is None and is_overdue_reason(ex.message)))
            else None)
        if ex.killed and ex.cause is StopCause.USER and overdue is None:
            # An attempt the user interrupted (a Ctrl-C that reached the trial's processes, or
            # an earlier run's interrupt, reported again at its restart): not a result; the
            # trial runs again at once, as after a complete interrupt and a resume.
            self._forget_log(ex.trial_id)
            self.state.draining.pop(ex.trial_id, None)
            self.state.stopping.discard(ex.trial_id)
            if self.state.phase.terminal:  # the experiment is ending: nothing starts again
                self.client.end(self.exp_id, ex.trial_id, ex.exit_code, True, self.state.message or ex.message)
                return
            n = self.state.relaunched[ex.trial_id] = self.state.relaunched.get(ex.trial_id, 0) + 1
            if n > MAX_RELAUNCHES:
                # Interrupted each time it ran: most likely its own code signals its process
                # group (bash's trap 'kill 0' EXIT), which looks like a signal from outside.
                # Relaunched for ever, it counted toward neither maxTrialNum nor maxFailedTrialNum.
                why = (f"{ex.message or INTERRUPTED_MESSAGE}; interrupted {n} times in a row, so it ends as failed "
                       "instead of running again (does its own code signal its process group?)")
                self.client.end(self.exp_id, ex.trial_id, ex.exit_code, False, why)
                return
            if self.client.requeue(self.exp_id, ex.trial_id, ex.message or INTERRUPTED_MESSAGE) == "WAITING":
                t = next(t for t in self.client.trials(self.exp_id) if t["name"] == ex.trial_id)
                self._launch_or_fail(_assignment(t))
            return
        killed = ex.killed or ex.trial_id in self.state.stopping
        since = self.state.draining.get(ex.trial_id, (ex, self.clock()))[1]
        if (not drained and readable and ex.exit_code is not None and not killed and overdue is None
                and self.clock() - since < DRAIN_WAIT_SECONDS):
            self.state.draining[ex.trial_id] = (ex, since)
            log.info("trial %s exited; its end waits until its output is read and recorded", ex.trial_id)
            return
        self.state.draining.pop(ex.trial_id, None)
        unread = self._forget_log(ex.trial_id)
        self.state.overdue.pop(ex.trial_id, None)
        if overdue is not None:  # we killed it for its time: a failure of the trial, not our stop
            state = self.client.end(self.exp_id, ex.trial_id, ex.exit_code, False, _joined(overdue, cut_note))
        else:
            why = ex.message or (unread if ex.exit_code == 0 and not killed else None)
            state = self.client.end(self.exp_id, ex.trial_id, ex.exit_code, killed, _joined(why, cut_note))
        self.state.stopping.discard(ex.trial_id)
        log.info("trial %s ended: %s", ex.trial_id, state)

    def _collect(self, trial_id: str, final: bool = False, whole_last_line: bool = True) -> bool:
        """Read what the trial printed since the last read and send its metrics to the tuner
        server (spec.metricsCollector; nothing without one). ``final``: the trial ended; read
        to the end. ``whole_last_line``: a last line without a newline is data (the trial
        exited by itself); else it is dropped and noted (cut_lines.py). Never raises: a log
        that cannot be read or sent now is read or sent on a later pass. True when all of it
        was read (``final``: to its end) and recorded."""
        if self.collector is None:
            return True
        r = self.state.logs.get(trial_id)
        if r is None:
            r = self.state.logs[trial_id] = TrialLog(parser_for(self.collector, self.collected_names))
        to_end = False
        try:
            for _ in range(MAX_FINAL_READS if final else 1):
                # What an earlier read found is recorded before anything more is read (bounded
                # memory), so a final read that finds nothing more follows the tuner server's
                # acceptance of all read before: an executor may then let the output go (a
                # Kubernetes workload deleted with its pods' logs: executors/kubernetes.py).
                if not self._send(trial_id, r, final):
                    return False
                chunk = self.executor.read_log(trial_id, r.cursor, final)
                if chunk is None:
                    break
                r.read = True
                r.unreadable = chunk.note
                lines = chunk.lines
                if chunk.unterminated and not whole_last_line and lines:
                    r.cut_note = dropped_line_note(r.parser, lines[-1])
                    lines = lines[:-1]
                r.pending.extend(r.parser.feed(lines))
                r.cursor = chunk.cursor
                if not chunk.lines:
                    to_end = True
                    break
        except Exception as e:  # an executor bug must not stop the experiment
            log.warning("could not read the output of trial %s: %s", trial_id, e)
        return self._send(trial_id, r, final) and (to_end or not final)

    def _send(self, trial_id: str, r: TrialLog, final: bool) -> bool:
        """Send what was read and not recorded yet; False when it must be sent again later."""
        if not r.pending:
            return True
        try:
            self.client.log_collected(self.exp_id, trial_id,
                                      [{"key": c.key, "value": c.value, "step": c.step} for c in r.pending], final)
        except TunerServerError as e:
            log.warning("metrics read from trial %s's output not recorded: %s", trial_id, e)
            if 400 <= e.status < 500 and e.status != 429:
                r.pending = []  # refused for good (the trial is gone): sending again would not help
                return True
            return False
        except Exception as e:  # the server unreachable for now: sent on the next pass
            log.warning("metrics read from trial %s's output not sent yet: %s", trial_id, e)
            return False
        r.pending = []
        return True

    def _forget_log(self, trial_id: str) -> str | None:
        """Forget an ended trial's log; why it has no objective value from its output (None
        when it has one, when nothing of it could be read, or without a collector)."""
        r = self.state.logs.pop(trial_id, None)
        if r is None or not r.read or any(r.parser.counts.get(n) for n in self.objective_names):
            return None
        if r.unreadable is not None:
            return f"exited 0, but nothing could be read: {r.unreadable}"
        return f"exited 0, but {why_no_objective(r.parser, self.objective_names)}"

    def _launch_or_fail(self, a: Assignment) -> None:
        try:
            self._launch(a)
        except Exception as e:  # a trial that cannot start is a failed trial, not a lost one
            self.client.end(self.exp_id, a.trial_id, None, False, f"could not start: {e}")

    def _final_training(self, summary: dict[str, Any], sequence: int, room: int) -> None:
        """Rerun the best configuration (each of the Pareto front with several objectives)
        at the final budget, as trials of kind "final", at most ``room`` now (the free slots:
        the rest start on later passes, as these end). A configuration final-trained before
        (a resumed experiment whose best did not change) is not trained again."""
        ft = self.exp.spec.finalTraining
        budget = ft.budget if ft is not None and ft.budget is not None else summary.get("maxBudget")
        chosen = _chosen(summary)
        finals = final_trained(summary.get("finalTrials") or [])
        todo = [c for c in chosen if final_pending([c["parameters"]], finals, self.rerun_own)]
        for i, best in enumerate(todo[:room]):
            a = self.client.final_trial(self.exp_id, sequence + i, dict(best["parameters"]), budget)
            self._launch_or_fail(a)
        if not chosen:  # nothing to rerun: the experiment ends as the search did
            log.warning("final training skipped: no succeeded trial")
            self.limits = replace(self.limits, final_training=False)

    def status(self) -> ExperimentStatus:
        st = build_status(
            self.client.summary(self.exp_id), self.state.phase, self.state.message, self.state.created, self.state.completion,
            paused=self.state.paused, reason=self.state.reason,
        )
        w = self.warm
        if w is not None and not w.earlier:  # what only the pass that imported knows
            st.warmStart = (st.warmStart or WarmStartStatus()).model_copy(
                update={"skipped": w.skipped, "message": "; ".join([w.line, *w.warnings])})
        return st

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
        """Stop every running trial (Ctrl-C). Their attempts are not results of their
        configurations: each trial goes back to WAITING (Engine.requeue, saying so with
        ``reason``) and runs again, under the same name, when the same command is run again.
        A trial that ended by itself meanwhile, or that an assessor or maxTrialSeconds was
        stopping, ends as it would have."""
        for tid in self.executor.active():
            self.state.stopping.add(tid)
            self.executor.kill(tid, reason, StopCause.USER)
        deadline = time.monotonic() + 15
        while self.executor.active() and time.monotonic() < deadline:
            self.executor.wait(0.2)
        for ex in [ex for ex, _ in self.state.draining.values()] + self.executor.poll():
            if ex.killed and ex.cause is StopCause.USER and ex.trial_id not in self.state.overdue:
                self._forget_log(ex.trial_id)  # what it printed is the dropped attempt's
                self.client.requeue(self.exp_id, ex.trial_id, reason)
            else:
                # No later pass will read its output: one still waiting for it ends now with what
                # was recorded (as when DRAIN_WAIT_SECONDS runs out), not requeued with the rest.
                self.state.draining[ex.trial_id] = (ex, float("-inf"))
                self.state.stopping.discard(ex.trial_id)
                self._ended(ex)
        self.state.draining.clear()
        for t in self.client.trials(self.exp_id):
            if t["state"] in ("WAITING", "RUNNING"):  # not started, or still not stopped: runs again too
                self.client.requeue(self.exp_id, t["name"], reason)
        self.state.phase, self.state.message, self.state.reason = Phase.ERROR, reason, "Interrupted"
        self.state.completion = self.clock()
        return self.status()


# A requeued trial's message when the stop that interrupted it left no reason.
INTERRUPTED_MESSAGE = "interrupted by the user; it runs again when the experiment goes on"


def _assignment(t: dict[str, Any]) -> Assignment:
    """A trial of the tuner server's listing as an Assignment, to launch it (again)."""
    info = t.get("info") or {}
    return Assignment(t["name"], t["sequence"], t["parameters"], t.get("budget"), info.get("resume"), t.get("kind", "search"))


def _chosen(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """What final training reruns: the Pareto front, or the best trial (none: nothing succeeded)."""
    return list(summary.get("paretoFront") or ([summary["bestTrial"]] if summary.get("bestTrial") else []))


def _joined(*parts: str | None) -> str | None:
    """A trial's message of several parts ("; "), None when there is none."""
    return "; ".join(p for p in parts if p) or None
