"""A stand-in tuner server for the SDK's unit tests (test_sdk_server_moved.py,
test_sdk_signal_report.py): a real HTTP server on a free local port, on a thread, whose
handler each test writes; the SDK's requests are real HTTP."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


def read_json(handler: BaseHTTPRequestHandler) -> Any:
    """The request's JSON body."""
    return json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))


def answer_json(handler: BaseHTTPRequestHandler, doc: Any) -> None:
    """Answer 200 with ``doc`` as JSON (what the tuner server answers a report)."""
    data = json.dumps(doc).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` (one thread per request) while in the block; yields the server's URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
