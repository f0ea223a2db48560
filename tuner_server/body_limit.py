"""Request body size limits: an oversized body is refused with 413 before it is read into memory.

Every route has a limit by its family (:class:`BodyLimits`, :func:`family_of`). A request
whose ``Content-Length`` is over it is refused without calling the app. A chunked body (no
``Content-Length``) is counted as it arrives and refused as soon as it passes the limit, so
the app never holds more than the limit plus one piece (what uvicorn buffered: its 64 KiB
high-water mark plus one socket read, a few hundred KiB at most). In both cases the rest of the body
is read and dropped (up to :data:`DRAIN`) before the 413 goes out, so that clients which
write a whole body before reading the answer get the 413 rather than a reset connection.

The larger limits of the admin's routes (registering an experiment, warm-start
imports) apply only to requests that carry the admin token: any other caller is refused
there anyway (401/403), but FastAPI reads and parses a body before it checks the token, so
without this anyone reaching the port could make the server parse 256 MiB.

The 413's JSON carries both FastAPI's ``detail`` (read by AutoTune's clients) and MLflow's
``error_code``/``message`` (MLflow's client raises with that message), with the limit and
the size in bytes.

Cost: a request with a ``Content-Length`` (every client AutoTune ships, MLflow's, browsers)
costs one scan of its headers; the app gets the server's own ``receive``/``send``. Only a
chunked body gets a counting ``receive`` (and a ``send`` that drops what the app answers
after the 413 was sent).
"""

from __future__ import annotations

import json
import re
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
# Below this even the server's own calls (a trial's end with its message) would be refused.
MIN_LIMIT = KiB
# How much of a refused body is still read (and dropped, never kept) before the 413 is sent.
# Synchronous clients (urllib, requests: AutoTune's own and MLflow's) write the whole body
# before reading an answer: a server that answers and closes mid-upload resets the
# connection, and such a client reports "connection reset" instead of the 413. Past this the
# server answers and closes at once (the client may then see only the reset).
DRAIN = 64 * MiB


class BodyLimits(BaseModel):
    """Bytes a request body may have, per route family (see :func:`family_of`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Every other route: trial reports, suggestions, trial starts and ends, the web UI's login
    # form. Each is well under 10 KiB (a metric dict, an end message of <= 4096 characters);
    # 1 MiB leaves room for large metric dicts while many such bodies at once stay cheap. The
    # controller's collected-metrics calls carry at most 1000 values (mlflow_runs.py's
    # COLLECTED_BATCH), ~300 KB with 250-character names.
    default: int = Field(default=1 * MiB, ge=MIN_LIMIT)
    # PUT /api/v1/experiments/{id}: an experiment's config, mostly its search space as a JSON
    # string. On a cluster it comes from an AutoTuneExperiment, which etcd keeps under
    # 1.5 MiB; as a string inside JSON its quotes are escaped (\") and non-ASCII becomes \uXXXX
    # (up to 6 bytes a character). 8 MiB holds any cluster spec and generous local manifests.
    registration: int = Field(default=8 * MiB, ge=MIN_LIMIT)
    # POST .../imported-trials (warm start): every completed trial of each source in one
    # request. The request model caps a source at 100,000 trials (warm_start.py's
    # MAX_TRIALS_PER_REQUEST); 100,000 trials with four parameters are ~63 MiB of JSON with
    # 20-epoch curves and ~217 MiB with 100-epoch curves, so 256 MiB keeps that cap reachable.
    # Parsing costs ~4.5x the body (217 MiB peaked at 950 MiB RSS with json + pydantic),
    # which the Helm chart's 2 GiB memory limit for the tuner server still holds.
    imports: int = Field(default=256 * MiB, ge=MIN_LIMIT)
    # /mlflow/...: a trial's MLflow client. MLflow's own server refuses a log-batch over 1 MB
    # (MAX_BATCH_LOG_REQUEST_SIZE, measured on its re-encoding of the request: at most 1000
    # metrics, 100 params and 100 tags). The client's JSON escapes non-ASCII keys and values,
    # so a batch MLflow accepts can be larger on the wire: 2 MiB.
    mlflow: int = Field(default=2 * MiB, ge=MIN_LIMIT)

    def of(self, family: str) -> int:
        return int(getattr(self, family))


FAMILIES = tuple(BodyLimits.model_fields)
# Families of routes only the admin token may call: their limit over the default applies
# only to a request carrying that token.
ADMIN_FAMILIES = frozenset({"registration", "imports"})

_EXPERIMENT = re.compile(r"^/api/v1/experiments/[^/]+/?$")
_IMPORTS = re.compile(r"^/api/v1/experiments/[^/]+/imported-trials/?$")


def family_of(method: str, path: str) -> str:
    """The limit family of a request (pure: the method and the path only)."""
    if path.startswith("/mlflow/"):
        return "mlflow"
    if method == "PUT" and _EXPERIMENT.match(path):
        return "registration"
    if method == "POST" and _IMPORTS.match(path):
        return "imports"
    return "default"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": KiB, "mib": MiB, "gib": GiB}


def parse_size(text: str) -> int:
    """'1048576', '512KiB', '8MiB', '1GB' -> bytes (KiB/MiB/GiB are 1024-based, kB/MB/GB 1000-based)."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size: give bytes, or a number with KiB, MiB, GiB, kB, MB or GB")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])


