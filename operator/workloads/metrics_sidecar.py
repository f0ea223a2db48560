"""The metrics-collector sidecar of File and TensorFlowEvent collectors: pure functions of pod templates.

Katib's ``File`` and ``TensorFlowEvent`` collectors read what the training code writes to a
file (or a directory of TensorBoard event files) inside the trial's pod. The operator cannot
read a pod's files, but it can read a container's log (``KubernetesExecutor.read_log``). So
every trial pod of such an experiment gets a small container, ``autotune-metrics``, that runs
``autotune collect-metrics --kind K --path P`` (operator/collect_metrics_command.py): it
follows the file (or the event files) and prints what it reads, line by line, and the
operator reads that container's log with the machinery the StdOut collector uses.

What a pod template gets (``inject``):

* a *native sidecar*: an ``initContainers`` entry with ``restartPolicy: Always``
  (Kubernetes >= 1.29, on by default since 1.29 and GA in 1.33). The kubelet starts it before
  the main containers and stops it (SIGTERM) after they exit, so a Job still completes and the
  sidecar's last read happens after the trial wrote its last line. Its image is the operator's
  setting ``AUTOTUNE_COLLECTOR_IMAGE`` (the Helm chart: the operator's own image, which holds
  the ``autotune`` command). Its securityContext meets the *restricted* Pod Security Standard
  (non-root user 65532, no privilege escalation, every capability dropped, the runtime's
  default seccomp profile, read-only root filesystem), so a namespace enforcing it admits the
  trial; it asks for little CPU and memory;
* the directory the trial writes to, shared with the sidecar: an ``emptyDir`` volume
  ``autotune-metrics`` mounted in the primary container (the template's first container) and,
  read-only, in the sidecar, at the file's directory (File) or at the directory itself
  (TensorFlowEvent). When the primary container already mounts a volume covering that path
  (a PVC, the user's own emptyDir), the sidecar mounts that same volume at the same
  mountPath/subPath (with the env entries a subPathExpr names) instead and no emptyDir is
  added, so the trial's files stay where the user put them;
* the sidecar's own emptyDir ``autotune-metrics-state`` (1 MiB at most, mounted only in the
  sidecar, writable, at /var/run/autotune-metrics): it outlives a restart of the sidecar's
  container, which keeps its cursor there (relay_marks.py says why).

A relative ``path`` is relative to the primary container's ``workingDir`` (as the training
code sees it); without a workingDir the image's directory is unknown here, so that is an error.
So is an emptyDir that would be mounted over the workingDir (``path: metrics.log``): it would
hide the image's files there.
Of a Kubeflow or T9k job, only the template of the replica whose log is read (primary_pod.py:
chief, else master, else worker) gets the sidecar; every template gets the volume, so the same
training code writes the same path in every replica. StdOut collectors (and no collector)
leave templates untouched. Nothing here talks to a cluster.
"""

from __future__ import annotations

import copy
import posixpath
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterator, Mapping, Sequence

from autotune_operator.workloads.common import WorkloadError
from autotune_operator.workloads.primary_pod import primary_replica

SIDECAR = "autotune-metrics"  # the container's name, and the emptyDir volume's
# The sidecar's own small emptyDir (only it mounts it, writable): where it keeps its cursor, so
# a restarted sidecar numbers the lines it relays as its predecessor did (relay_marks.py).
STATE_VOLUME = "autotune-metrics-state"
STATE_DIR = "/var/run/autotune-metrics"
KINDS = ("File", "TensorFlowEvent")  # the collector kinds that need a sidecar
PATH_ENV = "AUTOTUNE_METRICS_PATH"
# The operator image's user (images/operator.Dockerfile): runAsNonRoot needs a numeric one,
# and naming it keeps an image with a root default user from failing the pod.
SIDECAR_USER = 65532
RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": SIDECAR_USER,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def default_image() -> str:
    """The Helm chart's default operator image for this version (autotune/operator:<version>)."""
    try:
        tag = version("autotune")
    except PackageNotFoundError:  # running from a source tree that is not installed
        tag = "latest"
    return f"autotune/operator:{tag}"


@dataclass(frozen=True)
class Collector:
    """A file-reading collector as the sidecar needs it."""

    kind: str  # File | TensorFlowEvent
    path: str  # as the spec gives it (absolute, or relative to the primary container's workingDir)
    image: str

    @classmethod
    def of(cls, mc: Any, image: str) -> "Collector | None":
        """The sidecar's collector for ``spec.metricsCollector`` (None: StdOut, or none)."""
        if not uses_sidecar(mc):
            return None
        path = getattr(mc, "path", None)
        if not path:
            raise WorkloadError(f"spec.metricsCollector.path is required for kind {mc.kind}")
        return cls(str(mc.kind), str(path), image)


def uses_sidecar(mc: Any) -> bool:
    """Whether ``spec.metricsCollector`` is read through the sidecar (File, TensorFlowEvent)."""
    return mc is not None and getattr(mc, "kind", None) in KINDS


# Native sidecars: beta and on by default since Kubernetes 1.29 (alpha, off, in 1.28).
NATIVE_SIDECARS = (1, 29)


