"""Fake nodes that run pods as local processes: a scheduler and a "kubelet" in one small loop.

This is test harness, not a kubelet. What it does:
  * registers Node objects (capacity/allocatable for cpu, memory, pods, nvidia.com/gpu,
    huawei.com/Ascend910; Ready) and renews their Leases so the node lifecycle controller
    leaves them alone;
  * binds pending pods (schedulerName default-scheduler) to a node that fits: resource
    requests incl. extended resources, nodeSelector, tolerations vs NoSchedule/NoExecute
    taints, spec.unschedulable; otherwise sets PodScheduled=False/Unschedulable;
  * runs each container's command+args as a process group on this host with the
    container's env (value, $(VAR) expansion, valueFrom secretKeyRef/configMapKeyRef/
    fieldRef/resourceFieldRef, envFrom) and workingDir (a sandbox dir when it is unset or
    does not exist here); init containers run first, one by one;
  * native sidecars (Kubernetes >= 1.29): an init container with ``restartPolicy: Always``
    is started in its turn among the init containers and not waited for; it is restarted
    (with a short back-off) when it exits while the pod runs, gets SIGTERM (then SIGKILL after the grace period,
    below) once every regular container has ended for good, and its exit code does
    not decide the pod's phase;
  * ``emptyDir`` volumes and the volumeMounts that name them: the pod gets a directory per
    emptyDir (<pod dir>/volumes/<name>, mode 0777) and a container with such mounts runs in
    its own mount namespace (``unshare -m --propagation private``) with each directory
    bind-mounted at its mountPath (subPath and readOnly honoured; the mountPath is created
    on this host if missing, as an empty directory; what the host has below it is hidden,
    except the pod's kubeconfig). So two pods writing the same fixed path
    (/var/log/katib/metrics.log) each write their own file, and containers of one pod share
    theirs. This needs root with CAP_SYS_ADMIN; where ``unshare -m`` fails, or the mounts
    cover every directory the sources are staged in (a mount at /), the container does not
    start (CreateContainerError saying so, and a Warning Event);
  * reports phase, conditions and (init)containerStatuses through the status subresource,
    restarts per restartPolicy (Always/OnFailure/Never), kills the process group on graceful
    deletion (an eviction included), reports the pod Failed (Succeeded if every container
    exited 0) and then removes it with grace period 0;
  * ``spec.activeDeadlineSeconds`` (which may be set or lowered on a running pod): once that
    long has passed since status.startTime the containers are killed as on deletion and the
    pod ends Failed, reason DeadlineExceeded, and stays (its logs readable), as the
    kubelet's active deadline handler does;
  * the grace period between SIGTERM and SIGKILL (a deletion, the active deadline, a native
    sidecar's stop) is the pod's, capped at 10 s (MAX_GRACE_SECONDS) unless the pod has the
    annotation ``kube-harness/honour-grace-period: "true"``, a test-harness knob for tests
    that act on a pod while it terminates; a later deletion with a shorter grace period brings
    the SIGKILL forward (never later), as the kubelet's pod worker does;
  * gives each pod's processes KUBECONFIG pointing at a kubeconfig with a token of the
    pod's ServiceAccount (TokenRequest bound to the pod) unless automountServiceAccountToken
    is false, so in-pod clients that load a kubeconfig act as that ServiceAccount under
    RBAC (load_incluster_config() does not work: nothing is mounted);
  * keeps stdout+stderr per container in <state-dir>/pods/<ns>_<pod>_<uid>/<container>.log,
    with each line's time in <container>.cri (container_logs.py), and serves them to
    kube-apiserver as the kubelet does (so `kubectl logs`, --timestamps, --since-time work).
Not emulated: images (the command must exist on this host), volumes other than emptyDir
(their mounts are ignored), networking (every pod gets podIP 127.0.0.1), probes, resource
limits enforcement, securityContext (processes run as the agent's user), exec/attach/
port-forward, ephemeral containers, lifecycle hooks.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import datetime as _dt
import json
import logging
import math
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.utils.quantity import parse_quantity

from kube_harness import container_logs

log = logging.getLogger("kube_harness.node_agent")

GPU = "nvidia.com/gpu"
NPU = "huawei.com/Ascend910"
DEFAULT_NODES = [
    {"name": "fake-node-cpu",
     "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110", GPU: "0", NPU: "0"}},
    {"name": "fake-node-gpu", "labels": {"autotune.dev/accelerator": "nvidia-gpu"},
     "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", GPU: "2", NPU: "0"}},
    {"name": "fake-node-npu", "labels": {"autotune.dev/accelerator": "huawei-ascend910"},
     "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", GPU: "0", NPU: "8"}},
]
# Host environment a pod's processes inherit (a container would get its image's env).
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
LEASE_SECONDS = 40
POLL = 0.3
# The kubelet gives a pod its whole terminationGracePeriodSeconds (30 s by default) between
# SIGTERM and SIGKILL; this agent gives at most MAX_GRACE_SECONDS, so that tests whose pods
# ignore SIGTERM do not wait that long for each kill.
MAX_GRACE_SECONDS = 10.0
# A test-harness knob, not a Kubernetes one: a pod annotated with this set to "true" gets its
# whole grace period, uncapped. For a test that must act on a pod while it terminates (evict
# it, say) however slowly the test gets there; it gives the pod a long grace period and ends
# it with a deletion of a short one (a grace period only ever shortens, as in the kubelet).
HONOUR_GRACE_ANNOTATION = "kube-harness/honour-grace-period"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _raw(resp) -> dict:  # reading .data also hands the connection back to the pool
    return json.loads(resp.data)


# ---------------------------------------------------------------------------- scheduling
def pod_requests(pod: dict) -> dict[str, float]:
    """Effective requests: max(sum of containers, any init container), per resource."""
    def of(c):
        res = c.get("resources") or {}
        req = dict(res.get("limits") or {})  # extended resources: requests default to limits
        req.update(res.get("requests") or {})
        return {k: float(parse_quantity(v)) for k, v in req.items()}

    total: dict[str, float] = {}
    for c in pod["spec"].get("containers", []):
        for k, v in of(c).items():
            total[k] = total.get(k, 0.0) + v
    for c in pod["spec"].get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, 0.0), v)
    return total


def past_deadline(pod: dict, at: float) -> bool:
    """Whether a pod has run past its spec.activeDeadlineSeconds (counted from status.startTime)."""
    limit = pod["spec"].get("activeDeadlineSeconds")
    start = (pod.get("status") or {}).get("startTime")
    if not limit or not start:
        return False
    began = calendar.timegm(time.strptime(start, "%Y-%m-%dT%H:%M:%SZ"))
    return at >= began + int(limit)


def kill_grace(pod: dict, grace: float) -> float:
    """The seconds this agent waits between SIGTERM and SIGKILL for a kill the API asked
    `grace` seconds for: at most MAX_GRACE_SECONDS, unless the pod opts out of the cap
    (HONOUR_GRACE_ANNOTATION)."""
    notes = pod["metadata"].get("annotations") or {}
    if notes.get(HONOUR_GRACE_ANNOTATION) == "true":
        return grace
    return min(grace, MAX_GRACE_SECONDS)


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if op == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if op == "Equal" and t.get("key") == taint.get("key") \
                and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def why_not(node: dict, pod: dict, used: dict[str, float], req: dict[str, float]) -> str | None:
    """None when the pod fits the node, otherwise a short reason."""
    if node["spec"].get("unschedulable"):
        return "node is unschedulable"
    labels = node["metadata"].get("labels") or {}
    for k, v in (pod["spec"].get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return "node didn't match Pod's node selector"
    for taint in node["spec"].get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and \
                not tolerates(pod["spec"].get("tolerations"), taint):
            return f"node had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    alloc = {k: float(parse_quantity(v))
             for k, v in (node["status"].get("allocatable") or {}).items()}
    if used.get("pods", 0) + 1 > alloc.get("pods", 0):
        return "Too many pods"
    for k, v in req.items():
        if v and used.get(k, 0.0) + v > alloc.get(k, 0.0) + 1e-9:
            return f"Insufficient {k}"
    return None


# ------------------------------------------------------------------------------ env vars
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined vars are replaced, $$ escapes, others stay."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, s)


class ConfigError(Exception):
    """The container cannot start yet (CreateContainerConfigError)."""


class MountError(Exception):
    """The container's volumes cannot be mounted (CreateContainerError, a FailedMount Event)."""


