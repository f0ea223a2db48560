"""Run the tuner server's HTTP API inside the current process (local mode).

Trials report over HTTP exactly as they do on a cluster; only the server lives in a
thread of ``autotune run`` instead of a Deployment.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlencode

import uvicorn

from tuner_server.api import create_app
from tuner_server.engine import Engine
from tuner_server.failed_logins import FailedLogins
from tuner_server.net import is_loopback
from tuner_server.ui import UiOptions


class EmbeddedServer:
    def __init__(
        self, engine: Engine, admin_token: str, host: str = "127.0.0.1", port: int = 0, ui: UiOptions | None = None
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        # On loopback the failed-login limit is off. Every client there shares 127.0.0.1: the
        # local controller, the trials and the browser. A browser reopening used login links
        # would otherwise lock the controller and the trials' reports out for the window. The
        # limit guards guessable tokens, and local mode's token, codes and sessions are all
        # 192- to 256-bit random.
        failed = FailedLogins(max_failures=0) if is_loopback(host) else None
        self.app = create_app(engine, admin_token, ui, failed)
        # proxy_headers=False: never take the client address from X-Forwarded-For (failed_logins.py).
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", proxy_headers=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the CLI owns signals
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> "EmbeddedServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the embedded tuner server did not start")
            time.sleep(0.01)
        return self

    def login_link(self, page: str = "/ui/") -> str:
        """A single-use link that logs a browser into the web UI (the code is not a token)."""
        return f"{self.url}/ui/login?{urlencode({'code': self.app.state.ui.codes.issue(), 'next': page})}"

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
