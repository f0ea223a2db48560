"""The SDK follows $AUTOTUNE_SERVER_URL_FILE when its server stops answering: a trial
orphaned by a killed `autotune run` reports to the next run's server, on another port."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import pytest

import autotune
from tests.unit.stub_server import answer_json, read_json, serving


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append((self.path, read_json(self)))
        answer_json(self, {"stop": False})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def live() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: connections are refused


def test_a_report_to_a_dead_server_goes_to_the_url_file(tmp_path: Path, live: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url_file = tmp_path / "server.url"
    url_file.write_text(live)
    old = dead_url()
    for k, v in {"AUTOTUNE_SERVER_URL": old, "AUTOTUNE_SERVER_URL_FILE": str(url_file), "AUTOTUNE_TOKEN": "t",
                 "AUTOTUNE_EXPERIMENT_ID": "e", "AUTOTUNE_TRIAL_ID": "e-0", "AUTOTUNE_REPORT_TIMEOUT": "5"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setitem(autotune._state, "step", 0)
    _Handler.seen.clear()
    assert autotune.report_intermediate_result(0.5) is False
    assert _Handler.seen == [("/api/v1/experiments/e/trials/e-0/intermediate", {"metric": 0.5, "step": 0})]
    assert autotune.os.environ["AUTOTUNE_SERVER_URL"] == live  # later reports go there directly


def test_without_a_url_file_a_dead_server_is_an_error_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AUTOTUNE_SERVER_URL": dead_url(), "AUTOTUNE_TOKEN": "t", "AUTOTUNE_EXPERIMENT_ID": "e",
                 "AUTOTUNE_TRIAL_ID": "e-0", "AUTOTUNE_REPORT_TIMEOUT": "0.3"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AUTOTUNE_SERVER_URL_FILE", raising=False)
    with pytest.raises(autotune.ReportError, match="unreachable"):
        autotune.report_final_result(0.5)
