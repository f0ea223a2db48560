"""The e2e tier: tests against a real kube-apiserver + kube-controller-manager (kube_harness).

Every test under tests/e2e gets the `e2e` marker. The tier runs whenever `go` is on PATH:
the first use builds the binaries into the cache (progress printed, ~5 min cold on 2 cores)
and later runs reuse them. Without Go every e2e test is skipped with one plain reason; a
build failure with Go present is an error, never a skip.

Fixture `kube_cluster` (session): a started kube_harness.ControlPlane, see its docstrings.
    kube_cluster.kubeconfig        admin kubeconfig path (client cert, system:masters)
    kube_cluster.server            https://127.0.0.1:<port>
    kube_cluster.api_client()      kubernetes.client.ApiClient as admin
    kube_cluster.token_client(t)   ApiClient authenticating with bearer token t
    kube_cluster.kubectl(*args)    CompletedProcess (check=True by default)
    kube_cluster.helm(*args)       same, for helm
    kube_cluster.env()             os.environ + KUBECONFIG + cached kubectl/helm on PATH
    kube_cluster.new_namespace(p)  fresh namespace whose default ServiceAccount exists
    kube_cluster.pod_log(ns, pod, container=None)   the container's stdout+stderr
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from kube_harness import build
from kube_harness.controlplane import ControlPlane

_HERE = Path(__file__).resolve().parent


_GO_MISSING = build.find_go() is None


def pytest_collection_modifyitems(config, items):
    skipped = 0
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            # Only tests that need the cluster; a marker, so -ra folds it per file.
            if _GO_MISSING and "kube_cluster" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.skip(reason=build.NO_GO_REASON))
                skipped += 1
    config._autotune_e2e_skipped = skipped


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = getattr(config, "_autotune_e2e_skipped", 0)
    if n:
        terminalreporter.write_sep("=", "e2e tier skipped", yellow=True)
        terminalreporter.write_line(f"{n} e2e tests skipped: {build.NO_GO_REASON}")


def _say(request, msg: str) -> None:
    """Print past pytest's capture so build progress and timings are visible."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        print(msg, file=sys.stderr, flush=True)
        return
    with capman.global_and_fixture_disabled():
        print(msg, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def kube_cluster(request, tmp_path_factory):
    if build.find_go() is None:
        pytest.skip(build.NO_GO_REASON)
    capman = request.config.pluginmanager.getplugin("capturemanager")
    t0 = time.monotonic()
    failure = None
    try:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                build.ensure_built(out=sys.stderr)
        else:
            build.ensure_built(out=sys.stderr)
    except build.BuildFailed as e:
        failure = str(e)
    if failure:  # Go is there but the build broke: that is a failure, never a skip
        pytest.fail(f"building the e2e control plane failed: {failure}", pytrace=False)
    built = time.monotonic() - t0

    state_dir = Path(os.environ.get("AUTOTUNE_E2E_CLUSTER_DIR")
                     or tmp_path_factory.mktemp("kube-cluster"))
    cp = ControlPlane(state_dir)
    try:
        cp.start()
    except BaseException:
        cp.stop()
        raise
    _say(request, f"\n[kube_cluster] binaries ready in {built:.1f}s, control plane up in "
                  f"{cp.started_seconds:.1f}s at {cp.server} (state: {state_dir})")
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def core_v1(kube_cluster):
    from kubernetes import client

    return client.CoreV1Api(kube_cluster.api_client())


@pytest.fixture
def namespace(kube_cluster, core_v1):
    ns = kube_cluster.new_namespace("e2e")
    yield ns
    core_v1.delete_namespace(ns)
