"""AutoTune trial SDK: the few calls a training script makes. Standard library only.

    import autotune
    params = autotune.get_next_parameter()
    for epoch in range(epochs):
        ...
        if autotune.report_intermediate_result(accuracy):
            break  # the assessor says this trial will not win
    autotune.report_final_result(accuracy)

Or let AutoTune call a function: ``autotune.tune(train, search_space, max_trials=20)`` runs
an experiment on this machine, each trial calling ``train(params)`` in its own process
(it needs AutoTune installed; this file alone is enough for the trials).

A metric is a number or a dict whose ``default`` key holds the objective. Each report
returns True when the trial should stop. Outside an experiment (no AUTOTUNE_* variables)
the calls print the metric and return False, so the same script runs by hand.

The trial's identity and the server come from environment variables set by the local
runner or the operator: AUTOTUNE_SERVER_URL, AUTOTUNE_TOKEN, AUTOTUNE_EXPERIMENT_ID,
AUTOTUNE_TRIAL_ID, AUTOTUNE_SEQUENCE_ID, AUTOTUNE_PARAMETERS (JSON).

Each process numbers its reports from step 0 (or from the step= it names, resuming from a
checkpoint) and sends them with a session id of its own, so the tuner server tells a retried
report (same process) from a new run of the trial (a pod re-created, a script started again),
whose values replace the curve from that step on. In a
distributed trial (torchrun, a PyTorchJob, mpirun) only rank 0 records metrics: the other
ranks' calls send nothing and return the trial's stop decision (see _reporting_rank).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import numbers
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Mapping

__all__ = [
    "get_next_parameter",
    "get_current_parameter",
    "report_intermediate_result",
    "report_final_result",
    "get_trial_id",
    "get_experiment_id",
    "get_sequence_id",
    "get_budget",
    "get_checkpoint_dir",
    "get_resume_dir",
    "is_final_training",
    "ReportError",
    "tune",
]


class ReportError(RuntimeError):
    """The tuner server refused a report (bad metric, wrong token, unknown trial).
    ``refused``: it answered no (4xx), so nothing was recorded; False when it was
    unreachable, which leaves open whether a report got through."""

    def __init__(self, message: str, refused: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.refused = refused
        self.status = status  # the HTTP status of a refusal


_state: dict[str, Any] = {"step": 0, "params": None}
# This process's run of the trial, sent with each report: a new process's step 0 is then a new
# run, not a retry of the step 0 of the process before it (tuner_server/report_session.py). A
# fork child keeps it: it is part of its parent's run (and shares its numbering, as before).
_SESSION = uuid.uuid4().hex
_SESSION_HEADER = "X-AutoTune-Session"
# Launchers' (rank, world size) variables: torchrun, PyTorchJob and DeepSpeed; Open MPI; MPICH
# and Intel MPI; Horovod's gloo launcher.
_RANK_VARIABLES = (("RANK", "WORLD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                   ("PMI_RANK", "PMI_SIZE"), ("HOROVOD_RANK", "HOROVOD_SIZE"))
# Held from taking a step number until the server has it: threads reporting at once would
# otherwise take the same step (the server keeps the first, drops the other as a retry) or
# send step n+1 before n (refused with 409). A fork child gets a new lock, as the fork may
# have copied it held by a thread that does not exist there. Reentrant: a signal handler that
# reports runs in the thread it interrupted, maybe inside a report, and must not deadlock.
_report_lock = threading.RLock()


def _new_lock_in_child() -> None:
    global _report_lock
    _report_lock = threading.RLock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _env(name: str) -> str | None:
    v = os.environ.get(name)
    return v if v else None


def get_experiment_id() -> str | None:
    return _env("AUTOTUNE_EXPERIMENT_ID")


def get_trial_id() -> str | None:
    return _env("AUTOTUNE_TRIAL_ID")


def get_sequence_id() -> int | None:
    v = _env("AUTOTUNE_SEQUENCE_ID")
    return int(v) if v is not None else None


def get_budget() -> int | None:
    """The epochs (budget) a multi-fidelity advisor gave this trial, if any: the total to
    reach, counting the epochs of the checkpoint in :func:`get_resume_dir` when resuming.
    Also set for final training when it has a budget (``EPOCHS`` is not, as in seed 000)."""
    v = _env("AUTOTUNE_BUDGET") or _env("EPOCHS")
    return int(float(v)) if v is not None else None


def get_checkpoint_dir() -> str | None:
    """Where this trial may save a checkpoint (created on demand), if the runner gives one."""
    v = _env("AUTOTUNE_SAVE_DIR")
    if v is not None:
        os.makedirs(v, exist_ok=True)
    return v


def get_resume_dir() -> str | None:
    """The checkpoint a promoted trial continues from (a lower-budget run of the same
    configuration), or None to train from scratch."""
    v = _env("AUTOTUNE_RESUME_DIR")
    return v if v is not None and os.path.isdir(v) else None


def is_final_training() -> bool:
    """True when this trial reruns a chosen configuration after the search (``PIPESTEP=fullytrain``)."""
    return _env("AUTOTUNE_TRIAL_KIND") == "final" or _env("PIPESTEP") == "fullytrain"


def get_next_parameter() -> dict[str, Any]:
    """This trial's hyperparameters (an empty dict outside an experiment)."""
    if _state["params"] is None:
        raw = _env("AUTOTUNE_PARAMETERS")
        if raw is not None:
            try:  # set by hand to try a script: say what is wrong with it
                params = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ValueError(f"$AUTOTUNE_PARAMETERS is not JSON ({e}): give an object like "
                                 f"'{{\"lr\": 0.1}}', or unset it") from None
            if not isinstance(params, dict):
                raise ValueError(f"$AUTOTUNE_PARAMETERS must be a JSON object like '{{\"lr\": 0.1}}', got {raw!r}")
            _state["params"] = params
        elif _connected():
            trial = _request("GET", _trial_path(), None)
            _state["params"] = trial["parameters"]
        else:
            _state["params"] = {}
    return dict(_state["params"])