def version_problem(major: str, minor: str) -> str | None:
    """Why a cluster of this version (the API server's /version ``major``/``minor``, e.g.
    "1" and "28+" on EKS) cannot run the sidecar, or None. An older API server drops the
    init container's ``restartPolicy``: the sidecar would then run as an ordinary init
    container that never ends, and no trial would start. Unreadable versions pass."""
    ma, mi = re.match(r"\d+", major or ""), re.match(r"\d+", minor or "")
    if not ma or not mi or (int(ma.group()), int(mi.group())) >= NATIVE_SIDECARS:
        return None
    return (f"spec.metricsCollector kind File and TensorFlowEvent need Kubernetes >= "
            f"{NATIVE_SIDECARS[0]}.{NATIVE_SIDECARS[1]} (native sidecar containers); this cluster is "
            f"{major}.{minor}: use kind StdOut (print the metrics), or report them with the SDK or MLflow")


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")  # $(NAME) in a subPathExpr


def _norm(path: str) -> str:
    return posixpath.normpath(path)


def _covers(mount_path: str, target: str) -> bool:
    """Whether a volume mounted at ``mount_path`` holds ``target`` (whole path components)."""
    m, t = _norm(mount_path), _norm(target)
    return m == "/" or t == m or t.startswith(m + "/")


def target_path(collector: Collector, container: Mapping[str, Any]) -> str:
    """The collector's path as an absolute path in ``container``."""
    path = collector.path
    if not posixpath.isabs(path):
        wd = container.get("workingDir")
        if not wd or not posixpath.isabs(str(wd)):
            raise WorkloadError(
                f"spec.metricsCollector.path {path!r} is relative, and the trial's container "
                f"{container.get('name')!r} has no absolute workingDir to resolve it against on a cluster: "
                "give an absolute path, or set the container's workingDir")
        path = posixpath.join(str(wd), path)
    return _norm(path)


def mount_dir(collector: Collector, container: Mapping[str, Any]) -> str:
    """The directory shared with the sidecar: the file's (File) or the event files' (TensorFlowEvent)."""
    path = target_path(collector, container)
    where = posixpath.dirname(path) if collector.kind == "File" else path
    if where == "/":
        raise WorkloadError(
            f"spec.metricsCollector.path {collector.path!r}: the sidecar shares the "
            f"{'file' if collector.kind == 'File' else 'event files'}' directory with the trial, and that "
            "cannot be the root directory: use a path in a directory of its own, such as /var/log/katib/metrics.log")
    return where


def _covering_mount(container: Mapping[str, Any], target: str) -> Mapping[str, Any] | None:
    """The container's volumeMount that holds ``target`` (the deepest, as in the container)."""
    found = [m for m in container.get("volumeMounts") or [] if isinstance(m, Mapping) and m.get("mountPath")
             and _covers(str(m["mountPath"]), target)]
    return max(found, key=lambda m: len(_norm(str(m["mountPath"]))), default=None)


def _sidecar(collector: Collector, path: str, mount: Mapping[str, Any],
             env: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    state = {"name": STATE_VOLUME, "mountPath": STATE_DIR}
    return {
        "name": SIDECAR,
        "image": collector.image,
        "imagePullPolicy": "IfNotPresent",
        # Native sidecar: started before the main containers, stopped after them.
        "restartPolicy": "Always",
        "command": ["autotune", "collect-metrics", "--kind", collector.kind, "--path", path,
                    "--state-dir", STATE_DIR],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}, *(dict(e) for e in env)],
        "resources": copy.deepcopy(RESOURCES),
        "securityContext": copy.deepcopy(SECURITY_CONTEXT),
        "volumeMounts": [dict(mount), state],
    }


