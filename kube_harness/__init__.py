"""A real Kubernetes control plane for AutoTune's e2e tests, without Docker.

etcd, kube-apiserver and kube-controller-manager built from the Go module proxy
(kube_harness.build), started on loopback (kube_harness.controlplane), plus fake nodes that
run pods as local processes (kube_harness.node_agent). See docs/kube-harness.md.
"""

from .build import NO_GO_REASON, BuildFailed, GoNotFound, ensure_built
from .controlplane import ControlPlane, up, wait_for

__all__ = ["NO_GO_REASON", "BuildFailed", "ControlPlane", "GoNotFound", "ensure_built", "up",
           "wait_for"]