def parse_limits(text: str) -> BodyLimits:
    """The server's ``--max-body`` setting: '' (the defaults), one size (the default family's
    limit), or ``family=size`` pairs separated by commas (``default=2MiB,imports=512MiB``)."""
    text = text.strip()
    if not text:
        return BodyLimits()
    given: dict[str, int] = {}
    for part in text.split(",") if "=" in text else [f"default={text}"]:
        name, sep, size = part.partition("=")
        name = name.strip()
        if not sep or name not in FAMILIES:
            raise ValueError(f"{part.strip()!r}: expected family=size with a family of {', '.join(FAMILIES)}")
        given[name] = parse_size(size)
    try:
        return BodyLimits(**given)
    except ValueError as e:  # pydantic's: a size under MIN_LIMIT
        bad = [name for name, v in given.items() if v < MIN_LIMIT]
        raise ValueError(f"{', '.join(bad) or 'a'} limit must be at least {MIN_LIMIT} bytes") from e


def refusal(limit: int, size: int, family: str, declared: bool) -> dict[str, object]:
    """The 413's JSON (pure): FastAPI's ``detail`` and MLflow's ``error_code``/``message``."""
    got = f"{size} bytes" if declared else f"more than {limit} bytes (refused after {size})"
    message = (f"request body too large: {got}; the limit for this route ({family}) is {limit} bytes "
               f"(the tuner server's --max-body / $AUTOTUNE_MAX_BODY)")
    return {"detail": message, "error_code": "INVALID_PARAMETER_VALUE", "message": message,
            "limitBytes": limit, "bodyBytes": size, "family": family}


class BodyTooLarge(Exception):
    """Raised to the app from ``receive`` when a chunked body passes its limit (answered already)."""


class BodyLimit:
    """ASGI middleware enforcing :class:`BodyLimits`. ``is_admin(authorization header)``
    says whether a request carries the admin token (for :data:`ADMIN_FAMILIES`)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits, is_admin: Callable[[str], bool]) -> None:
        self.app = app
        self.limits = limits
        self.is_admin = is_admin

    def limit_for(self, method: str, path: str, authorization: str) -> tuple[str, int]:
        family = family_of(method, path)
        limit = self.limits.of(family)
        if family in ADMIN_FAMILIES and limit > self.limits.default and not self.is_admin(authorization):
            return family, self.limits.default
        return family, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = waiting = False
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                authorization = value
            elif name == b"expect":
                waiting = value.lower() == b"100-continue"
        if length is None and not chunked:
            await self.app(scope, receive, send)  # no body (HTTP/1.1: neither header means none)
            return
        family, limit = self.limit_for(scope["method"], scope["path"], authorization.decode("latin-1"))
        declared = _length(length) if not chunked else None
        if declared is not None:
            # The server delivers exactly Content-Length bytes (h11 and httptools enforce it),
            # so a length within the limit needs no counting.
            if declared > limit:
                # A client waiting for "100 Continue" (curl's large uploads) sends no body unless
                # the app reads it (uvicorn answers 100 on the first receive): answer at once.
                ended = not waiting and declared - limit <= DRAIN and await _drain(receive, declared)
                await _answer(send, refusal(limit, declared, family, declared=True), close=not ended)
                return
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, family, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, family: str, limit: int) -> None:
        seen = 0
        started = refused = False

        async def counting() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if not started:
                        refused = True
                        ended = not message.get("more_body", False) or await _drain(receive, DRAIN)
                        await _answer(send, refusal(limit, seen, family, declared=False), close=not ended)
                    raise BodyTooLarge(f"request body over {limit} bytes")
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's answer to the BodyTooLarge it was raised: the 413 went out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting, guarded)
        except BodyTooLarge:
            if not refused:
                raise


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and drop the rest of a body, at most ``budget`` bytes: True if it ended."""
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return False  # the client went away
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def _length(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:  # the server refuses a malformed length before the app runs; count if not
        return None


async def _answer(send: Send, content: dict[str, object], close: bool) -> None:
    """``close``: the body was not read to its end, so the connection cannot carry another
    request (the server closes it after the 413)."""
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
