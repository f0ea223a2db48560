"""The operator's Prometheus endpoint: ``--metrics-endpoint http://0.0.0.0:9090/metrics``.

A small threaded HTTP server of the standard library, on its own port and threads:
a scrape never waits for kopf's event loop, and a busy loop never hides the metrics.
No authentication (as kopf's liveness endpoint and Katib's controller metrics): it shows
only counts, and the port is reachable only where the Service or a NetworkPolicy lets it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit



# Prometheus' classic text format (as tuner_server/metrics.py; not imported from there, which
# would load FastAPI into the operator for one string).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str


def parse_endpoint(url: str) -> Endpoint:
    """``http://HOST:PORT/PATH`` -> Endpoint; ValueError naming what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme != "http":
        raise ValueError(f"the metrics endpoint must be an http:// URL like http://0.0.0.0:9090/metrics, not {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"the metrics endpoint needs a port (1-65535), e.g. http://0.0.0.0:9090/metrics, not {url!r}")
    return Endpoint(parts.hostname or "0.0.0.0", port, parts.path or "/metrics")


class MetricsServer:
    """Serves ``render()`` at the endpoint's path (404 elsewhere) until :meth:`stop`."""

    def __init__(self, endpoint: Endpoint, render: Callable[[], bytes]) -> None:
        path = endpoint.path

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if urlsplit(self.path).path != path:
                    self._answer(404, b"not found\n", "text/plain; charset=utf-8")
                    return
                self._answer(200, render(), CONTENT_TYPE)

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # one line per scrape is noise in the operator's log

        self._httpd = ThreadingHTTPServer((endpoint.host, endpoint.port), Handler)  # binds now: a taken port fails here
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics server", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
