"""The fake node runs native sidecars and emptyDir volumes as a kubelet does (what the File /
TensorFlowEvent metrics collectors' sidecar needs): a sidecar (an init container with
restartPolicy Always) runs beside the main container, gets SIGTERM once it exited and does
not decide the pod's phase; an emptyDir mounted at a fixed path is each pod's own directory,
shared by the pod's containers (read-only where the mount says so)."""

from __future__ import annotations

import sys
from pathlib import Path

from kube_harness import wait_for

WHERE = "/var/log/autotune-harness-volumes"  # the same fixed path in every pod
MAIN = f"""
import os, sys, time
path = "{WHERE}/m.log"
print("before:", os.path.exists(path), flush=True)  # another pod's file is not here
with open(path, "w") as f:
    f.write("written by " + sys.argv[1] + "\\n")
time.sleep(2)
print("main done", flush=True)
"""
SIDECAR = f"""
import signal, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print("sidecar up", flush=True)
while not stop:
    time.sleep(0.1)
print("saw:", open("{WHERE}/m.log").read().strip(), flush=True)
try:
    open("{WHERE}/other", "w")
except OSError as e:
    print("read-only:", e.errno == 30, flush=True)
sys.exit(3)  # a sidecar's exit code does not decide the pod's phase
"""


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never",
                     "volumes": [{"name": "shared", "emptyDir": {}}],
                     "initContainers": [{"name": "side", "image": "python", "restartPolicy": "Always",
                                         "command": [sys.executable, "-c", SIDECAR],
                                         "volumeMounts": [{"name": "shared", "mountPath": WHERE, "readOnly": True}]}],
                     "containers": [{"name": "main", "image": "python", "command": [sys.executable, "-c", MAIN, name],
                                     "volumeMounts": [{"name": "shared", "mountPath": WHERE}]}]}}


def test_native_sidecars_and_empty_dirs_per_pod(kube_cluster, core_v1, namespace):
    names = ("vol-a", "vol-b")
    for n in names:  # at the same time, writing the same path
        core_v1.create_namespaced_pod(namespace, pod(n))
    # The sidecar runs before and while the main container does.
    wait_for(lambda: all(
        any(cs.name == "side" and cs.state.running for cs in core_v1.read_namespaced_pod(n, namespace).status
            .init_container_statuses or []) for n in names), 60, "the sidecars to run")
    for n in names:
        wait_for(lambda: core_v1.read_namespaced_pod(n, namespace).status.phase in ("Succeeded", "Failed"), 60,
                 f"{n} to end")
        p = core_v1.read_namespaced_pod(n, namespace)
        assert p.status.phase == "Succeeded", p.status  # the sidecar exited 3: not counted
        (side,) = p.status.init_container_statuses
        assert side.state.terminated and side.state.terminated.exit_code == 3
        main_log = kube_cluster.pod_log(namespace, n, "main")
        assert main_log == "before: False\nmain done\n"
        side_log = kube_cluster.pod_log(namespace, n, "side")
        # SIGTERM came after main had written: the sidecar read this pod's own file.
        assert side_log == f"sidecar up\nsaw: written by {n}\nread-only: True\n", side_log
    assert not Path(WHERE, "m.log").exists()  # nothing was written on the host's path itself


CLIENT = """
import os, sys
from kubernetes import client, config
print("hidden:", sorted(os.listdir(sys.argv[1])), flush=True)  # the emptyDir over the agent's directory
api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
print("api:", client.VersionApi(api).get_code().major, flush=True)
"""


def test_a_volume_over_the_agents_directory_keeps_the_pods_kubeconfig(kube_cluster, core_v1, namespace):
    """The pod's kubeconfig (a ServiceAccount token) lives in the agent's state directory; an
    emptyDir mounted over it (a chart mounting /tmp, where test clusters live) leaves it visible,
    as a kubelet's token mount is whatever else is mounted."""
    state = str(kube_cluster.state_dir)
    core_v1.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "covered"},
        "spec": {"restartPolicy": "Never", "volumes": [{"name": "over", "emptyDir": {}}],
                 "containers": [{"name": "main", "image": "python", "command": [sys.executable, "-c", CLIENT, state],
                                 "volumeMounts": [{"name": "over", "mountPath": state}]}]}})
    wait_for(lambda: core_v1.read_namespaced_pod("covered", namespace).status.phase in ("Succeeded", "Failed"), 60,
             "the pod to end")
    out = kube_cluster.pod_log(namespace, "covered", "main")
    # Only the path to the kubeconfig (made to bind it there) is in the otherwise empty volume.
    assert out == "hidden: ['pods']\napi: 1\n", out
    assert core_v1.read_namespaced_pod("covered", namespace).status.phase == "Succeeded"


