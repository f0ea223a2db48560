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
    --collector-image I    AUTOTUNE_COLLECTOR_IMAGE     the File/TensorFlowEvent metrics collectors'
                                                         sidecar image (holding `autotune`); default
                                                         autotune/operator:<version>
    --sidecar-grace-seconds S  AUTOTUNE_SIDECAR_GRACE_SECONDS  a trial whose container ended while
                                                         another container (a mesh proxy) keeps its
                                                         pod running ends this long after; default
                                                         30, 0: never
    --[no-]keep-stopped-pods  AUTOTUNE_KEEP_STOPPED_PODS  a stopped trial's batch-Job pods are stopped
                                                         and kept with their logs (default true);
                                                         false: its Job is deleted with them
    --log-level L          AUTOTUNE_LOG_LEVEL
    --leader-election      AUTOTUNE_LEADER_ELECTION     true: act only while holding a Lease, so
                                                         several replicas can run (default off;
                                                         the Helm chart turns it on)
    --leader-election-namespace NS  AUTOTUNE_LEADER_ELECTION_NAMESPACE  default: $POD_NAMESPACE,
                                                         else the service account's namespace
    --leader-election-lease NAME    AUTOTUNE_LEADER_ELECTION_LEASE      default autotune-operator
    --leader-election-identity ID   AUTOTUNE_LEADER_ELECTION_IDENTITY   default: $POD_NAME (or the
                                                         host name) + a random suffix
    --lease-seconds S      AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS          default 15
    --renew-deadline-seconds S  AUTOTUNE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS  default 2/3 of it
    --retry-seconds S      AUTOTUNE_LEADER_ELECTION_RETRY_SECONDS          default 1/5 of that

Kubernetes credentials: the in-cluster service account, else KUBECONFIG.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from autotune_operator.leader_election import ElectionSettings
    from autotune_operator.runtime import Settings

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
    "collector_image": "AUTOTUNE_COLLECTOR_IMAGE",
    "sidecar_grace_seconds": "AUTOTUNE_SIDECAR_GRACE_SECONDS",
    "keep_stopped_pods": "AUTOTUNE_KEEP_STOPPED_PODS",
    "log_level": "AUTOTUNE_LOG_LEVEL",
    "leader_election": "AUTOTUNE_LEADER_ELECTION",
    "leader_election_namespace": "AUTOTUNE_LEADER_ELECTION_NAMESPACE",
    "leader_election_lease": "AUTOTUNE_LEADER_ELECTION_LEASE",
    "leader_election_identity": "AUTOTUNE_LEADER_ELECTION_IDENTITY",
    "lease_seconds": "AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS",
    "renew_deadline_seconds": "AUTOTUNE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS",
    "retry_seconds": "AUTOTUNE_LEADER_ELECTION_RETRY_SECONDS",
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
    p.add_argument("--collector-image",
                   help="image of the File/TensorFlowEvent metrics collectors' sidecar in trial pods; it must hold "
                        "the autotune command (AUTOTUNE_COLLECTOR_IMAGE; default autotune/operator:<version>, the "
                        "Helm chart: the operator's image)")
    p.add_argument("--sidecar-grace-seconds", type=float,
                   help="a trial whose container ended while another container of its pod (an injected mesh proxy) "
                        "still runs ends this long after, with the container's exit code; 0: never "
                        "(AUTOTUNE_SIDECAR_GRACE_SECONDS, default 30)")
    p.add_argument("--keep-stopped-pods", action=argparse.BooleanOptionalAction, default=None,
                   help="a trial the experiment stops keeps its batch Job and pods, stopped (activeDeadlineSeconds), "
                        "with their logs; --no-keep-stopped-pods: its Job is deleted with its pods "
                        "(AUTOTUNE_KEEP_STOPPED_PODS, default true)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(AUTOTUNE_LOG_LEVEL)")
    le = p.add_argument_group("leader election (several replicas; one acts, the others wait as standbys)")
    le.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=None,
                    help="act only while holding a coordination.k8s.io Lease (AUTOTUNE_LEADER_ELECTION; default off, "
                         "on in the Helm chart)")
    le.add_argument("--leader-election-namespace",
                    help="the Lease's namespace (AUTOTUNE_LEADER_ELECTION_NAMESPACE; default $POD_NAMESPACE, else the "
                         "service account's namespace)")
    le.add_argument("--leader-election-lease", help="the Lease's name (AUTOTUNE_LEADER_ELECTION_LEASE; default autotune-operator)")
    le.add_argument("--leader-election-identity",
                    help="this replica's name in the Lease (AUTOTUNE_LEADER_ELECTION_IDENTITY; default $POD_NAME or the "
                         "host name, plus a random suffix)")
    le.add_argument("--lease-seconds", type=int,
                    help="how long a Lease lasts unrenewed: the failover time (AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS, default 15)")
    le.add_argument("--renew-deadline-seconds", type=float,
                    help="the leader exits if it could not renew for this long (AUTOTUNE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS, "
                         "default 2/3 of the lease)")
    le.add_argument("--retry-seconds", type=float,
                    help="renew / look at the Lease this often (AUTOTUNE_LEADER_ELECTION_RETRY_SECONDS, default 1/5 of the "
                         "renew deadline)")


