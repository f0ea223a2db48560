"""`autotune`: run an AutoTuneExperiment on this machine, or check one.

    autotune run EXPERIMENT.yaml [--output DIR] [--workdir DIR] [--devices 0,1] [--ui]
    autotune validate EXPERIMENT.yaml
    autotune ui RESULTS_DIR                 (a finished local run in the web UI)
    autotune convert KATIB_OR_NNI.yaml [-o OUT.yaml]   (a Katib Experiment or NNI config, converted)
    autotune operator [--namespaces a,b] [--server-url URL] ...   (the Kubernetes operator)
    autotune collect-metrics --kind File|TensorFlowEvent --path P   (the metrics sidecar in trial pods)

Exit codes of `run`: 0 DONE or TIMEOUT, 1 ERROR, 2 invalid experiment, 130 interrupted.
"""

from __future__ import annotations

import argparse
import fcntl
import http.client
import logging
import os
import secrets
import shutil
import signal
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
from pathlib import Path
from types import FrameType
from typing import IO, Any, Mapping, Sequence

from autotune_operator import __main__ as operator_main
from autotune_operator import collect_metrics_command, ui_command
from autotune_operator.convert import command as convert_command
from autotune_operator.controller import ExperimentController
from autotune_operator.decide import Phase, rerun_own_keys
from autotune_operator.executors.local import LocalExecutor, ProcessTemplate, surviving_trials
from autotune_operator.executors.metrics_path import not_given_message, plan_path
from autotune_operator.heartbeat import Heartbeat, last_sign_of_life
from autotune_operator.local_resume import SpecChanged, check_output, save_spec
from autotune_operator.progress import Progress
from autotune_operator.results import (format_final, format_importance, format_pareto, write_importance, write_pareto_plot,
                                       write_status, write_trials_csv)
from autotune_operator.spec import Experiment, SpecError, load_experiment, reads_files
from autotune_operator.status import ExperimentStatus
from autotune_operator.warm_start import local_finder
from tuner_server.client import HttpClient, InProcessClient, TunerClient, TunerServerError, is_http_url
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Conflict, Engine
from tuner_server.store import Store, open_problem
from tuner_server.ui import UiOptions, local_phase, local_trial_log

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class LocalSetupError(ValueError):
    """The manifest is valid but cannot run on this machine as written."""


def _field_path(env_entry: Mapping[str, Any]) -> Any:
    """An env entry's valueFrom.fieldRef.fieldPath (the Downward API), else None."""
    vf = env_entry.get("valueFrom")
    ref = vf.get("fieldRef") if isinstance(vf, Mapping) else None
    return ref.get("fieldPath") if isinstance(ref, Mapping) else None


