"""A tuner server killed in the middle of a response leaves the client a truncated body
(http.client.IncompleteRead, which is not an OSError). The controller's client and the
trial SDK must retry it like a refused connection; every call is idempotent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tuner_server.client import HttpClient

BODY = json.dumps({"ok": True, "n": 7}).encode()


class TruncatingServer:
    """Answers the first `truncate` requests with a Content-Length it never delivers (then
    closes the connection, as a SIGKILLed server does), and later ones in full."""

    def __init__(self, truncate: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.truncate = truncate
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests += 1
                header = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
                if self.requests <= self.truncate:
                    conn.sendall(header.encode() + BODY[:5])
                else:
                    conn.sendall(header.encode() + BODY)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def truncating() -> Iterator[TruncatingServer]:
    srv = TruncatingServer(truncate=2)
    yield srv
    srv.close()


def test_http_client_retries_a_truncated_response(truncating: TruncatingServer) -> None:
    client = HttpClient(f"http://127.0.0.1:{truncating.port}", "admin", retry_seconds=10)
    assert client._call("POST", "/api/v1/experiments/x/trials", {"sequence": 0}) == {"ok": True, "n": 7}
    assert truncating.requests == 3


def test_sdk_retries_a_truncated_response(truncating: TruncatingServer) -> None:
    code = (
        "import autotune, json\n"
        "print(json.dumps(autotune._request('POST', '/api/v1/x', {'v': 1})))\n"
    )
    env = {**os.environ, "AUTOTUNE_SERVER_URL": f"http://127.0.0.1:{truncating.port}", "AUTOTUNE_TOKEN": "t",
           "AUTOTUNE_REPORT_TIMEOUT": "10"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"ok": True, "n": 7}
    assert truncating.requests == 3
