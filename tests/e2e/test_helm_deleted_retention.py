"""The chart's tunerServer.deletedRetention reaches the tuner server as $AUTOTUNE_DELETED_RETENTION,
0 included (a `default` in the template would turn it into the chart's 7d), and every rendered
value is one the server accepts. Rendered with the e2e tier's helm (`helm template`: no cluster
object is made, but the tier is where helm is built)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner_server.retention import parse_retention

CHART = Path(__file__).resolve().parents[2] / "helm" / "autotune"


def rendered(kube_cluster: Any, *values: str) -> str:
    out = kube_cluster.helm("template", "x", str(CHART), "--show-only", "templates/tuner-server.yaml", *values,
                            timeout=60).stdout
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    return str(env["AUTOTUNE_DELETED_RETENTION"])


@pytest.mark.parametrize("values,want,seconds", [
    ((), "7d", 7 * 86400.0),
    (("--set", "tunerServer.deletedRetention=0"), "0", 0.0),
    (("--set", "tunerServer.deletedRetention=never"), "never", None),
    (("--set", "tunerServer.deletedRetention=36h"), "36h", 36 * 3600.0),
    (("--set", "tunerServer.deletedRetention=null"), "7d", 7 * 86400.0),
])
def test_deleted_retention_value(kube_cluster: Any, values: tuple[str, ...], want: str, seconds: float | None) -> None:
    got = rendered(kube_cluster, *values)
    assert got == want and parse_retention(got) == seconds
