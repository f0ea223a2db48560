"""`python -m autotune_operator`: run the AutoTuneExperiment operator (kopf).

Settings come from the environment (see runtime.Settings.from_env): AUTOTUNE_SERVER_URL,
AUTOTUNE_ADMIN_TOKEN or AUTOTUNE_ADMIN_TOKEN_FILE, AUTOTUNE_TRIAL_SERVER_URL,
AUTOTUNE_NAMESPACES (comma separated; empty = cluster-wide), AUTOTUNE_WORKLOAD_KIND
(job | kubeflow | t9k | auto), AUTOTUNE_RESYNC_SECONDS. Kubernetes credentials: in-cluster
service account, else KUBECONFIG.
"""

from __future__ import annotations

import logging
import os

import kopf

from autotune_operator import kopf_handlers  # noqa: F401  (registers the handlers)
from autotune_operator.runtime import Settings


def main() -> None:
    logging.basicConfig(level=os.environ.get("AUTOTUNE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("AUTOTUNE_LOG_LEVEL", "INFO") != "DEBUG":
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per workload event otherwise
    settings = Settings.from_env()  # fail fast on a missing token
    namespaces = list(settings.namespaces)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=os.environ.get("AUTOTUNE_LIVENESS_ENDPOINT") or None,
    )


if __name__ == "__main__":
    main()
