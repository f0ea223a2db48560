"""How a controller talks to the tuner server: in-process, or over HTTP.

Both clients expose the same methods so the experiment controller does not know which
one it has. The HTTP client retries connection failures (the server may be restarting)
until ``retry_seconds`` pass: a restarted server continues where it was.
``delete_experiment`` retries for a short, separate time (``delete_retry_seconds``): it runs
in a Kubernetes finalizer, which must not hold an object's deletion for minutes.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator, Mapping, Protocol, Sequence

from tuner_server.engine import Assignment, Engine, ExperimentConfig, NotFound, NotNow
from tuner_server.mlflow_runs import COLLECTED_BATCH, MlflowError, MlflowRuns
from tuner_server.net import opener_for
from tuner_server.warm_start import ImportRequest

DELETE_RETRY_SECONDS = 10.0


def _assignment(r: dict[str, Any]) -> Assignment:
    return Assignment(r["trialId"], r["sequence"], r["parameters"], r.get("budget"), r.get("resume"), r.get("kind", "search"))


class TunerServerError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"tuner server answered {status}: {detail}")


class TunerClient(Protocol):
    def register(self, exp_id: str, name: str, config: ExperimentConfig,
                 owner: dict[str, str] | None = None) -> dict[str, Any]: ...
    def suggest(self, exp_id: str, sequence: int) -> Assignment | NotNow | None: ...
    def started(self, exp_id: str, trial_id: str, at: float | None = None) -> None: ...
    def end(self, exp_id: str, trial_id: str, exit_code: int | None, killed: bool = False, message: str | None = None) -> str: ...
    def request_stop(self, exp_id: str, trial_id: str, reason: str) -> None: ...
    def requeue(self, exp_id: str, trial_id: str, message: str) -> str: ...
    def summary(self, exp_id: str) -> dict[str, Any]: ...
    def trials(self, exp_id: str) -> list[dict[str, Any]]: ...
    def final_trial(self, exp_id: str, sequence: int, parameters: dict[str, Any], budget: int | None) -> Assignment: ...
    def delete_experiment(self, exp_id: str) -> bool: ...
    def list_experiments(self) -> list[dict[str, Any]]: ...
    def import_trials(self, exp_id: str, request: ImportRequest) -> dict[str, Any]: ...
    def log_collected(self, exp_id: str, trial_id: str, metrics: Sequence[Mapping[str, Any]],
                      final: bool = False) -> int: ...


class InProcessClient:
    """Local mode: the controller and the engine share a process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, exp_id: str, name: str, config: ExperimentConfig,
                 owner: dict[str, str] | None = None) -> dict[str, Any]:
        h = self.engine.register(exp_id, name, config, owner=owner)
        return {"experimentId": h.stored.id, "token": h.stored.token, "created": h.stored.created}

    def suggest(self, exp_id: str, sequence: int) -> Assignment | NotNow | None:
        return self.engine.suggest(exp_id, sequence)

    def started(self, exp_id: str, trial_id: str, at: float | None = None) -> None:
        self.engine.started(exp_id, trial_id, at)

    def end(self, exp_id: str, trial_id: str, exit_code: int | None, killed: bool = False, message: str | None = None) -> str:
        return self.engine.end(exp_id, trial_id, exit_code, killed, message).value

    def request_stop(self, exp_id: str, trial_id: str, reason: str) -> None:
        self.engine.request_stop(exp_id, trial_id, reason)

    def requeue(self, exp_id: str, trial_id: str, message: str) -> str:
        """The user interrupted the trial's attempt: WAITING again, to run anew (Engine.requeue)."""
        return self.engine.requeue(exp_id, trial_id, message).value

    def summary(self, exp_id: str) -> dict[str, Any]:
        return self.engine.summary(exp_id)

    def trials(self, exp_id: str) -> list[dict[str, Any]]:
        return self.engine.trials_view(exp_id)

    def final_trial(self, exp_id: str, sequence: int, parameters: dict[str, Any], budget: int | None) -> Assignment:
        return self.engine.final_trial(exp_id, sequence, parameters, budget)

    def delete_experiment(self, exp_id: str) -> bool:
        """Forget the experiment and its trials; False if there was nothing to forget."""
        try:
            self.engine.delete(exp_id)
        except NotFound:
            return False
        return True

    def list_experiments(self) -> list[dict[str, Any]]:
        return self.engine.listing()

    def import_trials(self, exp_id: str, request: ImportRequest) -> dict[str, Any]:
        return self.engine.import_trials(exp_id, request)

    def log_collected(self, exp_id: str, trial_id: str, metrics: Sequence[Mapping[str, Any]],
                      final: bool = False) -> int:
        """Metrics read from the trial's output ({key, value, step}); how many were new.
        ``final``: read after the trial exited (not judged by the assessor)."""
        try:
            return MlflowRuns.of(self.engine).log_collected(exp_id, trial_id, metrics, final)
        except MlflowError as e:  # the HTTP client's error, so the controller handles one kind
            raise TunerServerError(e.status, e.message) from None