get_current_parameter = get_next_parameter


def _plain(v: Any) -> Any:
    """A numpy or torch scalar (np.float32(0.9), tensor(0.9)) as the Python number it holds:
    it is not a float instance and json cannot encode it, so every trial reporting a
    Keras/TF metric's .numpy() failed."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    item = getattr(v, "item", None)
    if callable(item):
        try:
            x = item()
        except (TypeError, ValueError, RuntimeError):  # more than one element
            return v
        if isinstance(x, (int, float)):
            return x
    return v


def _value(v: Any) -> Any:
    """A metric dict's value as JSON can hold it: a numpy/torch scalar as its number, an
    array or tensor (a confusion matrix, per-class scores) as its nested lists."""
    v = _plain(v)
    tolist = getattr(v, "tolist", None)
    if not isinstance(v, (bool, int, float, str)) and callable(tolist):
        try:
            return tolist()
        except (TypeError, ValueError, RuntimeError):
            return v
    return v


def _check_metric(metric: Any) -> Any:
    metric = {k: _value(v) for k, v in metric.items()} if isinstance(metric, dict) else _plain(metric)
    if isinstance(metric, dict):
        try:  # here, not in the request: json's TypeError would not say it is the metric
            json.dumps(metric)
        except (TypeError, ValueError) as e:
            raise ValueError(f"a metric dict must be JSON (numbers, strings, lists, string keys): {e}") from None
    # A dict without 'default' is a multi-objective result ({"accuracy": .., "size": ..}):
    # the tuner server checks it against the experiment's spec.objectives.
    if isinstance(metric, dict) and "default" not in metric:
        if not metric:
            raise ValueError("a metric dict needs a 'default' key (or the keys of the experiment's objectives)")
        return metric
    value = metric.get("default") if isinstance(metric, dict) else metric
    # A comparison, not math.isfinite: that raises OverflowError for an int beyond float range.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -sys.float_info.max <= value <= sys.float_info.max:
        raise ValueError(f"the objective value must be a finite number, got {value!r} ({type(value).__name__})")
    return metric


def _env_rank(environ: Mapping[str, str]) -> int | None:
    """This process's rank in a distributed trial as its launcher's variables give it; None
    when they say no more than one process (or nothing, or not numbers)."""
    return _env_rank_and_problem(environ)[0]


def _env_rank_and_problem(environ: Mapping[str, str]) -> tuple[int | None, str | None]:
    """_env_rank's rank, and what is wrong when a launcher says several processes run but
    not which one this is (a rank that is no integer from 0 to the world size - 1)."""
    problem = None
    for rank, size in _RANK_VARIABLES:
        try:
            world = int(environ.get(size, ""))
        except ValueError:
            continue
        if world <= 1:
            continue
        raw = environ.get(rank)
        try:
            value = int(raw if raw is not None else "")
        except ValueError:
            value = -1
        if 0 <= value < world:
            return value, None
        problem = problem or (f"{size}={world} but {rank}={raw!r} is not a rank from 0 to {world - 1}: "
                              f"this process reports as rank 0 (every rank that does so makes the trial's curve in turn)")
    return None, problem


def _warn_once(key: str, message: str) -> None:
    """A warning on stderr, once per process (a script reports every epoch)."""
    said = _state.setdefault("warned", set())
    if key not in said:
        said.add(key)
        print(f"[autotune] warning: {message}", file=sys.stderr)


def _torch_rank() -> int | None:
    """The rank torch.distributed was initialized with, if the script did so (mp.spawn sets
    no variables): read only when torch is already imported, never importing it here."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return int(dist.get_rank())
    except Exception:  # a half-initialized group: taken as not distributed
        return None
    return None


