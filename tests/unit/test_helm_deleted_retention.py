"""The chart's tunerServer.deletedRetention reaches the tuner server as $AUTOTUNE_DELETED_RETENTION,
0 included (a `default` in the template would turn it into the chart's 7d), and every rendered
value is one the server accepts. Rendered with the harness's helm (skipped until it is built)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from kube_harness.build import binary
from tuner_server.retention import parse_retention

CHART = Path(__file__).resolve().parents[2] / "helm" / "autotune"


def rendered(*values: str) -> str:
    try:
        helm = binary("helm")
    except FileNotFoundError:
        pytest.skip("helm is not built (python -m kube_harness build)")
    out = subprocess.run([helm, "template", "x", str(CHART), "--show-only", "templates/tuner-server.yaml", *values],
                         capture_output=True, text=True, check=True, timeout=60).stdout
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
def test_deleted_retention_value(values: tuple[str, ...], want: str, seconds: float | None) -> None:
    got = rendered(*values)
    assert got == want and parse_retention(got) == seconds
