"""`autotune operator` (also `python -m autotune_operator`): run the AutoTuneExperiment operator (kopf).

Every setting is an environment variable (what the Helm chart sets) and may be given as a
flag instead, which wins:

    --server-url           AUTOTUNE_SERVER_URL          tuner server the operator talks to
    --admin-token-file     AUTOTUNE_ADMIN_TOKEN_FILE    (or AUTOTUNE_ADMIN_TOKEN, env only:
                                                         a token never goes on a command line)
    --trial-server-url     AUTOTUNE_TRIAL_SERVER_URL    the URL trials report to
    --namespaces a,b       AUTOTUNE_NAMESPACES          empty: cluster-wide
    --workload-kind K      AUTOTUNE_WORKLOAD_KIND       job | kubeflow | t9k | auto
    --resync-seconds S     AUTOTUNE_RESYNC_SECONDS
    --orphan-sweep-seconds S  AUTOTUNE_ORPHAN_SWEEP_SECONDS  remove tuner-server state of
                                                         deleted experiments this often (and at
                                                         start); default 600, 0: never
    --liveness-endpoint U  AUTOTUNE_LIVENESS_ENDPOINT   e.g. http://0.0.0.0:8080/healthz
    --metrics-endpoint U   AUTOTUNE_METRICS_ENDPOINT    Prometheus metrics, e.g. http://0.0.0.0:9090/metrics
                                                         (own port, no auth); unset: off
    --log-level L          AUTOTUNE_LOG_LEVEL

Kubernetes credentials: the in-cluster service account, else KUBECONFIG.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Mapping, Sequence

# name of the flag's dest -> environment variable it stands for
FLAG_ENV = {
    "server_url": "AUTOTUNE_SERVER_URL",
    "admin_token_file": "AUTOTUNE_ADMIN_TOKEN_FILE",
    "trial_server_url": "AUTOTUNE_TRIAL_SERVER_URL",
    "namespaces": "AUTOTUNE_NAMESPACES",
    "workload_kind": "AUTOTUNE_WORKLOAD_KIND",
    "resync_seconds": "AUTOTUNE_RESYNC_SECONDS",
    "orphan_sweep_seconds": "AUTOTUNE_ORPHAN_SWEEP_SECONDS",
    "liveness_endpoint": "AUTOTUNE_LIVENESS_ENDPOINT",
    "metrics_endpoint": "AUTOTUNE_METRICS_ENDPOINT",
    "log_level": "AUTOTUNE_LOG_LEVEL",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The operator's flags (shared by `autotune operator` and `python -m autotune_operator`)."""
    p.add_argument("--server-url", help="tuner server URL (AUTOTUNE_SERVER_URL)")
    p.add_argument("--admin-token-file", help="file holding the tuner server's admin token (AUTOTUNE_ADMIN_TOKEN_FILE)")
    p.add_argument("--trial-server-url", help="tuner server URL as trials reach it (AUTOTUNE_TRIAL_SERVER_URL)")
    p.add_argument("--namespaces", help="comma-separated namespaces to watch; empty: cluster-wide (AUTOTUNE_NAMESPACES)")
    p.add_argument("--workload-kind", choices=["job", "kubeflow", "t9k", "auto"], help="trial workload kind (AUTOTUNE_WORKLOAD_KIND)")
    p.add_argument("--resync-seconds", type=float, help="reconcile at least this often (AUTOTUNE_RESYNC_SECONDS)")
    p.add_argument("--orphan-sweep-seconds", type=float,
                   help="delete tuner-server state of deleted experiments at start and this often; 0: never "
                        "(AUTOTUNE_ORPHAN_SWEEP_SECONDS, default 600)")
    p.add_argument("--liveness-endpoint", help="serve kopf's liveness probe here (AUTOTUNE_LIVENESS_ENDPOINT)")
    p.add_argument("--metrics-endpoint",
                   help="serve Prometheus metrics here, e.g. http://0.0.0.0:9090/metrics; unset: off (AUTOTUNE_METRICS_ENDPOINT)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(AUTOTUNE_LOG_LEVEL)")


def environment(args: argparse.Namespace, base: Mapping[str, str]) -> dict[str, str]:
    """The environment with every given flag written over its variable."""
    env = dict(base)
    for dest, var in FLAG_ENV.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[var] = str(value)
    return env


def run(args: argparse.Namespace) -> int:
    import kopf  # only here: `autotune run` must not pay for importing kopf

    from autotune_operator import kopf_handlers  # noqa: F401  (registers the handlers)
    from autotune_operator.runtime import Settings

    env = environment(args, os.environ)
    level = env.get("AUTOTUNE_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    if level != "DEBUG":
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per workload event otherwise
    settings = Settings.from_env(env)  # fail fast on a missing token
    namespaces = list(settings.namespaces)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=env.get("AUTOTUNE_LIVENESS_ENDPOINT") or None,
        memo=kopf.Memo(settings=settings),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autotune_operator", description="Run the AutoTuneExperiment operator.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
