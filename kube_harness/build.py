"""Builds the control-plane binaries from the Go module proxy into a cache outside the repo.

kube-apiserver, kube-controller-manager and kubectl come from the wrapper module in
kube_harness/go/kube (pinned to one Kubernetes release), etcd from kube_harness/go/etcd,
helm from `go install`. The cache is keyed by the Kubernetes version and carries a stamp
(a hash of the wrapper modules, the helm version and the Go version), so a second run, or a
fresh clone on the same machine, builds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

KUBE_VERSION = "v1.34.4"
HELM_VERSION = "v3.19.0"
GO_DIR = Path(__file__).resolve().parent / "go"
# Version information the Kubernetes release build would stamp in (otherwise /version and
# `kubectl version` say v0.0.0-master).
_V = [f"-X {pkg}.{k}={v}" for pkg in ("k8s.io/component-base/version",
                                      "k8s.io/client-go/pkg/version")
      for k, v in (("gitVersion", KUBE_VERSION), ("gitMajor", KUBE_VERSION[1:].split(".")[0]),
                   ("gitMinor", KUBE_VERSION.split(".")[1]), ("gitCommit", "unknown"),
                   ("gitTreeState", "clean"))]
KUBE_LDFLAGS = " ".join(["-s", "-w", *_V])
HELM_LDFLAGS = f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
NO_GO_REASON = "Go toolchain not found: the e2e tier needs it to build kube-apiserver"


class GoNotFound(RuntimeError):
    pass


class BuildFailed(RuntimeError):
    pass


def cache_dir() -> Path:
    env = os.environ.get("AUTOTUNE_KUBE_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "autotune" / f"kube-{KUBE_VERSION}"


def bin_dir() -> Path:
    return cache_dir() / "bin"


def find_go() -> str | None:
    return shutil.which("go")


def _fingerprint(go: str) -> str:
    h = hashlib.sha256()
    for p in sorted(GO_DIR.rglob("*")):
        if p.is_file() and p.suffix in (".go", ".mod", ".sum"):
            h.update(str(p.relative_to(GO_DIR)).encode())
            h.update(p.read_bytes())
    h.update(HELM_VERSION.encode())
    h.update(KUBE_LDFLAGS.encode() + HELM_LDFLAGS.encode())
    h.update(subprocess.run([go, "version"], capture_output=True, text=True).stdout.encode())
    return h.hexdigest()


def is_built() -> bool:
    go = find_go()
    stamp = bin_dir() / ".stamp"
    if not all((bin_dir() / b).is_file() for b in BINARIES) or not stamp.is_file():
        return False
    if go is None:  # binaries are there; without Go we cannot check the stamp, trust it
        return True
    return stamp.read_text().strip() == _fingerprint(go)


def _log(msg: str, out) -> None:
    print(f"[kube_harness.build] {msg}", file=out, flush=True)


def _run_go(args: list[str], cwd: Path, env: dict, what: str, out) -> None:
    """Run a go command with -v, printing a heartbeat with the package count every 30 s."""
    _log(f"{what}: go {' '.join(args)}", out)
    start = time.monotonic()
    proc = subprocess.Popen(
        ["go", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    done = threading.Event()

    def heartbeat():
        while not done.wait(30):
            _log(f"{what}: {len(lines)} packages so far, "
                 f"{time.monotonic() - start:.0f}s elapsed", out)

    t = threading.Thread(target=heartbeat, daemon=True)
    t.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
    rc = proc.wait()
    done.set()
    if rc != 0:
        tail = "\n".join(l for l in lines[-60:])
        raise BuildFailed(f"{what} failed (go exit {rc}):\n{tail}")
    _log(f"{what}: done in {time.monotonic() - start:.0f}s", out)


def ensure_built(out=None) -> Path:
    """Build every binary unless the cache stamp says they are current. Returns the bin dir.

    Raises GoNotFound when `go` is not on PATH and the cache is empty, BuildFailed when a
    go command fails. Holds a lock on the cache so parallel callers build once.
    """
    out = out or sys.stderr
    if is_built():
        return bin_dir()
    go = find_go()
    if go is None:
        raise GoNotFound(NO_GO_REASON)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built():
            return bin_dir()
        bd = bin_dir()
        bd.mkdir(parents=True, exist_ok=True)
        (bd / ".stamp").unlink(missing_ok=True)
        env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-mod=readonly")
        started = time.monotonic()
        _log(f"building Kubernetes {KUBE_VERSION} binaries into {bd} "
             "(a cold build takes about 5-10 minutes on 2 cores; later runs reuse it)", out)
        _run_go(["build", "-v", "-trimpath", "-o", str(bd) + "/", "./cmd/etcd"],
                GO_DIR / "etcd", env, "etcd", out)
        _run_go(["build", "-v", "-trimpath", f"-ldflags={KUBE_LDFLAGS}", "-o", str(bd) + "/",
                 "./cmd/kube-apiserver", "./cmd/kube-controller-manager", "./cmd/kubectl"],
                GO_DIR / "kube", env, "kube-apiserver, kube-controller-manager, kubectl", out)
        helm_env = dict(env, GOBIN=str(bd), GOFLAGS="")
        _run_go(["install", "-v", "-trimpath", f"-ldflags={HELM_LDFLAGS}", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
                cache_dir(), helm_env, "helm", out)
        (bd / ".stamp").write_text(_fingerprint(go) + "\n")
        _log(f"all binaries built in {time.monotonic() - started:.0f}s", out)
    return bin_dir()


def binary(name: str) -> str:
    """Path of a cached binary (kubectl falls back to the one on PATH if not built)."""
    p = bin_dir() / name
    if p.is_file():
        return str(p)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"{name} is not built yet: run `python -m kube_harness build`")
