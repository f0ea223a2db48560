"""`autotune run` from a shell that has a proxy set (http_proxy, as behind a corporate
proxy) without a no_proxy for 127.0.0.1: the trials still reach the run's own tuner server,
which only listens on this machine's loopback, where no proxy could ever reach it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.conftest import TRIALS, free_port, manifest, read_status, run_autotune, write_manifest
from tests.integration.test_local_mode import rows


def test_trials_of_a_local_run_bypass_the_proxy_for_the_loopback_server(tmp_path: Path) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"  # a proxy that is not there: anything sent to it fails
    space = {"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-2]}, "eta0": {"_type": "loguniform", "_value": [1e-3, 1e-1]}}
    doc = manifest(name="proxied", space=space, max_trials=3, concurrency=1,
                   command=[sys.executable, str(TRIALS / "sgd_epochs.py"), "--epochs", "3"])
    path = write_manifest(tmp_path / "e.yaml", doc)
    env = {"http_proxy": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "HTTPS_PROXY": proxy,
           "no_proxy": "", "NO_PROXY": "", "AUTOTUNE_REPORT_TIMEOUT": "5"}
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--quiet"], env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_status(tmp_path / "out", "proxied")
    # Before the fix every trial's first report went to the proxy: all 3 FAILED with
    # "tuner server at http://127.0.0.1:... unreachable".
    assert s["trials"]["succeeded"] == 3, [t["message"] for t in rows(tmp_path / "out", "proxied")]
    assert all(len(json.loads(t["intermediate"])) == 3 for t in rows(tmp_path / "out", "proxied"))


# A training script that installs its own process-wide opener, one that goes direct (as a
# library adding a handler may do), then reports to a server on another host.
DIRECT_OPENER_TRIAL = textwrap.dedent("""
    import urllib.request
    import autotune

    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))
    try:
        autotune.report_final_result(0.5)
    except autotune.ReportError as e:
        print("report error:", e, flush=True)
""")


def test_reports_to_another_host_follow_the_proxy_environment_not_the_installed_opener() -> None:
    proxy = f"http://127.0.0.1:{free_port()}"  # a proxy that is not there: anything sent to it fails
    env = {**os.environ, "http_proxy": proxy, "HTTP_PROXY": proxy, "no_proxy": "", "NO_PROXY": "",
           "AUTOTUNE_SERVER_URL": "http://tuner.invalid:8080", "AUTOTUNE_TOKEN": "t", "AUTOTUNE_EXPERIMENT_ID": "e",
           "AUTOTUNE_TRIAL_ID": "e-1", "AUTOTUNE_REPORT_TIMEOUT": "0"}
    run = subprocess.run([sys.executable, "-c", DIRECT_OPENER_TRIAL], env=env, capture_output=True, text=True, timeout=60)
    assert "report error:" in run.stdout, (run.stdout, run.stderr[-2000:])
    # Through the (dead) proxy: connection refused. Before the fix the SDK took urlopen's
    # installed opener and went direct: the name does not resolve.
    assert "refused" in run.stdout.lower(), run.stdout