def process_template(exp: Experiment, manifest_path: Path, workdir: str | None) -> ProcessTemplate:
    """The first task's first container, as a local process."""
    task = exp.spec.trainingConfig.tasks[0]
    container = task.template["spec"]["containers"][0]
    where = "spec.trainingConfig.tasks[0].template.spec.containers[0]"
    command = list(container.get("command") or []) + list(container.get("args") or [])
    if not command:
        raise LocalSetupError(f"{where} has no command or args: local mode cannot use an image's entrypoint")
    env: dict[str, str] = {}
    for i, e in enumerate(container.get("env") or []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif _field_path(e) == "metadata.namespace":
            # The Downward API's namespace (a converted Katib ${trialSpec.Namespace}): the one the
            # manifest names, else "default", where kubectl would create it.
            env[e["name"]] = exp.manifest.metadata.namespace or "default"
        elif "valueFrom" in e:
            raise LocalSetupError(
                f"{where}.env[{i}] ({e.get('name')}) uses valueFrom, which needs a cluster; give it a value for local runs"
            )
    base = manifest_path.resolve().parent
    if workdir is not None:
        wd = Path(workdir).resolve()
    elif container.get("workingDir"):
        wd = (base / container["workingDir"]).resolve()
    else:
        wd = base
    if workdir is not None and not wd.is_dir():
        raise LocalSetupError(f"--workdir {workdir} is not a directory on this machine")
    if not wd.is_dir():
        raise LocalSetupError(
            f"{where}.workingDir {container.get('workingDir')!r} does not exist on this machine; "
            f"pass --workdir DIR to run the trials somewhere else"
        )
    mc = exp.spec.metricsCollector
    if mc is not None and reads_files(mc) and mc.path and plan_path(mc.path, command, env) is None:
        raise LocalSetupError(not_given_message(mc, where))
    return ProcessTemplate(tuple(command), env, str(wd))


def _install_sdk(directory: Path) -> str:
    """Put the dependency-free SDK where any Python the trial command uses can import it."""
    import autotune

    target = directory / ".sdk" / "autotune"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(autotune.__file__, target / "__init__.py")
    return str(target.parent)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _objective_text(exp: Experiment) -> str:
    if exp.spec.objectives:
        return "objectives " + ", ".join(f"{o.name} {o.optimizeMode.value}" for o in exp.spec.objectives)
    return f"objective {exp.optimize_mode.value}"


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        exp = load_experiment(args.experiment)
    except SpecError as e:
        print(f"autotune: {e}", file=sys.stderr)
        return EXIT_INVALID
    for w in exp.warnings:
        print(f"autotune: warning: {w}", file=sys.stderr)
    space = exp.space.cardinality()
    print(
        f"{args.experiment}: valid AutoTuneExperiment '{exp.name}' "
        f"({len(exp.space.dims)} parameters, {'infinite' if space is None else space} configurations, "
        f"tuner {exp.algorithm}, {_objective_text(exp)})"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    try:
        exp = load_experiment(args.experiment)
        template = process_template(exp, Path(args.experiment), args.workdir)
    except (SpecError, LocalSetupError) as e:
        print(f"autotune: {e}", file=sys.stderr)
        return EXIT_INVALID
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else []
    if args.server and not is_http_url(args.server):
        print(f"autotune: --server must be an http:// or https:// URL, got {args.server!r}", file=sys.stderr)
        return EXIT_INVALID
    out = Path(args.output).resolve() / exp.name
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"autotune: cannot create the output directory {out}: {e.strerror}", file=sys.stderr)
        return EXIT_INVALID
    try:
        lock = _lock_output(out)  # held until this process exits
    except OSError as e:
        print(f"autotune: cannot write to the output directory {out}: {e.strerror}", file=sys.stderr)
        return EXIT_INVALID
    if lock is None:
        print(f"autotune: another 'autotune run' is using {out}; wait for it to end or use another --output",
              file=sys.stderr)
        return EXIT_INVALID
    try:  # the same experiment again in this folder: resume it (only its limits may have changed)
        # A run that died unended: its last sign of life and its trials still running decide
        # whether the time since counts toward maxExecSeconds (resume.paused_after_crash).
        resume = check_output(out, exp, time.time(), last_sign_of_life(out), surviving_trials(out))
    except SpecChanged as e:
        print(f"autotune: {e}", file=sys.stderr)
        return EXIT_INVALID
    if resume.line:  # the first line: which experiment this is
        print(f"autotune: {resume.line}", file=sys.stderr)
    if resume.stays is not None:  # its limits still end it: nothing runs, nothing here is rewritten
        print(f"autotune: nothing was run; its results are unchanged in {out}", file=sys.stderr)
        if resume.stays is not Phase.ERROR and not resume.has_result:  # the exit code its run ended with
            print(f"autotune: no trial succeeded: the experiment has no result; exit code {EXIT_ERROR}", file=sys.stderr)
        return EXIT_ERROR if resume.stays is Phase.ERROR or not resume.has_result else EXIT_OK
    for w in exp.warnings:
        print(f"autotune: warning: {w}", file=sys.stderr)
    engine: Engine | None = None
    if not args.server:  # before anything is written here: a folder it refuses stays as it was
        try:
            # PBT's default checkpoint root under this folder: keyed by the id alone (local.<name>),
            # two runs of one experiment name into different --output folders shared it.
            engine = Engine(Store(out / "autotune.db"), checkpoint_base=str(out / "checkpoints"))
        except sqlite3.DatabaseError as e:  # left untouched: it may be someone's results
            print(f"autotune: {open_problem(out / 'autotune.db', e)}; use another --output", file=sys.stderr)
            return EXIT_INVALID
    save_spec(out, exp)
    exp_id = f"local.{exp.name}"
    executor = LocalExecutor(template, out, devices, sdk_path=_install_sdk(out), collector=exp.spec.metricsCollector)
    progress = Progress(exp.spec.maxTrialNum, quiet=args.quiet, rerun_own=rerun_own_keys(exp.algorithm))
    heartbeat = Heartbeat(out)  # when this run was last alive, should it die unended

    def on_status(s: ExperimentStatus) -> None:
        if controller.warm is not None and not told_warm:
            print(f"autotune: {controller.warm.line}", file=sys.stderr)
            for w in controller.warm.warnings:
                print(f"autotune: warning: {w}", file=sys.stderr)
            told_warm.append(True)
        progress.update(s)
        heartbeat.beat(time.time())
        write_status(out, s)
        trials = client.trials(exp_id)
        last_trials[:] = trials
        write_trials_csv(out, trials)
        write_pareto_plot(out, s, trials)

    last_trials: list[dict[str, Any]] = []  # for the summary: why trials failed
    server: EmbeddedServer | None = None
    client: TunerClient
    if args.server:
        token = os.environ.get("AUTOTUNE_ADMIN_TOKEN", "").strip()  # as the tuner server reads it
        if not token:
            print("autotune: --server needs the admin token in $AUTOTUNE_ADMIN_TOKEN", file=sys.stderr)
            return EXIT_INVALID
        client, url = HttpClient(args.server, token), args.server
    else:
        assert engine is not None
        token = secrets.token_urlsafe(32)
        ui = UiOptions(trial_log=local_trial_log(out), phase=local_phase(out))
        server = _embedded_server(engine, token, ui, out).__enter__()
        client, url = InProcessClient(engine), server.url
    if args.ui:
        _announce_ui(server, url, exp_id)
    # Trials may save checkpoints under <output>/checkpoints/<trial>; advisors' promotions resume from them.
    told_warm: list[bool] = []
    find_source = local_finder(Path(args.output).resolve(), Path.cwd(), out, client if args.server else None)
    controller = ExperimentController(exp, exp_id, client, executor, url, checkpoint_root=str(out / "checkpoints"),
                                      find_source=find_source, paused_seconds=resume.paused_seconds)
    # SIGHUP too: a closed terminal must stop and record the trials as Ctrl-C does, not
    # kill this process alone and leave them running unwatched.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            status = controller.run(on_status)
            if server is not None and args.ui:
                _keep_ui_open(server, status)
        except KeyboardInterrupt:
            status = controller.interrupt("interrupted by the user; it runs again, with the same parameters, "
                                          "when the same command is run again")
            on_status(status)
            progress.close()
            print(f"autotune: interrupted; every trial process was stopped, and the trials it stopped run again when "
                  f"the same command is run again. Results in {out}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (Conflict, TunerServerError) as e:
            progress.close()
            clash = isinstance(e, Conflict) or e.status == 409  # not a 403 (wrong token) or a 422
            hint = (f" (results of an earlier, different experiment named '{exp.name}' are in {out}; "
                    f"use another --output)") if clash else ""
            print(f"autotune: {e}{hint}", file=sys.stderr)
            return EXIT_ERROR
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as e:
            progress.close()  # the HTTP client retried for its whole budget first
            reason = getattr(e, "reason", e)
            print(f"autotune: tuner server at {url} unreachable: {reason}. Results so far in {out}", file=sys.stderr)
            return EXIT_ERROR
        except (sqlite3.OperationalError, OSError) as e:  # a full disk: results can no longer be recorded
            progress.close()
            print(f"autotune: cannot record results in {out}: {e}; the trials were stopped. Free the space "
                  f"(or fix the folder) and run the same command again to continue", file=sys.stderr)
            return EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        executor.shutdown()
        if server is not None:
            server.__exit__(None, None, None)
        if engine is not None:
            # Closing checkpoints SQLite's write-ahead log into autotune.db: left open, the
            # history stayed in autotune.db-wal and a copy of autotune.db alone was empty.
            engine.store.close()
    progress.close()
    _print_result(status, out, last_trials, _importance(out, exp, status, last_trials))
    if status.phase is Phase.ERROR:
        return EXIT_ERROR
    if status.bestTrial is None and not status.paretoFront:
        # The phase stays DONE (every trial ended, as NNI's DONE), but a script or CI job
        # must not take 'every trial failed' for a result: exit 1, saying so last.
        c = status.trials
        sys.stdout.flush()
        print(f"autotune: no trial succeeded ({c.failed} failed, {c.earlyStopped} early-stopped, {c.stopped} stopped): "
              f"the experiment has no result; exit code {EXIT_ERROR}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _importance(out: Path, exp: Experiment, status: ExperimentStatus, trials: list[dict[str, Any]]) -> list[str]:
    """Write importance.json and return the summary's importance lines. A failure here must
    not hide the results: say it and go on."""
    try:
        return format_importance(write_importance(out, exp.spec.searchSpace, status, trials))
    except (OSError, ValueError) as e:
        print(f"autotune: warning: parameter importance not computed: {e}", file=sys.stderr)
        return []


def _lock_output(out: Path) -> IO[bytes] | None:
    """An exclusive lock on ``out``, or None if another run holds it. A second run on the
    same folder killed the first one's trials (it takes their processes for leftovers of
    an interrupted run) and then crashed on the shared history."""
    f = open(out / ".lock", "ab")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _embedded_server(engine: Engine, token: str, ui: UiOptions, out: Path) -> EmbeddedServer:
    """The run's tuner server, on the port the previous run of this folder used when it is
    free: trials left running by a killed run keep the URL they were given, which matters
    for clients that cannot follow <output>/server.url as the SDK does (MLflow's)."""
    try:
        previous = urllib.parse.urlsplit((out / "server.url").read_text().strip())
        if previous.hostname == "127.0.0.1" and previous.port:
            return EmbeddedServer(engine, token, port=previous.port, ui=ui)
    except (OSError, ValueError):  # no earlier run, or its port is taken now
        pass
    return EmbeddedServer(engine, token, ui=ui)


def _announce_ui(server: EmbeddedServer | None, url: str, exp_id: str) -> None:
    """Where to look. The embedded server's random admin token is never shown: the link
    carries a single-use login code instead, so the URL is worthless once opened."""
    if server is None:
        print(f"autotune: web UI: {url}/ui/experiments/{exp_id} (log in with the server's viewer or admin token)", file=sys.stderr)
        return
    link = server.login_link(f"/ui/experiments/{exp_id}")
    print(f"autotune: web UI (single-use login link, this machine only): {link}", file=sys.stderr)


def _keep_ui_open(server: EmbeddedServer, status: ExperimentStatus) -> None:
    """After the run, keep serving the UI until the user is done looking (a terminal only)."""
    if not sys.stdin.isatty():
        return
    print(f"autotune: experiment {status.phase.value}; the web UI stays at {server.url}/ui/ "
          f"(new login link: {server.login_link()}). Press Enter or Ctrl-C to exit.", file=sys.stderr)
    try:
        sys.stdin.readline()
    except KeyboardInterrupt:
        pass


def _failure_hint(trials: Sequence[dict[str, Any]], out: Path) -> str:
    """Why the first failed trial failed: with no trial succeeded, the summary must say what
    to fix (a misspelled command fails every trial the same way) rather than only 'none'."""
    failed = [t for t in trials if t.get("state") == "FAILED" and t.get("message")]
    if not failed:
        return ""
    t = failed[0]
    return f"; {t['name']} {t['message']}, see {out}/trials/{t['name']}/trial.log"


def _print_result(s: ExperimentStatus, out: Path, trials: Sequence[dict[str, Any]] = (),
                  importance: Sequence[str] = ()) -> None:
    c = s.trials
    print(f"experiment {s.phase.value}: {s.message}")
    print(f"trials: {c.total} total, {c.succeeded} succeeded, {c.failed} failed, {c.earlyStopped} early-stopped, {c.stopped} stopped")
    if s.bestTrial:
        b = s.bestTrial
        print(f"best trial ({s.optimizeMode}): {b.name} value={b.value:.6g} parameters={b.parameters}")
    elif s.paretoFront:
        print("\n".join(format_pareto(s)))
    else:
        print(f"best trial: none (no trial succeeded{_failure_hint(trials, out)})")
    for line in format_final(s, list(trials)):
        print(line)
    for line in importance:
        print(line)
    plot = f", {out}/pareto.svg" if s.paretoFront is not None else ""
    more = f", {out}/importance.json" if importance else ""
    print(f"results: {out}/status.json, {out}/trials.csv{more}{plot}, logs in {out}/trials/")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="autotune", description="AutoTune: hyperparameter optimization, locally or on Kubernetes.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment here, trials as local processes")
    r.add_argument("experiment", help="AutoTuneExperiment YAML file")
    r.add_argument("--output", default="autotune-runs", help="results go to DIR/<metadata.name>/ (default autotune-runs)")
    r.add_argument("--workdir", help="run trials in DIR instead of the container's workingDir")
    r.add_argument("--devices", help="comma-separated device ids: one trial per device (sets CUDA_VISIBLE_DEVICES, "
                   "ASCEND_RT_VISIBLE_DEVICES and DEVICE_ID)")
    r.add_argument("--server", help="use this tuner server (URL) instead of an embedded one; admin token in $AUTOTUNE_ADMIN_TOKEN")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.add_argument("-v", "--verbose", action="store_true", help="log every trial start and end")
    r.add_argument("--ui", action="store_true", help="serve the web UI while the experiment runs and print a login link")
    v = sub.add_parser("validate", help="check an experiment file and exit (0 valid, 2 invalid)")
    v.add_argument("experiment")
    o = sub.add_parser("operator", help="run the Kubernetes operator for AutoTuneExperiments (flags override AUTOTUNE_* env)")
    operator_main.add_arguments(o)
    u = sub.add_parser("ui", help="open a finished local run's results in the web UI (127.0.0.1, until Ctrl-C)")
    ui_command.add_arguments(u)
    c = sub.add_parser("convert", help="a Katib Experiment, an NNI config or an Azure ML sweep job as an "
                       "AutoTuneExperiment (notes on stderr)")
    convert_command.add_arguments(c)
    m = sub.add_parser("collect-metrics", help="relay a trial's metrics file or TensorFlow event files to stdout "
                       "(the metrics collector's sidecar in trial pods; until SIGTERM)")
    collect_metrics_command.add_arguments(m)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    if args.command == "validate":
        return cmd_validate(args)
    if args.command == "ui":
        return ui_command.run(args)
    if args.command == "convert":
        return convert_command.run(args)
    if args.command == "collect-metrics":
        return collect_metrics_command.run(args)
    if args.command == "operator":
        return operator_main.run(args)  # configures logging itself (AUTOTUNE_LOG_LEVEL / --log-level)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