def inject(template: Mapping[str, Any], collector: Collector | None, sidecar: bool = True) -> dict[str, Any]:
    """A copy of pod template ``template`` with the collector's shared directory and (unless
    ``sidecar`` is False) its sidecar, as the module doc says. ``collector`` None: a copy as it is."""
    t = copy.deepcopy(dict(template))
    if collector is None:
        return t
    spec = dict(t.get("spec") or {})
    containers = [dict(c) for c in spec.get("containers") or []]
    if not containers:
        raise WorkloadError("a trial's pod template has no containers to collect metrics from")
    primary = containers[0]
    path = target_path(collector, primary)
    where = mount_dir(collector, primary)
    names = {c.get("name") for c in containers} | {c.get("name") for c in spec.get("initContainers") or []}
    if SIDECAR in names:
        raise WorkloadError(f"the trial's pod template already has a container named {SIDECAR!r}, the name of "
                            "the metrics collector's sidecar: rename it")
    covering = _covering_mount(primary, where)
    if covering is not None:
        # The user's own volume holds the directory: the sidecar reads it there.
        mount = {k: covering[k] for k in ("name", "mountPath", "subPath", "subPathExpr") if covering.get(k)}
        # subPathExpr is expanded from the container's own env (a per-trial directory of a
        # shared PVC: $(AUTOTUNE_TRIAL_ID)): the sidecar gets the entries it names, and only those.
        used = set(_VAR.findall(str(mount.get("subPathExpr") or "")))
        expr_env: list[Mapping[str, Any]] = [e for e in primary.get("env") or []
                                             if isinstance(e, Mapping) and e.get("name") in used]
    else:
        wd = str(primary.get("workingDir") or "")
        if posixpath.isabs(wd) and _covers(where, wd):
            # An emptyDir mounted there hides what the image has in it: the trial's code, usually.
            example = posixpath.join(wd, "logs", posixpath.basename(path) if collector.kind == "File" else "")
            raise WorkloadError(
                f"spec.metricsCollector.path {collector.path!r}: the sidecar shares {where} with the trial through "
                f"an emptyDir volume mounted over it, which would hide the container's workingDir {wd} (the "
                f"image's files there, such as the training code): use a directory of its own, e.g. "
                f"{example.rstrip('/')}, or mount a volume of yours at {where}")
        volumes = list(spec.get("volumes") or [])
        if any(isinstance(v, Mapping) and v.get("name") == SIDECAR for v in volumes):
            raise WorkloadError(f"the trial's pod template already has a volume named {SIDECAR!r}, the name of "
                                "the metrics collector's shared directory: rename it")
        spec["volumes"] = volumes + [{"name": SIDECAR, "emptyDir": {}}]
        mount = {"name": SIDECAR, "mountPath": where}
        expr_env = []
        primary["volumeMounts"] = list(primary.get("volumeMounts") or []) + [dict(mount)]
    env = list(primary.get("env") or [])
    if not any(isinstance(e, Mapping) and e.get("name") == PATH_ENV for e in env):
        primary["env"] = env + [{"name": PATH_ENV, "value": path}]
    containers[0] = primary
    spec["containers"] = containers
    if sidecar:
        if any(isinstance(v, Mapping) and v.get("name") == STATE_VOLUME for v in spec.get("volumes") or []):
            raise WorkloadError(f"the trial's pod template already has a volume named {STATE_VOLUME!r}, the name "
                                "of the metrics collector's own state directory: rename it")
        spec["volumes"] = list(spec.get("volumes") or []) + [{"name": STATE_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}]
        spec["initContainers"] = list(spec.get("initContainers") or []) + [
            _sidecar(collector, path, {**mount, "readOnly": True}, expr_env)]
    t["spec"] = spec
    return t


def _templates(family: str, body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(replica type, the replica's mapping holding ``template``) of a built workload."""
    spec = body.get("spec") or {}
    if family == "job":
        yield "", spec
    elif family == "kubeflow":
        for field, replicas in spec.items():
            if field.endswith("ReplicaSpecs") and isinstance(replicas, Mapping):
                for rtype, rs in replicas.items():
                    yield str(rtype).lower(), rs
    elif family == "t9k":
        for rs in spec.get("replicaSpecs") or []:
            yield str(rs.get("type", "")).lower(), rs
    else:
        raise WorkloadError(f"unknown workload family {family!r}")


def inject_workload(family: str, body: Mapping[str, Any], task_types: Sequence[str],
                    collector: Collector | None) -> dict[str, Any]:
    """A copy of a built workload (workloads.build) whose pod templates carry the collector:
    the volume in every one, the sidecar in the primary replica's (every template of a Job)."""
    out = copy.deepcopy(dict(body))
    if collector is None:
        return out
    primary = primary_replica(list(task_types)) if task_types else ""
    for rtype, holder in _templates(family, out):
        holder["template"] = inject(holder["template"], collector, sidecar=family == "job" or rtype == primary)
    return out


def _native_sidecars(family: str, body: Mapping[str, Any]) -> list[str]:
    """The restartPolicy ('' when absent) of each sidecar in the workload's pod templates."""
    out: list[str] = []
    for _, holder in _templates(family, body):
        spec = (holder.get("template") or {}).get("spec") or {}
        out += [str(c.get("restartPolicy") or "") for c in spec.get("initContainers") or []
                if isinstance(c, Mapping) and c.get("name") == SIDECAR]
    return out


def sidecar_dropped(family: str, sent: Mapping[str, Any], stored: Mapping[str, Any], kind: str) -> str | None:
    """Why the API server's copy of a workload (``stored``, e.g. a server-side dry run of
    ``sent``) cannot run the sidecar, or None. A training job's CRD is a structural schema of
    the pod template as Kubernetes' API was when it was generated; one from before 1.28 has no
    ``initContainers[].restartPolicy`` and the API server prunes it, so the sidecar would run
    as an ordinary init container that never ends and no trial's container would start."""
    want = _native_sidecars(family, sent)
    if not want or _native_sidecars(family, stored) == want:
        return None
    return (f"spec.metricsCollector kind File and TensorFlowEvent run a native sidecar container "
            f"(an init container with restartPolicy: Always), but this cluster's {kind} drops that field: "
            f"its CRD was generated from a Kubernetes API older than 1.28 (upgrade the training operator), "
            f"so the sidecar would never end and no trial would start. Use kind StdOut (print the metrics), "
            f"report them with the SDK or MLflow, or run trials as batch Jobs "
            f"(annotation autotune.tensorstack.dev/workload-kind: job)")