# Bytes of JSON per collected-metrics request: half the server's default body limit
# (body_limit.py, 1 MiB), so that 1000 values with long non-ASCII names (escaped as \uXXXX,
# up to 3 KB each) are sent in several requests instead of being refused (413) and dropped.
COLLECTED_PART_BYTES = 512 * 1024


def collected_parts(items: list[dict[str, Any]], max_bytes: int = COLLECTED_PART_BYTES) -> Iterator[list[dict[str, Any]]]:
    """``items`` in order, in parts of at most COLLECTED_BATCH values and about ``max_bytes``
    of JSON each (one value alone may exceed it: it is sent by itself)."""
    part: list[dict[str, Any]] = []
    size = 0
    for item in items:
        n = len(json.dumps(item)) + 1
        if part and (len(part) == COLLECTED_BATCH or size + n > max_bytes):
            yield part
            part, size = [], 0
        part.append(item)
        size += n
    if part:
        yield part


def is_http_url(url: str) -> bool:
    """Whether HttpClient can call ``url``: urllib calls 'localhost:8080' an unknown URL
    type, which the client's retries would turn into minutes of waiting."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def retry_after(value: str | None) -> float:
    """Seconds a 429's Retry-After asks for (1 when absent or not a number)."""
    try:
        return min(max(float(value or 1), 0.1), 600.0)
    except ValueError:
        return 1.0


