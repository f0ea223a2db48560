"""`autotune-tuner-server` / `python -m tuner_server`: serve the tuner API with uvicorn."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys

# One BLAS thread per call, set before numpy loads: the server answers many experiments
# at once from a thread pool, and GP/Metis matrices (<= a few hundred rows) gain nothing
# from BLAS threads while oversubscribed cores made their suggestions ~15x slower under load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import uvicorn  # noqa: E402

from tuner_server.api import create_app  # noqa: E402
from tuner_server.body_limit import BodyLimits, parse_limits  # noqa: E402
from tuner_server.engine import Engine  # noqa: E402
from tuner_server.failed_logins import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_SECONDS, FailedLogins  # noqa: E402
from tuner_server.purge import PurgeSettings, Sweeper  # noqa: E402
from tuner_server.retention import DEFAULT_RETENTION, parse_retention  # noqa: E402
from tuner_server.store import Store, open_problem  # noqa: E402
from tuner_server.ui import UiOptions  # noqa: E402


def _admin_token(args: argparse.Namespace) -> str:
    if args.admin_token_file:
        with open(args.admin_token_file, encoding="utf-8") as f:
            return f.read().strip()
    # Stripped like the file's: a Secret key made with `kubectl create secret --from-file`
    # ends in the file's newline, which no Authorization header can carry.
    token = os.environ.get("AUTOTUNE_ADMIN_TOKEN", "").strip()
    if not token:
        sys.exit("tuner server: set AUTOTUNE_ADMIN_TOKEN or pass --admin-token-file")
    return token


def _viewer_token(args: argparse.Namespace) -> str | None:
    """The web UI's read-only token (optional: the admin token always logs in too)."""
    if args.viewer_token_file:
        with open(args.viewer_token_file, encoding="utf-8") as f:
            return f.read().strip() or None
    return os.environ.get("AUTOTUNE_VIEWER_TOKEN", "").strip() or None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="autotune-tuner-server", description=__doc__)
    p.add_argument("--db", default=os.environ.get("AUTOTUNE_DB", "autotune.db"), help="SQLite file (default autotune.db)")
    p.add_argument("--host", default=os.environ.get("AUTOTUNE_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("AUTOTUNE_PORT", "8080")))
    p.add_argument("--admin-token-file", help="file holding the admin token (else $AUTOTUNE_ADMIN_TOKEN)")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--viewer-token-file", help="file holding the web UI's read-only token (else $AUTOTUNE_VIEWER_TOKEN)")
    # String defaults: argparse applies `type` to them, so a bad env value is a clear usage error.
    p.add_argument("--login-max-failures", type=int,
                   default=os.environ.get("AUTOTUNE_LOGIN_MAX_FAILURES", str(DEFAULT_MAX_FAILURES)),
                   help="failed log-ins (UI token, login code, unknown API token) per client address and window "
                        f"before answering 429; 0 turns this off (default {DEFAULT_MAX_FAILURES}, "
                        "$AUTOTUNE_LOGIN_MAX_FAILURES)")
    p.add_argument("--login-failure-window", type=float,
                   default=os.environ.get("AUTOTUNE_LOGIN_FAILURE_WINDOW", str(DEFAULT_WINDOW_SECONDS)),
                   help=f"seconds a failed log-in counts (default {DEFAULT_WINDOW_SECONDS:g}, $AUTOTUNE_LOGIN_FAILURE_WINDOW)")
    p.add_argument("--metrics-auth", choices=["token", "none"], default=os.environ.get("AUTOTUNE_METRICS_AUTH", "token"),
                   help="GET /metrics needs the viewer or admin token as a bearer token (token, the default), "
                        "or is open to anyone reaching the port (none) ($AUTOTUNE_METRICS_AUTH)")
    p.add_argument("--max-body", default=os.environ.get("AUTOTUNE_MAX_BODY", ""),
                   help="request body limits: one size for ordinary routes (default 1MiB), or family=size pairs "
                        "from default, registration (8MiB), imports (warm start, 256MiB), mlflow (2MiB), e.g. "
                        "'default=2MiB,imports=512MiB'; larger bodies get 413 ($AUTOTUNE_MAX_BODY)")
    p.add_argument("--deleted-retention", default=os.environ.get("AUTOTUNE_DELETED_RETENTION", DEFAULT_RETENTION),
                   help="how long the event log keeps a deleted experiment's events (its audit trail: MLflow runs, "
                        "metrics, results) before they are purged: 7d, 12h, 90m, 3600 (seconds), 0 (at deletion) "
                        f"or never (default {DEFAULT_RETENTION}, $AUTOTUNE_DELETED_RETENTION)")
    args = p.parse_args(argv)
    try:
        limits: BodyLimits = parse_limits(args.max_body)
    except ValueError as e:
        p.error(f"--max-body / AUTOTUNE_MAX_BODY: {e}")
    try:
        retention = parse_retention(args.deleted_retention)
    except ValueError as e:
        p.error(f"--deleted-retention / AUTOTUNE_DELETED_RETENTION: {e}")
    if args.metrics_auth not in ("token", "none"):  # argparse does not check a default against choices
        p.error(f"AUTOTUNE_METRICS_AUTH must be token or none, not {args.metrics_auth!r}")
    try:
        failed = FailedLogins(max_failures=args.login_max_failures, window=args.login_failure_window)
    except ValueError as e:
        p.error(str(e))
    try:
        engine = Engine(Store(args.db))
    except sqlite3.DatabaseError as e:  # left as it is: it may be a history worth saving
        p.exit(2, f"tuner server: {open_problem(args.db, e)}\n")
    try:
        app = create_app(engine, _admin_token(args), UiOptions(viewer_token=_viewer_token(args)), failed,
                         metrics_auth=args.metrics_auth == "token", body_limits=limits)
    except ValueError as e:  # a token shorter than 16 characters
        p.exit(2, f"tuner server: {e}\n")
    # proxy_headers=False: uvicorn would otherwise take the client address from
    # X-Forwarded-For whenever the peer is 127.0.0.1 (kubectl port-forward, a sidecar), and
    # a guesser could then name a new address per attempt (see failed_logins.py).
    sweeper = Sweeper(engine.store, PurgeSettings(retention), on_purged=app.state.metrics.events_purged.inc)
    engine.delete_hooks.append(sweeper.wake)
    sweeper.start()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, proxy_headers=False)
    finally:
        sweeper.stop()


if __name__ == "__main__":
    main()
