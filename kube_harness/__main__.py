"""python -m kube_harness build|up|down|status|env|logs — the test control plane by hand.

  build   build etcd, kube-apiserver, kube-controller-manager, kubectl and helm into the cache
  up      build if needed, start the control plane and fake nodes in the background
  down    stop everything `up` started
  status  which processes are alive, server URL, kubeconfig
  env     shell lines to use the cluster: eval "$(python -m kube_harness env)"
  logs    output of a pod's container: logs NAMESPACE/POD [CONTAINER]
The state (pids, ports, certificates, kubeconfig, logs) is in $AUTOTUNE_CLUSTER_DIR,
by default .cache/cluster in the repo.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import build
from .controlplane import ControlPlane, default_state_dir, up


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kube_harness", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", type=Path, default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    p_up = sub.add_parser("up")
    p_up.add_argument("--nodes", help="JSON list of fake nodes (see kube_harness.node_agent)")
    sub.add_parser("down")
    sub.add_parser("status")
    sub.add_parser("env")
    p_logs = sub.add_parser("logs")
    p_logs.add_argument("pod", help="NAMESPACE/POD")
    p_logs.add_argument("container", nargs="?")
    a = ap.parse_args(argv)
    state_dir = a.state_dir or default_state_dir()

    if a.cmd == "build":
        t = time.monotonic()
        try:
            bd = build.ensure_built()
        except (build.GoNotFound, build.BuildFailed) as e:
            print(e, file=sys.stderr)
            return 1
        print(f"binaries in {bd} ({time.monotonic() - t:.1f}s)")
        return 0

    if a.cmd == "up":
        t = time.monotonic()
        cp = up(state_dir, nodes=a.nodes)
        print(f"control plane up in {time.monotonic() - t:.1f}s: {cp.server}")
        print(f"export KUBECONFIG={cp.kubeconfig}")
        return 0

    cp = ControlPlane.load(state_dir)
    if a.cmd == "down":
        if cp is None:
            print(f"no cluster state in {state_dir}")
            return 0
        cp.stop()
        print("stopped")
        return 0
    if cp is None:
        print(f"no cluster state in {state_dir}; run `python -m kube_harness up`",
              file=sys.stderr)
        return 1
    if a.cmd == "status":
        st = cp.status()
        for name, alive in st.items():
            print(f"{name:26} {'running' if alive else 'stopped'}  pid {cp.pids[name]}")
        print(f"server      {cp.server}\nkubeconfig  {cp.kubeconfig}")
        return 0 if st and all(st.values()) else 1
    if a.cmd == "env":
        print(f"export KUBECONFIG={shlex.quote(str(cp.kubeconfig))}")
        print(f"export PATH={shlex.quote(str(cp.bin_dir))}:\"$PATH\"")
        return 0
    if a.cmd == "logs":
        ns, _, pod = a.pod.rpartition("/")
        print(cp.pod_log(ns or "default", pod, a.container), end="")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