# Run in a new mount namespace: first bind every source under a private tmpfs at the stage
# directory (none of the pod's mountPaths covers it), then each staged source at its target,
# parents first. Bound straight to their targets, the sources below a mount made before
# (a chart's /tmp over the agent's state, where emptyDirs' folders and a checkout under /tmp
# live) were hidden by it. Keep the pod's kubeconfig visible where a mount hid it (bound from
# a descriptor opened before, as a kubelet mounts the token whatever else is mounted); cd to
# the working directory again (a mount over it is seen only through its path; where it is
# hidden the process stays in the original) and exec the command.
# Arguments: wd kubeconfig stage SOURCE... -- TARGET ro|rw ... -- COMMAND...
_MOUNT_SCRIPT = (
    'wd="$1"; kc="$2"; stage="$3"; shift 3; '
    'if [ -n "$kc" ]; then exec 8<"$kc"; fi; '
    'mount -t tmpfs kube-harness-stage "$stage" || exit 125; '
    'i=0; while [ "$1" != "--" ]; do i=$((i + 1)); '
    'mkdir -p "$1" "$stage/$i" && mount --bind "$1" "$stage/$i" || exit 125; '
    'shift; done; shift; '
    'i=0; while [ "$1" != "--" ]; do i=$((i + 1)); '
    'mkdir -p "$1" && mount --bind "$stage/$i" "$1" || exit 125; '
    'if [ "$2" = ro ]; then mount -o remount,bind,ro "$1" || exit 125; fi; '
    'shift 2; done; shift; '
    'if [ -n "$kc" ] && [ ! -e "$kc" ]; then '
    '{ mkdir -p "$(dirname "$kc")" && touch "$kc" && mount --no-canonicalize --bind /proc/self/fd/8 "$kc"; } '
    '|| echo "[fake-node] a volume mount hides KUBECONFIG $kc" >&2; fi; '
    'if [ -n "$kc" ]; then exec 8<&-; fi; '
    'cd "$wd" 2>/dev/null; exec "$@"'
)
# Where the sources are staged: the first of these no mountPath is at or above (the host's
# directory stays empty: a tmpfs covers it in the pod's own namespace).
_STAGES = ("/run/kube-harness-stage", "/var/tmp/kube-harness-stage", "/mnt/kube-harness-stage")


def _covers(target: str, path: str) -> bool:
    return path == target or path.startswith(target.rstrip("/") + "/")


def stage_for(targets: list[str]) -> str:
    """A stage directory that no target covers (see _MOUNT_SCRIPT); ValueError naming the
    targets that cover them when each does (a mount at /, say)."""
    for stage in _STAGES:
        if not any(_covers(t, stage) for t in targets):
            return stage
    covering = sorted({t for t in targets if any(_covers(t, stage) for stage in _STAGES)})
    raise ValueError(f"its volumeMounts at {', '.join(covering)} cover every directory the fake node can stage "
                     f"volume sources in ({', '.join(_STAGES)}), so it cannot mount them: mount them elsewhere")


def mount_namespaces_work() -> str | None:
    """None when this host can give a process its own mount namespace, else why not."""
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run unshare: {e}"
    if r.returncode != 0:
        return (r.stderr or r.stdout).strip() or f"unshare exited {r.returncode}"
    return None