class HttpClient:
    def __init__(self, url: str, admin_token: str, timeout: float = 30.0, retry_seconds: float = 120.0,
                 delete_retry_seconds: float = DELETE_RETRY_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.token = admin_token
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.delete_retry_seconds = delete_retry_seconds
        # No proxy for a loopback server (`autotune run --server http://127.0.0.1:PORT` from a
        # shell with a proxy set); other hosts: the proxies of the environment now, not those
        # urlopen's process-wide opener kept from its first use (see opener_for).
        self._open = opener_for(self.url).open

    def _call(self, method: str, path: str, body: Any = None, retry_seconds: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        budget = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = time.monotonic() + budget
        # One request may not outlast the whole budget (a hung server, not only a down one).
        timeout = min(self.timeout, max(budget, 1.0))
        delay = 0.05
        while True:
            req = urllib.request.Request(self.url + path, data=data, method=method)
            req.add_header("Authorization", f"Bearer {self.token}")
            if data is not None:
                req.add_header("Content-Type", "application/json")
            try:
                with self._open(req, timeout=timeout) as resp:
                    return json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as e:
                try:
                    detail = json.loads(e.read()).get("detail")
                except Exception:
                    detail = e.reason
                now = time.monotonic()
                if e.code == 429 and now < deadline:
                    # The address is refused for a while after another client's failed log-ins.
                    time.sleep(min(retry_after(e.headers.get("Retry-After")), deadline - now))
                    continue
                # 502-504 come from a proxy while the server restarts; 500 is a real failure.
                if e.code not in (502, 503, 504) or now >= deadline:
                    raise TunerServerError(e.code, str(detail)) from None
            # HTTPException: a server killed mid-response leaves an IncompleteRead, which is not
            # an OSError; every call is idempotent, so it is retried like a refused connection.
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, http.client.HTTPException):
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def register(self, exp_id: str, name: str, config: ExperimentConfig,
                 owner: dict[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "config": config.model_dump(mode="json")}
        if owner:  # only when set: an older server refuses unknown fields
            body["owner"] = owner
        return self._call("PUT", f"/api/v1/experiments/{exp_id}", body)

    def list_experiments(self) -> list[dict[str, Any]]:
        """Every experiment the server hosts (summaries with ``owner``); admin only."""
        return self._call("GET", "/api/v1/experiments")

    def import_trials(self, exp_id: str, request: ImportRequest) -> dict[str, Any]:
        """Warm start (idempotent: a trial imported before is not imported again)."""
        return self._call("POST", f"/api/v1/experiments/{exp_id}/imported-trials", request.model_dump(mode="json"))

    def suggest(self, exp_id: str, sequence: int) -> Assignment | NotNow | None:
        r = self._call("POST", f"/api/v1/experiments/{exp_id}/trials", {"sequence": sequence})
        if r["exhausted"]:
            return None
        if r.get("wait"):
            return NotNow(r.get("message") or NotNow.reason)
        return _assignment(r)

    def final_trial(self, exp_id: str, sequence: int, parameters: dict[str, Any], budget: int | None) -> Assignment:
        body = {"sequence": sequence, "parameters": parameters, "budget": budget}
        return _assignment(self._call("POST", f"/api/v1/experiments/{exp_id}/final-trials", body))

    def started(self, exp_id: str, trial_id: str, at: float | None = None) -> None:
        """The trial began running, now or at ``at`` (idempotent; an earlier ``at`` wins)."""
        body = {} if at is None else {"at": at}  # an older server reads no body: "now"
        self._call("POST", f"/api/v1/experiments/{exp_id}/trials/{trial_id}/start", body)

    def end(self, exp_id: str, trial_id: str, exit_code: int | None, killed: bool = False, message: str | None = None) -> str:
        body = {"exitCode": exit_code, "killed": killed, "message": message}
        return self._call("POST", f"/api/v1/experiments/{exp_id}/trials/{trial_id}/end", body)["state"]

    def request_stop(self, exp_id: str, trial_id: str, reason: str) -> None:
        self._call("POST", f"/api/v1/experiments/{exp_id}/trials/{trial_id}/stop", {"reason": reason})

    def requeue(self, exp_id: str, trial_id: str, message: str) -> str:
        """The user interrupted the trial's attempt: WAITING again, to run anew (Engine.requeue)."""
        return self._call("POST", f"/api/v1/experiments/{exp_id}/trials/{trial_id}/requeue", {"message": message})["state"]

    def log_collected(self, exp_id: str, trial_id: str, metrics: Sequence[Mapping[str, Any]],
                      final: bool = False) -> int:
        """Metrics read from the trial's output ({key, value, step}); how many were new. Sent
        in parts of COLLECTED_BATCH; retrying is safe (a step already recorded is skipped).
        ``final``: read after the trial exited (not judged by the assessor)."""
        recorded = 0
        for part in collected_parts([dict(m) for m in metrics]):
            r = self._call("POST", f"/api/v1/experiments/{exp_id}/trials/{trial_id}/collected-metrics",
                           {"metrics": part, **({"final": True} if final else {})})
            recorded += int(r["recorded"])
        return recorded

    def summary(self, exp_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/experiments/{exp_id}")

    def trials(self, exp_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v1/experiments/{exp_id}/trials")

    def delete_experiment(self, exp_id: str) -> bool:
        """Forget the experiment and its trials; False if the server did not know it (404).

        Retries an unreachable server for ``delete_retry_seconds`` only, then raises
        (OSError, or TunerServerError for an HTTP error): the caller decides what to do.
        """
        try:
            self._call("DELETE", f"/api/v1/experiments/{exp_id}", retry_seconds=self.delete_retry_seconds)
        except TunerServerError as e:
            if e.status == 404:
                return False
            raise
        return True