def _reporting_rank() -> bool:
    """Whether this process records metrics: rank 0 of a distributed trial, or a process that
    is not one. Every rank reporting the same epoch made one curve of several processes' steps;
    rank 0 alone is what Katib reads (the master replica) and what NNI's examples report."""
    rank = _torch_rank()
    if rank is None:
        rank, problem = _env_rank_and_problem(os.environ)
        if problem is not None:
            _warn_once("rank", problem)
    return rank is None or rank == 0


def _stop_requested() -> bool:
    """For a rank that does not report: whether the trial should stop (an assessor's stop
    reached by rank 0's reports, a stop request, or the trial's end), as its reports would say."""
    trial = _request("GET", _trial_path(), None)
    return bool(trial.get("stopRequested")) or trial.get("state") not in (None, "WAITING", "RUNNING")


def _check_step(step: Any) -> int | None:
    """``step`` as given to report_intermediate_result: None (the process's next), or a
    non-negative integer (numpy's too); anything else is an error naming it."""
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be a non-negative int (the report's 0-based step), got {step!r} "
                        f"({type(step).__name__})")
    if step < 0:
        raise ValueError(f"step must be a non-negative int (the report's 0-based step), got {step}")
    return int(step)


def report_intermediate_result(metric: Any, step: int | None = None) -> bool:
    """Report a per-epoch metric. Returns True when the trial should stop early.

    ``step``: this report's step, 0-based as the tuner server numbers them; by default the
    process's next (0, 1, 2, ...). A script that resumes from a checkpoint at epoch k passes
    step=k, and the curve goes on from there: a new process's report at a step the earlier
    run reported cuts the curve there, keeping the steps before it. Later reports without a
    step take the steps after it. A step beyond the curve's next (a gap) is refused: ReportError."""
    metric = _check_metric(metric)
    given = _check_step(step)
    with _report_lock:
        counter = _state["step"]
        step = counter if given is None else given
        _state["step"] = step + 1
        if not _connected():
            print(f"[autotune] intermediate result {step}: {metric}", file=sys.stderr)
            return False
        if not _reporting_rank():
            return _stop_requested()
        try:
            answer = _request("POST", _trial_path() + "/intermediate", {"metric": metric, "step": step},
                              {_SESSION_HEADER: _SESSION})
        except ReportError as e:
            # Not recorded: the next report takes this step. Kept, a trial that catches the
            # error and reports again sent step n+1 before n, refused (409) from then on.
            if e.refused:
                _state["step"] = counter
            if given is not None and e.status == 409:
                # A promoted trial is a new trial: the checkpoint it continues is another's, whose
                # epochs are not in its curve (the natural step=epoch of a resumed loop is refused).
                promoted = ("; this trial was promoted from another trial's checkpoint (get_resume_dir()): its "
                            "own curve starts at step 0, so report the epochs it trains without step="
                            if get_resume_dir() is not None else "")
                raise ReportError(f"report_intermediate_result(step={given}) was refused: a step may not leave a "
                                  f"gap after the trial's curve on the tuner server (resume at most at the next "
                                  f"step it names; nothing was recorded){promoted}: {e}",
                                  refused=True, status=e.status) from None
            raise
    return bool(answer.get("stop"))


def report_final_result(metric: Any) -> bool:
    """Report the trial's final metric (the objective the tuner optimizes)."""
    metric = _check_metric(metric)
    if not _connected():
        print(f"[autotune] final result: {metric}", file=sys.stderr)
        _state["final"] = True
        return False
    if not _reporting_rank():  # rank 0 reports the result
        _state["final"] = True
        return False
    # With the session: the server ignores the result of a process a newer one replaced.
    answer = _request("POST", _trial_path() + "/final", {"metric": metric}, {_SESSION_HEADER: _SESSION})
    _state["final"] = True  # autotune.tune()'s trial reports a function's return value only if not
    return bool(answer.get("stop"))


