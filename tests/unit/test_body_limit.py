"""Request body limits (tuner_server/body_limit.py): route families, the setting's syntax, the
413's shape, and the middleware at the ASGI level (what it hands the app, how much of an
endless chunked body it reads). Real HTTP is in tests/integration/test_body_limits.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tuner_server.body_limit import (
    DRAIN, MIN_LIMIT, BodyLimit, BodyLimits, BodyTooLarge, KiB, MiB, family_of, parse_limits, parse_size, refusal,
)
from tuner_server.warm_start import MAX_TRIALS_PER_REQUEST

ADMIN = "Bearer admin-token-0123456789"


@pytest.mark.parametrize("method, path, family", [
    ("PUT", "/api/v1/experiments/e1", "registration"),
    ("DELETE", "/api/v1/experiments/e1", "default"),
    ("POST", "/api/v1/experiments/e1/imported-trials", "imports"),
    ("POST", "/api/v1/experiments/e1/trials", "default"),
    ("POST", "/api/v1/experiments/e1/trials/t-1/intermediate", "default"),
    ("POST", "/api/v1/experiments/e1/trials/t-1/collected-metrics", "default"),
    ("POST", "/mlflow/e1/t-1/api/2.0/mlflow/runs/log-batch", "mlflow"),
    ("POST", "/ui/login", "default"),
    # A trial id that merely contains a family's word is not that family.
    ("POST", "/api/v1/experiments/e1/trials/imported-trials/final", "default"),
])
def test_family_of(method: str, path: str, family: str) -> None:
    assert family_of(method, path) == family


def test_default_limits_keep_the_warm_start_cap_reachable() -> None:
    """100,000 trials (a source's cap) with 4 parameters and a 100-epoch curve fit the imports limit."""
    trial = {"id": "digits-mlp-000001", "parameters": {"learning_rate": 0.012345678901234567, "dropout": 0.2345678901234567,
                                                     "batch_size": 64, "optimizer": "adam"},
             "metric": 0.9723456789012345, "state": "SUCCEEDED", "intermediate": [0.9123456789012345] * 100,
             "ended": 1700000000.123456}
    assert MAX_TRIALS_PER_REQUEST * (len(json.dumps(trial)) + 2) < BodyLimits().imports
    assert BodyLimits().default == MiB and BodyLimits().mlflow >= 1_000_000  # MLflow's own log-batch limit is 1 MB


@pytest.mark.parametrize("text, size", [("1048576", MiB), ("512KiB", 512 * KiB), ("8 MiB", 8 * MiB), ("1.5mib", 3 * MiB // 2),
                                        ("2GB", 2_000_000_000), ("10kB", 10_000), ("4096b", 4096)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_limits() -> None:
    assert parse_limits("") == BodyLimits()
    assert parse_limits("2MiB") == BodyLimits(default=2 * MiB)
    both = parse_limits(" default=64KiB , imports=1GiB")
    assert (both.default, both.imports, both.registration) == (64 * KiB, 1024 * MiB, BodyLimits().registration)


@pytest.mark.parametrize("text, message", [
    ("lots", "'lots' is not a size"),
    ("-1MiB", "is not a size"),
    ("default=2MiB,uploads=1GiB", "'uploads=1GiB': expected family=size with a family of default, registration, imports, mlflow"),
    ("default=2MiB,", "expected family=size"),
    ("default=100", f"default limit must be at least {MIN_LIMIT} bytes"),
    ("10", f"default limit must be at least {MIN_LIMIT} bytes"),
])
def test_parse_limits_refuses_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_limits(text)
    assert message in str(e.value)


def test_refusal_names_limit_size_and_route_for_both_client_kinds() -> None:
    r = refusal(MiB, 3 * MiB, "default", declared=True)
    assert (r["limitBytes"], r["bodyBytes"], r["family"], r["error_code"]) == (MiB, 3 * MiB, "default", "INVALID_PARAMETER_VALUE")
    assert r["detail"] == r["message"]
    assert f"{3 * MiB} bytes" in str(r["detail"]) and f"is {MiB} bytes" in str(r["detail"]) and "--max-body" in str(r["detail"])
    chunked = refusal(MiB, MiB + 10, "mlflow", declared=False)
    assert f"more than {MiB} bytes" in str(chunked["message"]) and "(mlflow)" in str(chunked["message"])


# ----- the middleware over plain ASGI callables -----
class Recorder:
    """An ASGI app that reads the whole body (as FastAPI does), then answers 200."""

    def __init__(self) -> None:
        self.received: Any = None
        self.body = b""
        self.raised: BaseException | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.received = receive
        try:
            while True:
                m = await receive()
                self.body += m.get("body", b"")
                if not m.get("more_body", False):
                    break
        except BodyTooLarge as e:  # FastAPI turns it into a 400, which the middleware drops
            self.raised = e
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"parse error"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def run(headers: list[tuple[bytes, bytes]], chunks: Any, path: str = "/api/v1/experiments/e1/trials/t/final",
        method: str = "POST", limits: BodyLimits | None = None) -> tuple[Recorder, list[dict[str, Any]], int, Any]:
    app = Recorder()
    sent: list[dict[str, Any]] = []
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        body, more = next(chunks)
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    mw = BodyLimit(app, limits or BodyLimits(default=4 * KiB, imports=64 * KiB), lambda a: a == ADMIN)
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    asyncio.run(mw(scope, receive, send))
    return app, sent, pulled, receive


def body_of(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_a_declared_length_within_the_limit_reaches_the_app_untouched() -> None:
    """No per-request cost: the app gets the server's own receive (nothing is counted)."""
    app, sent, _, receive = run([(b"content-length", b"4096")], iter([(b"x" * 4096, False)]))
    assert app.received is receive and app.body == b"x" * 4096 and sent[0]["status"] == 200


def test_a_declared_length_over_the_limit_is_refused_without_calling_the_app() -> None:
    chunks = iter([(b"x" * KiB, True)] * 4 + [(b"x", False)])
    app, sent, pulled, _ = run([(b"content-length", b"4097")], chunks)
    assert app.received is None  # never called
    status, body = body_of(sent)
    assert status == 413 and body["limitBytes"] == 4096 and body["bodyBytes"] == 4097 and body["family"] == "default"
    assert pulled == 5  # the rest was read and dropped, so a client writing it all still reads the 413
    assert (b"connection", b"close") not in sent[0]["headers"]


def test_a_client_waiting_for_100_continue_is_answered_before_it_sends_the_body() -> None:
    app, sent, pulled, _ = run([(b"content-length", b"5000"), (b"expect", b"100-continue")], iter([]))
    assert app.received is None and pulled == 0  # a receive would have made uvicorn invite the upload
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]


def test_a_declared_length_far_over_the_limit_is_answered_at_once_and_closed() -> None:
    app, sent, pulled, _ = run([(b"content-length", str(4 * KiB + DRAIN + 1).encode())], iter([]))
    assert app.received is None and pulled == 0 and sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]


def test_an_endless_chunked_body_is_refused_after_the_limit_and_a_bounded_drain() -> None:
    def endless() -> Any:
        while True:
            yield b"y" * KiB, True

    app, sent, pulled, _ = run([(b"transfer-encoding", b"chunked")], endless())
    status, body = body_of(sent)
    assert status == 413 and body["limitBytes"] == 4096 and body["bodyBytes"] == 5 * KiB
    assert isinstance(app.raised, BodyTooLarge)
    assert len(app.body) == 4 * KiB  # the app never saw more than the limit
    assert pulled <= 5 + DRAIN // KiB + 1  # stopped reading: no unbounded loop
    assert len(sent) == 2 and (b"connection", b"close") in sent[0]["headers"]  # the app's 400 was dropped


def test_a_chunked_body_within_the_limit_is_served() -> None:
    app, sent, _, _ = run([(b"transfer-encoding", b"chunked")], iter([(b"z" * 2 * KiB, True), (b"z" * 2 * KiB, False)]))
    assert app.body == b"z" * 4 * KiB and sent[0]["status"] == 200


@pytest.mark.parametrize("authorization, status", [(ADMIN.encode(), 200), (b"Bearer someone-else-0123456", 413), (None, 413)])
def test_an_admin_family_limit_applies_only_with_the_admin_token(authorization: bytes | None, status: int) -> None:
    headers = [(b"content-length", b"8192")] + ([(b"authorization", authorization)] if authorization else [])
    _, sent, _, _ = run(headers, iter([(b"i" * 8192, False)]), path="/api/v1/experiments/e1/imported-trials")
    assert sent[0]["status"] == status
    if status == 413:
        assert body_of(sent)[1]["limitBytes"] == 4 * KiB  # the default's, not the imports'


def test_a_request_without_a_body_is_not_wrapped() -> None:
    app, sent, _, receive = run([], iter([(b"", False)]), method="GET")
    assert app.received is receive and sent[0]["status"] == 200