def test_a_sidecar_that_exits_is_restarted_while_the_pod_runs(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flaky"},
        "spec": {"restartPolicy": "Never",
                 "initContainers": [{"name": "side", "image": "python", "restartPolicy": "Always",
                                     "command": [sys.executable, "-c", "print('up', flush=True); raise SystemExit(1)"]}],
                 "containers": [{"name": "main", "image": "python",
                                 "command": [sys.executable, "-c", "import time; time.sleep(6)"]}]}})
    wait_for(lambda: core_v1.read_namespaced_pod("flaky", namespace).status.phase in ("Succeeded", "Failed"), 60,
             "the pod to end")
    p = core_v1.read_namespaced_pod("flaky", namespace)
    (side,) = p.status.init_container_statuses
    # Restarted with a back-off (1 s, 2 s, 4 s...): a few times in 6 s, not in a busy loop.
    assert p.status.phase == "Succeeded" and 1 <= side.restart_count <= 4, side
    assert side.last_state.terminated.exit_code == 1


READER = """
import os, sys
print("host:", open(os.path.join(sys.argv[1], "f")).read().strip(), flush=True)
with open(os.path.join(sys.argv[2], "x"), "w") as f:
    f.write("data")
print("data:", sorted(os.listdir(sys.argv[2])), flush=True)
"""


def test_volumes_whose_sources_a_parent_mount_covers_are_still_mounted(kube_cluster, core_v1, namespace):
    """Mounts go parents first, and a parent mount over the agent's directory (a chart's /tmp,
    where test clusters and a checkout under /tmp live) used to hide the sources of the mounts
    after it: an emptyDir's folder in the agent's state, or a hostPath there. Sources are now
    held open before any mount. A hostPath directory is mounted too (the chart's
    extraVolumes in test_helm_extra_env mount a checkout under /tmp back into place)."""
    state = kube_cluster.state_dir
    src = state / "host-src"
    src.mkdir(exist_ok=True)
    (src / "f").write_text("from the host\n")
    host_at, data_at = "/var/lib/autotune-harness-host", "/var/lib/autotune-harness-data"
    core_v1.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nested"},
        "spec": {"restartPolicy": "Never",
                 "volumes": [{"name": "over", "emptyDir": {}}, {"name": "data", "emptyDir": {}},
                             {"name": "host", "hostPath": {"path": str(src)}}],
                 "containers": [{"name": "main", "image": "python",
                                 "command": [sys.executable, "-c", READER, host_at, data_at],
                                 "volumeMounts": [{"name": "over", "mountPath": str(state)},
                                                  {"name": "data", "mountPath": data_at},
                                                  {"name": "host", "mountPath": host_at, "readOnly": True}]}]}})
    wait_for(lambda: core_v1.read_namespaced_pod("nested", namespace).status.phase in ("Succeeded", "Failed"), 60,
             "the pod to end")
    out = kube_cluster.pod_log(namespace, "nested", "main")
    assert out == "host: from the host\ndata: ['x']\n", out
    assert core_v1.read_namespaced_pod("nested", namespace).status.phase == "Succeeded"
    assert not Path(data_at).exists() or not Path(data_at, "x").exists()  # the pod's own folder, not the host's


def test_mounts_covering_every_staging_directory_leave_the_container_waiting_saying_so(core_v1, namespace):
    """Sources are staged under a directory no mountPath covers (/run, /var/tmp or /mnt); a pod
    whose mounts cover all three (or that mounts a volume at /) cannot be run. The fake node
    raised in the pod's thread, which ended it unreported: the pod stayed ContainerCreating for
    ever. Like the other mount errors, the container now waits with CreateContainerError and
    a FailedMount Event naming the mounts."""
    cases = {"at-root": ["/"], "over-stages": ["/run", "/var/tmp", "/mnt"]}
    for name, paths in cases.items():
        core_v1.create_namespaced_pod(namespace, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never",
                     "volumes": [{"name": f"v{i}", "emptyDir": {}} for i in range(len(paths))],
                     "containers": [{"name": "main", "image": "python", "command": [sys.executable, "-c", "pass"],
                                     "volumeMounts": [{"name": f"v{i}", "mountPath": p}
                                                      for i, p in enumerate(paths)]}]}})

    def waiting(name: str) -> object:
        statuses = core_v1.read_namespaced_pod(name, namespace).status.container_statuses or []
        return next((cs.state.waiting for cs in statuses if cs.state.waiting
                     and cs.state.waiting.reason == "CreateContainerError"), None)

    for name, paths in cases.items():
        wait_for(lambda: waiting(name) is not None, 60, f"{name}'s container to wait with CreateContainerError")
        message = waiting(name).message
        said = f"container main: its volumeMounts at {', '.join(sorted(paths))} cover every directory "
        assert message.startswith(said) and "(/run/kube-harness-stage, " in message, message
        assert core_v1.read_namespaced_pod(name, namespace).status.phase == "Pending"
        wait_for(lambda: any(e.reason == "FailedMount" and e.message == message for e in core_v1.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}").items), 60, f"{name}'s FailedMount Event")