def tune(function: Any, search_space: Any, **kwargs: Any) -> Any:
    """Run an experiment on this machine from Python: each trial calls ``function(params)``
    in its own process, and what it returns (a number or a dict, as report_final_result
    takes) is its result. Returns a TuneResult (best_parameters, best_value, trials, ...).
    Arguments, results and rules: autotune_operator/tune.py. Call it under
    ``if __name__ == "__main__":``: a trial imports the function's file."""
    if _env("AUTOTUNE_TRIAL_ID") or _env("AUTOTUNE_IMPORT_CHECK"):
        # This file is being imported by a trial (or tune()'s import check) to find the
        # function: running an experiment here would start experiments without end.
        raise RuntimeError(
            "autotune.tune() was called inside a trial process, which imports the function's file: put the "
            "tune() call under 'if __name__ == \"__main__\":' so that importing the file does not run it")
    try:
        from autotune_operator.tune import tune as _tune
    except ImportError as e:
        raise ImportError(f"autotune.tune() needs AutoTune itself installed, not only the trial SDK "
                          f"(pip install autotune): {e}") from None
    return _tune(function, search_space, **kwargs)


def _token() -> str | None:
    """$AUTOTUNE_TOKEN without surrounding whitespace (blank: unset), as the tuner server reads
    tokens: a Secret key made with `kubectl create secret --from-file` ends in the file's
    newline, which no HTTP header can carry (urllib refused to send it: every report failed)."""
    v = os.environ.get("AUTOTUNE_TOKEN", "").strip()
    return v if v else None


def _connected() -> bool:
    return _token() is not None and all(
        _env(k) for k in ("AUTOTUNE_SERVER_URL", "AUTOTUNE_EXPERIMENT_ID", "AUTOTUNE_TRIAL_ID"))


def _trial_path() -> str:
    e = urllib.parse.quote(os.environ["AUTOTUNE_EXPERIMENT_ID"], safe="")
    t = urllib.parse.quote(os.environ["AUTOTUNE_TRIAL_ID"], safe="")
    return f"/api/v1/experiments/{e}/trials/{t}"


def _retry_after(value: str | None) -> float:
    """Seconds a 429's Retry-After asks for (1 when absent or not a number)."""
    try:
        return min(max(float(value or 1), 0.1), 600.0)
    except ValueError:
        return 1.0


def _moved_server() -> str | None:
    """The tuner server's URL as $AUTOTUNE_SERVER_URL_FILE now gives it, if that differs from
    ours. Local mode's server lives in `autotune run` on a random port: when that process is
    killed and run again, its trials keep running and find the new server there."""
    path = _env("AUTOTUNE_SERVER_URL_FILE")
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            url = f.read().strip()
    except OSError:
        return None
    current = os.environ.get("AUTOTUNE_SERVER_URL", "")
    if not url or url.rstrip("/") == current.rstrip("/") or not url.startswith(("http://", "https://")):
        return None
    return url


def _open(req: urllib.request.Request) -> Any:
    """Send ``req`` through an opener made for it, never urlopen's. A server on this machine's
    loopback (local mode's is on 127.0.0.1) is reached directly: urllib sends every http://
    URL to $http_proxy unless $no_proxy names the host, and a proxy cannot reach our loopback,
    so with a proxy set in the shell every trial of `autotune run` failed. Other hosts follow
    the environment now, not urlopen's process-wide opener, which keeps the proxies of its
    first use or whatever opener the training script (or a library) installed.
    (tuner_server/net.py opener_for does the same; this file must not import it.)"""
    host = urllib.parse.urlsplit(req.full_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        loopback = False
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({} if loopback else None))
    return opener.open(req, timeout=30)


def _request(method: str, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    """One call to the tuner server, retried while it is unreachable (it may be restarting,
    or, in local mode, have moved: see :func:`_moved_server`)."""
    data = None if body is None else json.dumps(body).encode()
    deadline = time.monotonic() + float(os.environ.get("AUTOTUNE_REPORT_TIMEOUT", "300"))
    delay = 0.05
    while True:
        url = os.environ["AUTOTUNE_SERVER_URL"].rstrip("/") + path
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {_token() or ''}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with _open(req) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            now = time.monotonic()
            if e.code == 429 and now < deadline:
                # Another client on this address guessed tokens and the server refuses the
                # address for a while: wait that out rather than lose the report.
                time.sleep(min(_retry_after(e.headers.get("Retry-After")), deadline - now))
                continue
            if e.code in (502, 503, 504) and now < deadline:
                pass
            else:
                try:
                    detail = json.loads(e.read()).get("detail")
                except Exception:
                    detail = e.reason
                raise ReportError(f"tuner server refused {method} {path}: {e.code} {detail}",
                                  refused=400 <= e.code < 500 and e.code != 429, status=e.code) from None
        # HTTPException: a server killed mid-response leaves an IncompleteRead (not an OSError).
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, http.client.HTTPException) as e:
            moved = _moved_server()
            if moved is not None:
                os.environ["AUTOTUNE_SERVER_URL"] = moved  # every later call goes there too
                delay = 0.05
                continue
            if time.monotonic() >= deadline:
                raise ReportError(f"tuner server at {url} unreachable: {e}") from None
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
