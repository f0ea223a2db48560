"""`autotune ui RESULTS_DIR`: look at a local run's results in the web UI after it ended.

Serves ``RESULTS_DIR/autotune.db`` (what `autotune run` left in ``<output>/<name>/``) with
the trial logs beside it, on 127.0.0.1, until Ctrl-C. The link it prints carries a
single-use login code, never a token (see tuner_server/ui_auth.py).
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType

from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine
from tuner_server.store import Store, open_problem
from tuner_server.ui import UiOptions, local_phase, local_trial_log


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="a run's results folder (<output>/<metadata.name>, holding autotune.db)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    out = Path(args.results).resolve()
    db = out / "autotune.db"
    if not db.is_file():
        print(f"autotune ui: {db} does not exist; give the folder `autotune run` wrote (<output>/<name>)", file=sys.stderr)
        return 2
    # A finished run's history: this process reads it once (a run still going in another
    # process is better watched with `autotune run --ui`).
    try:
        engine = Engine(Store(db, readonly=True))  # shown, never changed: the folder may be read-only
    except sqlite3.DatabaseError as e:
        print(f"autotune ui: {open_problem(db, e)}", file=sys.stderr)
        return 2
    ids = [h.stored.id for h in engine.list()]
    page = f"/ui/experiments/{ids[0]}" if len(ids) == 1 else "/ui/"
    ui = UiOptions(trial_log=local_trial_log(out), phase=local_phase(out))
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with EmbeddedServer(engine, secrets.token_urlsafe(32), port=args.port, ui=ui) as server:
            print(f"autotune: web UI (single-use login link, this machine only): {server.login_link(page)}", file=sys.stderr)
            print("autotune: press Ctrl-C to stop", file=sys.stderr, flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
