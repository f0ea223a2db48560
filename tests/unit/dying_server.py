"""A real tuner server that dies at a chosen SQLite statement, for the crash-window tests.

The server (EmbeddedServer over a database file) runs in a child process whose SQLite
connection has a statement trace: the test's ``hook`` source defines ``hook(sql)``, which may
call ``os._exit(137)``. The trace runs before SQLite executes each statement, so exiting at a
COMMIT loses that transaction, as a SIGKILL would. ``args`` (strings) reach the hook as
``args``; ``ADMIN`` is the server's admin token."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tuner_server.engine import Assignment, Engine, ExperimentConfig
from tuner_server.store import Store

ADMIN = "admin-token-0123456789"
SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})

_SERVER = """
import os, sys
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine
from tuner_server.store import Store

db, admin, args = sys.argv[1], sys.argv[2], sys.argv[3:]
store = Store(db)
engine = Engine(store)
{hook}
store._db.set_trace_callback(hook)
with EmbeddedServer(engine, admin) as srv:
    print(srv.url, flush=True)
    sys.stdin.read()
"""


def prepare(db: Path) -> tuple[str, str]:
    """Experiment ``exp`` (primaryMetric accuracy) with one running trial; (its token, the trial's id)."""
    store = Store(db)
    engine = Engine(store)
    cfg = ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}, "primaryMetric": "accuracy"})
    h = engine.register("exp", "exp", cfg)
    a = engine.suggest("exp")
    assert isinstance(a, Assignment)
    engine.started("exp", a.trial_id)
    store.close()
    return h.stored.token, a.trial_id


@contextmanager
def dying_server(db: Path, hook: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The server process and its URL; killed on exit if it did not die by itself. Closing its
    stdin lets a server that never reached its exit point end."""
    script = _SERVER.format(hook=textwrap.dedent(hook).strip())
    proc = subprocess.Popen([sys.executable, "-c", script, str(db), ADMIN, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://"), f"the tuner server did not start (exit {proc.poll()})"
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