def volume_argv(argv: list[str], wd: str, mounts: list[tuple[str, str, bool]], stage: str,
                kubeconfig: str = "") -> list[str]:
    """``argv`` run with each (source, mountPath, read-only) bind-mounted in a mount
    namespace of its own (so other processes of this host, other pods included, see none),
    the file ``kubeconfig`` (if any) still there when a mount covers its directory. Every
    source is staged at ``stage`` (stage_for; the caller makes the directory) before any
    target is mounted (_MOUNT_SCRIPT): a mount at /tmp would otherwise hide the later
    sources below it (an emptyDir's folder in the agent's state, a hostPath there)."""
    binds: list[str] = []
    for _, dst, ro in mounts:
        binds += [dst, "ro" if ro else "rw"]
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", _MOUNT_SCRIPT, "sh", wd, kubeconfig, stage,
            *[src for src, _, _ in mounts], "--", *binds, "--", *argv]


# ---------------------------------------------------------------------------- pod runner
class PodRunner(threading.Thread):
    def __init__(self, agent: "Agent", pod: dict):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.agent = agent
        self.pod = pod
        m = pod["metadata"]
        self.ns, self.name, self.uid = m["namespace"], m["name"], m["uid"]
        self.dir = agent.state_dir / "pods" / f"{self.ns}_{self.name}_{self.uid}"
        self.restart_policy = pod["spec"].get("restartPolicy", "Always")
        self.delete_grace: float | None = None  # set when the pod is being deleted or past its deadline
        self.kill_at: float | None = None  # time.monotonic() of the SIGKILL the kills asked for so far
        self.deadline_exceeded = False  # spec.activeDeadlineSeconds ran out: killed, the pod kept
        self.wake = threading.Event()
        self.procs: dict[str, subprocess.Popen] = {}
        self.pumps: dict[str, container_logs.LogPump] = {}  # container -> its log's copier
        self.lock = threading.Lock()
        self.start_time = now()
        self.statuses: dict[str, dict] = {}  # container name -> containerStatus
        self.init_statuses: dict[str, dict] = {}
        self.phase = "Pending"
        self.initialized = False
        self.message = ""
        self.reason = ""
        self.sa_kubeconfig: Path | None = None

    # -- plumbing -----------------------------------------------------------------
    def request_delete(self, grace: float) -> None:
        """Kill the pod's containers: SIGTERM, SIGKILL `grace` seconds later (kill_grace). A
        later request (a deletion of a pod already stopping for its deadline, a deletion with
        a shorter grace period) may bring the SIGKILL forward, never put it off: the
        kubelet's pod worker likewise only ever shortens a terminating pod's grace period."""
        at = time.monotonic() + kill_grace(self.pod, grace)
        with self.lock:
            first = self.delete_grace is None
            if first:
                self.delete_grace = grace
            self.kill_at = at if self.kill_at is None else min(self.kill_at, at)
        if first:
            self.wake.set()

    def request_deadline(self) -> None:
        """spec.activeDeadlineSeconds has passed since the pod's startTime: its containers are
        killed as on deletion (SIGTERM, SIGKILL after the pod's grace period, kill_grace) and
        the pod ends Failed, reason DeadlineExceeded, but stays, with its logs (the kubelet's
        active deadline handler). The field may be set or lowered on a running pod."""
        if self.delete_grace is None:
            self.deadline_exceeded = True
            self.request_delete(float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))

    def _status_doc(self) -> dict:
        t = now()
        running = [s for s in self.statuses.values() if "running" in s["state"]]
        all_ready = self.phase == "Running" and len(running) == len(self.statuses)
        terminal = self.phase in ("Succeeded", "Failed")

        def cond(type_, ok, reason=None):
            c = {"type": type_, "status": "True" if ok else "False", "lastTransitionTime": t}
            if reason and not ok:
                c["reason"] = reason
            return c

        reason = "PodCompleted" if terminal else "ContainersNotReady"
        doc = {
            "phase": self.phase,
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": [
                cond("PodScheduled", True),
                cond("Initialized", self.initialized or terminal, "ContainersNotInitialized"),
                cond("ContainersReady", all_ready, reason),
                cond("Ready", all_ready, reason),
            ],
            "containerStatuses": list(self.statuses.values()),
        }
        if self.init_statuses:
            doc["initContainerStatuses"] = list(self.init_statuses.values())
        if self.message:
            doc["message"] = self.message
        if self.reason:
            doc["reason"] = self.reason
        return doc

    def report(self) -> None:
        try:
            self.agent.core.patch_namespaced_pod_status(
                self.name, self.ns, {"status": self._status_doc()}, _preload_content=False).data
        except ApiException as e:
            if e.status != 404:
                log.warning("status of %s/%s: %s", self.ns, self.name, e.reason)

    def _new_status(self, c: dict) -> dict:
        return {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                "ready": False, "restartCount": 0, "started": False,
                "state": {"waiting": {"reason": "ContainerCreating"}}}

    def _write_sa_kubeconfig(self) -> Path | None:
        spec = self.pod["spec"]
        if spec.get("automountServiceAccountToken") is False or not self.agent.ca_file:
            return None
        sa = spec.get("serviceAccountName") or "default"
        try:
            tr = self.agent.core.create_namespaced_service_account_token(sa, self.ns, {
                "spec": {"expirationSeconds": 24 * 3600, "boundObjectRef": {
                    "kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid}}},
                _preload_content=False)
        except ApiException as e:
            log.warning("token for %s/%s: %s", self.ns, sa, e.reason)
            return None
        token = _raw(tr)["status"]["token"]
        path = self.dir / "serviceaccount.kubeconfig"
        # The CA inline: the kubeconfig is the one file a pod needs from the agent (a volume
        # mounted over its directory leaves it visible: volume_argv).
        ca = base64.b64encode(Path(self.agent.ca_file).read_bytes()).decode()
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "c", "cluster": {
                "server": self.agent.server, "certificate-authority-data": ca}}],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "c", "user": sa,
                                                    "namespace": self.ns}}]}))
        path.chmod(0o600)
        return path

    # -- environment ---------------------------------------------------------------
    def _lookup(self, kind: str, ref: dict) -> str | None:
        name, key, optional = ref.get("name"), ref.get("key"), ref.get("optional", False)
        try:
            if kind == "secret":
                data = self.agent.core.read_namespaced_secret(name, self.ns).data or {}
                val = data.get(key)
                val = base64.b64decode(val).decode() if val is not None else None
            else:
                val = (self.agent.core.read_namespaced_config_map(name, self.ns).data
                       or {}).get(key)
        except ApiException as e:
            if e.status == 404 and optional:
                return None
            raise ConfigError(f'{kind} "{name}" not found') from None
        if val is None and not optional:
            raise ConfigError(f"couldn't find key {key} in {kind} {self.ns}/{name}")
        return val

    def _field(self, path: str) -> str:
        m = self.pod["metadata"]
        g = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if g:
            return (m.get(g.group(1)) or {}).get(g.group(2), "")
        simple = {
            "metadata.name": m["name"], "metadata.namespace": m["namespace"],
            "metadata.uid": m["uid"], "spec.nodeName": self.pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", ""),
            "status.hostIP": "127.0.0.1", "status.hostIPs": "127.0.0.1",
            "status.podIP": "127.0.0.1", "status.podIPs": "127.0.0.1",
        }
        if path in ("metadata.labels", "metadata.annotations"):
            d = m.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(d.items()))
        return simple.get(path, "")

    def _resource(self, c: dict, ref: dict) -> str:
        target = c
        if ref.get("containerName"):
            target = next((x for x in self.pod["spec"]["containers"]
                           if x["name"] == ref["containerName"]), c)
        kind, _, res = ref["resource"].partition(".")
        res_spec = target.get("resources") or {}
        v = (res_spec.get(kind) or {}).get(res)
        if v is None and kind == "limits":  # unset limit: the node's allocatable
            v = self.agent.allocatable(self.pod["spec"].get("nodeName", "")).get(res, "0")
        if v is None:
            v = "0"
        q = parse_quantity(v) / parse_quantity(ref.get("divisor", "1"))
        return str(math.ceil(q))

    def build_env(self, c: dict) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env["HOSTNAME"] = self.name
        env["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
        env["KUBERNETES_SERVICE_PORT"] = str(self.agent.api_port)
        if self.sa_kubeconfig:
            env["KUBECONFIG"] = str(self.sa_kubeconfig)
        declared: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind in ("configMapRef", "secretRef"):
                ref = src.get(kind)
                if not ref:
                    continue
                try:
                    if kind == "secretRef":
                        d = self.agent.core.read_namespaced_secret(ref["name"], self.ns).data
                        d = {k: base64.b64decode(v).decode() for k, v in (d or {}).items()}
                    else:
                        d = self.agent.core.read_namespaced_config_map(
                            ref["name"], self.ns).data or {}
                except ApiException:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'{kind} "{ref["name"]}" not found') from None
                declared.update({prefix + k: v for k, v in d.items()})
        for e in c.get("env") or []:
            name, vf = e["name"], e.get("valueFrom")
            if vf is None:
                declared[name] = expand(e.get("value", ""), declared)
            elif "fieldRef" in vf:
                declared[name] = self._field(vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                declared[name] = self._resource(c, vf["resourceFieldRef"])
            else:
                kind = "secret" if "secretKeyRef" in vf else "configmap"
                val = self._lookup(kind, vf.get("secretKeyRef") or vf.get("configMapKeyRef"))
                if val is not None:
                    declared[name] = val
        env.update(declared)
        return env

    # -- processes -----------------------------------------------------------------
    def _start(self, c: dict, status: dict) -> subprocess.Popen | None:
        name = c["name"]
        try:
            env = self.build_env(c)
        except ConfigError as e:
            status["state"] = {"waiting": {"reason": "CreateContainerConfigError",
                                           "message": str(e)}}
            return None
        argv = [expand(a, env) for a in (c.get("command") or []) + (c.get("args") or [])]
        logf, crif = self.dir / f"{name}.log", self.dir / f"{name}.cri"
        if not argv:
            status["state"] = {"waiting": {"reason": "CreateContainerError", "message":
                               "no command or args: images are not emulated by the fake node"}}
            return None
        wd = c.get("workingDir")
        if not wd or not os.path.isdir(wd):
            sandbox = self.dir / f"{name}.workdir"
            sandbox.mkdir(parents=True, exist_ok=True)
            if wd:
                msg = (f"workingDir {wd} does not exist on this host; "
                       f"running container {name} in {sandbox}")
                log.info("%s/%s: %s", self.ns, self.name, msg)
                self.agent.event(self.pod, "WorkingDirMissing", msg, "Warning")
                container_logs.note(logf, crif, f"[fake-node] {msg}")
            wd = str(sandbox)
        mounts = self._mounts(c)
        if mounts:
            try:
                argv = self._mounted(name, argv, wd, mounts)
            except MountError as e:
                msg = str(e)
                if status["state"].get("waiting", {}).get("message") != msg:
                    log.warning("%s/%s: %s", self.ns, self.name, msg)
                    self.agent.event(self.pod, "FailedMount", msg, "Warning")
                status["state"] = {"waiting": {"reason": "CreateContainerError", "message": msg}}
                return None
        try:
            # Through a pipe, so each line gets the time it was written (timestamps=true).
            p = subprocess.Popen(argv, cwd=wd, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        except OSError as e:
            container_logs.note(logf, crif, f"[fake-node] cannot start {argv[0]!r}: {e}")
            status["state"] = {"terminated": {"exitCode": 128, "reason": "StartError",
                                              "message": str(e), "startedAt": now(),
                                              "finishedAt": now()}}
            return None
        assert p.stdout is not None
        pump = container_logs.LogPump(p.stdout, logf, crif, name=f"log-{self.name}-{name}")
        pump.start()
        with self.lock:
            self.pumps[name] = pump
        status["state"] = {"running": {"startedAt": now()}}
        status["started"] = True
        status["ready"] = True
        status["containerID"] = f"fakeproc://{p.pid}"
        return p

    def _mounted(self, name: str, argv: list[str], wd: str, mounts: list[tuple[str, str, bool]]) -> list[str]:
        """``argv`` run with ``mounts`` (volume_argv), its stage directory made; MountError
        saying why it cannot be, for _start to report (any other exception would end the
        pod's thread and leave the pod ContainerCreating, unreported)."""
        why = self.agent.mount_namespaces()
        if why is not None:
            raise MountError(f"container {name} mounts emptyDir or hostPath volumes, which the fake node gives it in "
                             f"a mount namespace of its own, and `unshare -m` fails here ({why}): run the node agent "
                             "as root with CAP_SYS_ADMIN")
        try:
            stage = stage_for([dst for _, dst, _ in mounts])
        except ValueError as e:
            raise MountError(f"container {name}: {e}") from None
        try:
            os.makedirs(stage, exist_ok=True)
        except OSError as e:
            raise MountError(f"container {name}: cannot make the directory {stage} to stage its volumes in: {e}"
                             ) from None
        return volume_argv(argv, wd, mounts, stage, str(self.sa_kubeconfig or ""))

    def _mounts(self, c: dict) -> list[tuple[str, str, bool]]:
        """(host dir, mountPath, read-only) of the container's mounts of emptyDir and
        hostPath (directory) volumes, parents first (as the kubelet orders them); mounts of
        other volumes are ignored."""
        sources: dict[str, Path] = {}
        for v in self.pod["spec"].get("volumes") or []:
            if "emptyDir" in v:
                sources[v.get("name")] = self.dir / "volumes" / v["name"]
            elif "hostPath" in v and (v["hostPath"] or {}).get("path"):
                sources[v.get("name")] = Path(v["hostPath"]["path"])
        out = []
        for m in c.get("volumeMounts") or []:
            src = sources.get(m.get("name"))
            if src is None or not m.get("mountPath"):
                continue
            if m.get("subPath"):
                src = src / m["subPath"]
            out.append((str(src), os.path.normpath(m["mountPath"]), bool(m.get("readOnly"))))
        return sorted(out, key=lambda t: t[1].count("/"))

    def _finish(self, p: subprocess.Popen, status: dict, started_at: str) -> int:
        # The log is whole before the container counts as terminated (a kubelet's is):
        # wait for the pump to drain the pipe (not forever: a child left running may hold it).
        pump = self.pumps.get(status["name"])
        if pump is not None:
            pump.join(5)
        rc = p.returncode
        code = rc if rc >= 0 else 128 - rc
        status["state"] = {"terminated": {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": started_at, "finishedAt": now(),
            "containerID": status.get("containerID", "")}}
        status["ready"] = False
        status["started"] = False
        return code

    def kill_all(self, grace: float) -> None:
        """SIGTERM every process group, then SIGKILL what is left after `grace` seconds, or
        sooner when a deletion asks for it meanwhile (request_delete's kill_at)."""
        with self.lock:
            procs = [p for p in self.procs.values() if p.poll() is None]
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs):
            with self.lock:
                left = min(deadline, self.kill_at if self.kill_at is not None else deadline) - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.1))
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # whatever is left in the group, too
            except ProcessLookupError:
                pass
            p.wait()

    def _should_restart(self, code: int) -> bool:
        return self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and code != 0)

    # -- lifecycle -----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s", self.ns, self.name)
        finally:
            self.kill_all(0)
            if self.deadline_exceeded:
                self._report_killed()  # Failed, DeadlineExceeded; the pod is not removed
            elif self.delete_grace is not None:
                self._report_killed()
                self.agent.delete_now(self.pod)

    def _report_killed(self) -> None:
        """A deleted pod whose containers were killed ends in a terminal phase before it is
        removed, as the kubelet does since Kubernetes 1.26 (KEP-3329): its containers
        terminated (143 after SIGTERM), the pod Failed unless every container exited 0. A
        Job with a podFailurePolicy replaces a pod only once it is terminal, and reads the
        condition (DisruptionTarget, set by the Eviction API) kept alongside: the status
        patch merges conditions by type, so the API server's stays."""
        with self.lock:
            procs = dict(self.procs)
            self.procs.clear()
        for n, p in procs.items():
            st = self.statuses.get(n) or self.init_statuses.get(n)
            if st is not None and "running" in st["state"]:
                self._finish(p, st, st["state"]["running"].get("startedAt") or now())
        if self.deadline_exceeded:  # whatever the exit codes (the kubelet's rule)
            self.phase, self.reason = "Failed", "DeadlineExceeded"
            self.message = "Pod was active on the node longer than the specified deadline"
        elif self.phase not in ("Succeeded", "Failed"):
            codes = [(s["state"].get("terminated") or {}).get("exitCode") for s in self.statuses.values()]
            self.phase = "Succeeded" if codes and all(c == 0 for c in codes) else "Failed"
        self.report()

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = self.pod["spec"]
        for v in spec.get("volumes") or []:
            if "emptyDir" in v:  # world-writable, as the kubelet makes an emptyDir
                d = self.dir / "volumes" / v["name"]
                d.mkdir(parents=True, exist_ok=True)
                d.chmod(0o777)
        for c in spec.get("initContainers") or []:
            self.init_statuses[c["name"]] = self._new_status(c)
        for c in spec["containers"]:
            self.statuses[c["name"]] = self._new_status(c)
        self.report()
        self.sa_kubeconfig = self._write_sa_kubeconfig()
        self.agent.event(self.pod, "Started", "running containers as local processes")

        sidecars: dict[str, dict] = {}  # native sidecars started: name -> container
        sidecar_started: dict[str, str] = {}
        for c in spec.get("initContainers") or []:  # one by one, each until it succeeds
            st = self.init_statuses[c["name"]]
            if c.get("restartPolicy") == "Always":  # a native sidecar: started, not waited for
                at = self._start_sidecar(c, st)
                if at is None:
                    return  # deleted
                sidecars[c["name"]], sidecar_started[c["name"]] = c, at
                continue
            while True:
                code = self._run_to_end(c, st)
                if code is None:
                    return  # deleted
                if code == 0:
                    break
                if self.restart_policy == "Never":
                    self.phase = "Failed"
                    self.report()
                    return
                st["restartCount"] += 1
                self.wake.wait(1)
        self.initialized = True

        started: dict[str, str] = {}
        for c in spec["containers"]:
            st = self.statuses[c["name"]]
            p = self._start(c, st)
            if p:
                with self.lock:
                    self.procs[c["name"]] = p
                started[c["name"]] = st["state"]["running"]["startedAt"]
        self.phase = "Running" if started else "Pending"
        self.report()

        retry_at: dict[str, float] = {}
        retry_sidecar: dict[str, float] = {}  # sidecar -> when to start it again (a back-off)
        while True:
            if self.delete_grace is not None:
                self.kill_all(kill_grace(self.pod, self.delete_grace))
                return
            changed = False
            for n, c in sidecars.items():  # a sidecar that exits while the pod runs is restarted
                st, p = self.init_statuses[n], self.procs.get(n)
                if p is not None and p.poll() is not None:
                    self._finish(p, st, sidecar_started[n])
                    with self.lock:
                        del self.procs[n]
                    retry_sidecar[n] = time.monotonic() + min(10, 2 ** min(st["restartCount"], 3))
                    changed = True
                elif p is None and n not in retry_sidecar:  # could not start again (config error)
                    retry_sidecar[n] = time.monotonic() + 2
                if n in retry_sidecar and time.monotonic() >= retry_sidecar[n]:
                    del retry_sidecar[n]
                    prev = st["state"]
                    p = self._start(c, st)
                    if "terminated" in prev:
                        st["lastState"], st["restartCount"] = prev, st["restartCount"] + 1
                    if p:
                        with self.lock:
                            self.procs[n] = p
                        sidecar_started[n] = st["state"]["running"]["startedAt"]
                    changed = True
            for c in spec["containers"]:
                n, st = c["name"], self.statuses[c["name"]]
                p = self.procs.get(n)
                if p is not None and p.poll() is not None:
                    code = self._finish(p, st, started.get(n, now()))
                    with self.lock:
                        del self.procs[n]
                    changed = True
                    if self._should_restart(code):
                        retry_at[n] = time.monotonic() + min(10, 2 ** min(st["restartCount"], 3))
                elif p is None and "waiting" in st["state"] and n not in retry_at:
                    retry_at[n] = time.monotonic() + 2  # config error: try again soon
                if n in retry_at and time.monotonic() >= retry_at[n]:
                    del retry_at[n]
                    prev = st["state"]
                    was_run = "terminated" in prev
                    p = self._start(c, st)
                    if was_run:
                        st["lastState"] = prev
                        st["restartCount"] += 1
                    if p:
                        with self.lock:
                            self.procs[n] = p
                        started[n] = st["state"]["running"]["startedAt"]
                        self.phase = "Running"
                    changed = True
            done = [s for s in self.statuses.values() if "terminated" in s["state"]]
            if len(done) == len(self.statuses) and not retry_at and not (set(self.procs) - set(sidecars)):
                self._stop_sidecars(list(sidecars), sidecar_started)
                codes = [s["state"]["terminated"]["exitCode"] for s in done]
                self.phase = "Succeeded" if all(x == 0 for x in codes) else "Failed"
                self.report()
                return
            if changed:
                self.report()
            self.wake.wait(0.2)
            self.wake.clear()

    def _start_sidecar(self, c: dict, st: dict) -> str | None:
        """Start a native sidecar, trying again until it runs; its start time, or None when
        the pod is deleted meanwhile."""
        while True:
            p = self._start(c, st)
            if p is not None:
                with self.lock:
                    self.procs[c["name"]] = p
                self.report()
                return st["state"]["running"]["startedAt"]
            self.report()
            if self.wake.wait(2) and self.delete_grace is not None:
                return None
            self.wake.clear()

    def _stop_sidecars(self, names: list[str], started: dict[str, str]) -> None:
        """Every regular container has ended: SIGTERM the native sidecars, last started first,
        each given the pod's grace period (kill_grace) before SIGKILL, as the kubelet does."""
        grace = kill_grace(self.pod, float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
        for n in reversed(names):
            with self.lock:
                p = self.procs.pop(n, None)
            if p is None:
                continue
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # whatever is left in its group
            except ProcessLookupError:
                pass
            p.wait()
            self._finish(p, self.init_statuses[n], started.get(n, now()))

    def _run_to_end(self, c: dict, st: dict) -> int | None:
        while True:
            p = self._start(c, st)
            if p is not None or "terminated" in st["state"]:
                break
            self.report()
            if self.wake.wait(2) and self.delete_grace is not None:
                return None
        if p is None:
            return st["state"]["terminated"]["exitCode"]
        with self.lock:
            self.procs[c["name"]] = p
        started = st["state"]["running"]["startedAt"]
        self.report()
        while p.poll() is None:
            if self.delete_grace is not None:
                self.kill_all(kill_grace(self.pod, self.delete_grace))
                return None
            self.wake.wait(0.2)
        with self.lock:
            del self.procs[c["name"]]
        code = self._finish(p, st, started)
        self.report()
        return code


# ---------------------------------------------------------------------------------- agent
class Agent:
    def __init__(self, api: client.ApiClient, state_dir: Path, nodes: list[dict],
                 kubelet_port: int, server: str, ca_file: str | None = None):
        self.core = client.CoreV1Api(api)
        self.coord = client.CoordinationV1Api(api)
        self.state_dir = state_dir
        self.node_specs = nodes
        self.node_names = {n["name"] for n in nodes}
        self.kubelet_port = kubelet_port
        self.server = server
        self.api_port = int(urllib.parse.urlparse(server).port or 443)
        self.ca_file = ca_file
        self.runners: dict[str, PodRunner] = {}
        self.finished: set[str] = set()
        self.deleting: dict[str, float] = {}
        self.unsched_msgs: dict[str, str] = {}
        self.nodes: dict[str, dict] = {}
        self.stopping = threading.Event()
        self._mount_lock = threading.Lock()
        self._mount_why: list[str | None] = []  # [] until checked: [None] works, [reason] not

    def mount_namespaces(self) -> str | None:
        """None when containers can get mount namespaces (emptyDir volumes), else why not;
        checked once."""
        with self._mount_lock:
            if not self._mount_why:
                self._mount_why.append(mount_namespaces_work())
            return self._mount_why[0]

    # -- nodes ---------------------------------------------------------------------
    def register_nodes(self) -> None:
        for spec in self.node_specs:
            name = spec["name"]
            labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                      "kubernetes.io/arch": "amd64", "autotune.dev/fake-node": "true",
                      **(spec.get("labels") or {})}
            body = {"metadata": {"name": name, "labels": labels},
                    "spec": {"taints": spec.get("taints") or []}}
            try:
                self.core.create_node({"apiVersion": "v1", "kind": "Node", **body},
                                      _preload_content=False).data
            except ApiException as e:
                if e.status != 409:
                    raise
                self.core.patch_node(name, body, _preload_content=False).data
            cap = spec["capacity"]
            t = now()
            conds = [("Ready", "True", "KubeletReady"),
                     ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                     ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                     ("PIDPressure", "False", "KubeletHasSufficientPID")]
            status = {
                "capacity": cap, "allocatable": spec.get("allocatable", cap),
                "conditions": [{"type": ty, "status": s, "reason": r, "lastHeartbeatTime": t,
                                "lastTransitionTime": t, "message": "fake node (kube_harness)"}
                               for ty, s, r in conds],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                              {"type": "Hostname", "address": name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                "nodeInfo": {"machineID": name, "systemUUID": name, "bootID": name,
                             "kernelVersion": os.uname().release, "osImage": "kube_harness",
                             "containerRuntimeVersion": "fakeproc://0.1",
                             "kubeletVersion": "v1.34.4-fake", "kubeProxyVersion": "",
                             "operatingSystem": "linux", "architecture": "amd64"},
            }
            self.core.patch_node_status(name, {"status": status}, _preload_content=False).data
            self.renew_lease(name)

    def renew_lease(self, name: str) -> None:
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now_micro()}
        try:
            self.coord.patch_namespaced_lease(name, "kube-node-lease", {"spec": spec},
                                              _preload_content=False).data
        except ApiException as e:
            if e.status != 404:
                raise
            self.coord.create_namespaced_lease("kube-node-lease", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name}, "spec": spec}, _preload_content=False).data

    def heartbeat_loop(self) -> None:
        while not self.stopping.wait(10):
            for name in self.node_names:
                try:
                    self.renew_lease(name)
                except Exception as e:  # keep beating; the apiserver may be restarting
                    log.warning("lease %s: %s", name, e)

    def allocatable(self, node: str) -> dict[str, str]:
        return (self.nodes.get(node, {}).get("status") or {}).get("allocatable") or {}

    # -- events --------------------------------------------------------------------
    def event(self, pod: dict, reason: str, message: str, type_: str = "Normal") -> None:
        m = pod["metadata"]
        t = now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{m['name']}.", "namespace": m["namespace"]},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": m["name"],
                               "namespace": m["namespace"], "uid": m["uid"]},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": "kube-harness-fake-node"},
            "firstTimestamp": t, "lastTimestamp": t, "count": 1,
        }
        try:
            self.core.create_namespaced_event(m["namespace"], body, _preload_content=False).data
        except ApiException as e:
            log.debug("event: %s", e)

    # -- pods ----------------------------------------------------------------------
    def delete_now(self, pod: dict) -> None:
        m = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(
                m["name"], m["namespace"], grace_period_seconds=0,
                body=client.V1DeleteOptions(grace_period_seconds=0,
                                            preconditions=client.V1Preconditions(uid=m["uid"])),
                _preload_content=False).data
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("delete %s/%s: %s", m["namespace"], m["name"], e.reason)

    def schedule(self, pending: list[dict], pods: list[dict]) -> None:
        used: dict[str, dict[str, float]] = {n: {} for n in self.nodes}
        for p in pods:
            node = p["spec"].get("nodeName")
            if node in used and p.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                u = used[node]
                for k, v in pod_requests(p).items():
                    u[k] = u.get(k, 0.0) + v
                u["pods"] = u.get("pods", 0) + 1
        for pod in sorted(pending, key=lambda p: p["metadata"]["creationTimestamp"]):
            m = pod["metadata"]
            req = pod_requests(pod)
            reasons: dict[str, str] = {}
            fits = []
            for name, node in sorted(self.nodes.items()):
                r = why_not(node, pod, used[name], req)
                if r is None:
                    free = float(parse_quantity(self.allocatable(name).get("cpu", "0"))) \
                        - used[name].get("cpu", 0.0)
                    fits.append((-free, name))
                else:
                    reasons[name] = r
            if not fits:
                counts: dict[str, int] = {}
                for r in reasons.values():
                    counts[r] = counts.get(r, 0) + 1
                msg = f"0/{len(self.nodes)} nodes are available: " + ", ".join(
                    f"{c} {r}" for r, c in sorted(counts.items())) + "."
                if self.unsched_msgs.get(m["uid"]) != msg:
                    self.unsched_msgs[m["uid"]] = msg
                    try:
                        self.core.patch_namespaced_pod_status(m["name"], m["namespace"], {
                            "status": {"conditions": [{
                                "type": "PodScheduled", "status": "False",
                                "reason": "Unschedulable", "message": msg,
                                "lastTransitionTime": now()}]}}, _preload_content=False).data
                    except ApiException:
                        pass
                    self.event(pod, "FailedScheduling", msg, "Warning")
                continue
            node = min(fits)[1]
            try:
                self.core.create_namespaced_pod_binding(m["name"], m["namespace"], {
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": m["name"], "uid": m["uid"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                    _preload_content=False).data
            except ApiException as e:  # 403 while its namespace terminates: expected
                (log.debug if e.status == 403 else log.info)(
                    "bind %s/%s: %s", m["namespace"], m["name"], e.reason)
                continue
            self.unsched_msgs.pop(m["uid"], None)
            u = used[node]
            for k, v in req.items():
                u[k] = u.get(k, 0.0) + v
            u["pods"] = u.get("pods", 0) + 1
            self.event(pod, "Scheduled", f"Successfully assigned {m['namespace']}/{m['name']} "
                                         f"to {node}")

    def sync(self) -> None:
        self.nodes = {n["metadata"]["name"]: n
                      for n in _raw(self.core.list_node(_preload_content=False))["items"]
                      if n["metadata"]["name"] in self.node_names}
        pods = _raw(self.core.list_pod_for_all_namespaces(_preload_content=False))["items"]
        seen = set()
        pending = []
        for pod in pods:
            m, spec = pod["metadata"], pod["spec"]
            uid = m["uid"]
            seen.add(uid)
            node = spec.get("nodeName")
            phase = (pod.get("status") or {}).get("phase")
            if not node:
                if not m.get("deletionTimestamp") and spec.get("schedulerName") in (
                        None, "default-scheduler") and phase == "Pending":
                    pending.append(pod)
                continue
            if node not in self.node_names:
                continue
            runner = self.runners.get(uid)
            if m.get("deletionTimestamp"):
                if runner is not None and runner.is_alive():
                    runner.request_delete(float(m.get("deletionGracePeriodSeconds") or 0))
                elif time.monotonic() - self.deleting.get(uid, 0) > 5:
                    self.deleting[uid] = time.monotonic()
                    self.delete_now(pod)
                continue
            if runner is not None and runner.is_alive() and past_deadline(pod, time.time()):
                runner.request_deadline()
            if runner is not None or uid in self.finished:
                continue
            if phase == "Pending":
                r = PodRunner(self, pod)
                self.runners[uid] = r
                r.start()
            elif phase == "Running":  # this agent restarted and lost the process
                self.finished.add(uid)
                self.core.patch_namespaced_pod_status(m["name"], m["namespace"], {
                    "status": {"phase": "Failed", "reason": "NodeAgentRestarted",
                               "message": "the fake node agent lost this pod's processes"}},
                    _preload_content=False).data
        for uid, r in list(self.runners.items()):
            if uid not in seen:  # force-deleted: just kill
                r.request_delete(0)
            if not r.is_alive():
                self.finished.add(uid)
                del self.runners[uid]
        self.deleting = {u: t for u, t in self.deleting.items() if u in seen}
        self.finished &= seen
        if pending:
            self.schedule(pending, pods)

    def run(self) -> None:
        self.register_nodes()
        threading.Thread(target=self.heartbeat_loop, daemon=True).start()
        while not self.stopping.is_set():
            try:
                self.sync()
            except Exception as e:
                log.warning("sync: %s", e)
                self.stopping.wait(1)
            self.stopping.wait(POLL)
        for r in list(self.runners.values()):
            r.kill_all(2)

    # -- logs for kube-apiserver ---------------------------------------------------
    def serve_logs(self, cert: str, key: str, ca: str | None) -> ThreadingHTTPServer:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                parts = u.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404, "only /containerLogs/<ns>/<pod>/<container> is served")
                    return
                _, ns, pod, container = parts
                q = urllib.parse.parse_qs(u.query)
                dirs = sorted((agent.state_dir / "pods").glob(f"{ns}_{pod}_*"),
                              key=lambda p: p.stat().st_mtime)
                f = dirs[-1] / f"{container}.cri" if dirs else None
                if f is None or not f.is_file():
                    self.send_error(404, f"no log for {ns}/{pod}/{container}")
                    return
                stamped = q.get("timestamps", ["false"])[0] == "true"
                since = None
                if "sinceTime" in q:
                    since = container_logs.parse_ns(q["sinceTime"][0])
                    if since is None:
                        self.send_error(400, f"sinceTime {q['sinceTime'][0]!r} is not RFC 3339")
                        return
                records, pos = container_logs.complete_records(f.read_bytes())
                out = container_logs.render(records, timestamps=stamped, since_ns=since)
                if "tailLines" in q:
                    n = int(q["tailLines"][0])
                    out = out[-n:] if n > 0 else []
                data = b"".join(out)
                if "limitBytes" in q:
                    data = data[: int(q["limitBytes"][0])]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(data)
                if q.get("follow", ["false"])[0] == "true":
                    runner = next((r for r in agent.runners.values()
                                   if r.ns == ns and r.name == pod), None)
                    while True:
                        alive = runner is not None and runner.is_alive()
                        with open(f, "rb") as fh:
                            fh.seek(pos)
                            records, n = container_logs.complete_records(fh.read())
                        pos += n
                        if records:
                            self.wfile.write(b"".join(container_logs.render(records, timestamps=stamped)))
                            self.wfile.flush()
                        if not alive:  # read once more after the end: the last lines
                            break
                        time.sleep(0.3)

        srv = ThreadingHTTPServer(("127.0.0.1", self.kubelet_port), Handler)
        srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv


def load_nodes() -> list[dict]:
    """Fake node definitions: $AUTOTUNE_FAKE_NODES (JSON list, or @path to a JSON file)."""
    raw = os.environ.get("AUTOTUNE_FAKE_NODES")
    if not raw:
        return DEFAULT_NODES
    if raw.startswith("@"):
        raw = Path(raw[1:]).read_text()
    return json.loads(raw)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--port", type=int, required=True, help="port for the log endpoint")
    ap.add_argument("--server", required=True)
    ap.add_argument("--ca", help="CA of the apiserver, for the pods' kubeconfigs")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api = config.new_client_from_config(config_file=a.kubeconfig)
    api.configuration.connection_pool_maxsize = 32
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
    agent = Agent(api, Path(a.state_dir), load_nodes(), a.port, a.server, a.ca)

    def on_term(signum, frame):
        agent.stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if a.cert and a.key:
        agent.serve_logs(a.cert, a.key, None)
    log.info("fake nodes %s up; log endpoint on 127.0.0.1:%d",
             sorted(agent.node_names), a.port)
    agent.run()
    log.info("stopped; pod processes killed")


if __name__ == "__main__":
    main()