def environment(args: argparse.Namespace, base: Mapping[str, str]) -> dict[str, str]:
    """The environment with every given flag written over its variable."""
    env = dict(base)
    for dest, var in FLAG_ENV.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[var] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def run(args: argparse.Namespace) -> int:
    import kopf  # only here: `autotune run` must not pay for importing kopf

    from autotune_operator import kopf_handlers  # noqa: F401  (registers the handlers)
    from autotune_operator.leader_election import ElectionSettings
    from autotune_operator.runtime import Settings

    env = environment(args, os.environ)
    level = env.get("AUTOTUNE_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    if level != "DEBUG":
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per workload event otherwise
    settings = Settings.from_env(env)  # fail fast on a missing token
    election = ElectionSettings.from_env(env)  # None: off
    namespaces = list(settings.namespaces)
    liveness = env.get("AUTOTUNE_LIVENESS_ENDPOINT") or None

    def operate(memo: kopf.Memo) -> None:
        # standalone: kopf's own peering would pause every replica of equal priority;
        # which replica acts is the Lease's business (leader_election.py).
        kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces, liveness_endpoint=liveness,
                 memo=memo)

    if election is None:
        operate(kopf.Memo(settings=settings))
        return 0
    return _run_elected(election, settings, liveness, operate)


def _run_elected(election: "ElectionSettings", settings: "Settings", liveness: str | None,
                 operate: Callable[[Any], None]) -> int:
    """Wait for the Lease, then operate while holding it. The metrics are served from the
    start (a standby shows autotune_operator_leader 0), by this process rather than kopf's
    startup handler, which runs only in the leader."""
    import kopf

    from autotune_operator.kopf_handlers import _api_client
    from autotune_operator.leader_election import Elector, KubernetesLeases, run_elected
    from autotune_operator.metrics import OperatorMetrics
    from autotune_operator.metrics_server import MetricsServer, parse_endpoint

    metrics = OperatorMetrics()
    server = (MetricsServer(parse_endpoint(settings.metrics_endpoint), metrics.exposition).start()
              if settings.metrics_endpoint else None)
    where = f"{election.namespace}/{election.name}"
    log = logging.getLogger("autotune.operator.leader")
    log.info("leader election on: Lease %s, identity %s, lease %ss, renew deadline %gs, retry %gs", where,
             election.identity, election.timing.lease_duration, election.timing.renew_deadline,
             election.timing.retry_period)
    elector = Elector(KubernetesLeases(_api_client(), election.namespace, election.name), election.identity,
                      election.timing, where=where)
    try:
        return run_elected(elector, lambda: operate(kopf.Memo(settings=settings, metrics=metrics)),
                           health_endpoint=liveness, on_leader=metrics.set_leader)
    finally:
        if server is not None:
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autotune_operator", description="Run the AutoTuneExperiment operator.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
