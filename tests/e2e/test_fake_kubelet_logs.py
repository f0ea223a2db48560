"""The fake node serves container logs as a kubelet does, through the real kube-apiserver:
plain, ``timestamps=true`` (RFC 3339 nano UTC and a space before each line), ``sinceTime``
(the lines at or after it; the API server passes whole seconds on) and ``follow``."""

from __future__ import annotations

import re
import sys

from kube_harness import wait_for
from kube_harness.container_logs import parse_ns

STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) (.*)$")
CODE = ("import time\n"
        "for i in range(3):\n"
        "    print(f'epoch {i} accuracy=0.{i + 5}', flush=True)\n"
        "    time.sleep(1.2)\n"
        "print('done', end='', flush=True)\n")


def test_timestamps_since_time_and_follow_through_the_api_server(kube_cluster, core_v1, namespace):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "printer"},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "python", "command": [sys.executable, "-c", CODE]}]}}
    core_v1.create_namespaced_pod(namespace, pod)
    # Follow from while it runs to its end: every line, as written (the last has no newline).
    wait_for(lambda: (core_v1.read_namespaced_pod("printer", namespace).status.phase or "") in ("Running", "Succeeded"),
             60, "the pod to run")
    followed = kube_cluster.kubectl("logs", "-f", "-n", namespace, "printer", timeout=60).stdout
    assert followed == "epoch 0 accuracy=0.5\nepoch 1 accuracy=0.6\nepoch 2 accuracy=0.7\ndone"
    wait_for(lambda: core_v1.read_namespaced_pod("printer", namespace).status.phase == "Succeeded", 60, "the pod's end")

    plain = core_v1.read_namespaced_pod_log("printer", namespace, container="main")
    assert plain == followed
    stamped = kube_cluster.kubectl("logs", "--timestamps", "-n", namespace, "printer").stdout
    rows = [STAMPED.match(line) for line in stamped.split("\n")]
    assert all(rows), stamped
    assert [m.group(2) for m in rows] == ["epoch 0 accuracy=0.5", "epoch 1 accuracy=0.6", "epoch 2 accuracy=0.7", "done"]
    times = [parse_ns(m.group(1)) for m in rows]
    assert times == sorted(times) and times[2] - times[0] >= 2 * 10**9  # the time each line was written

    # --since-time at the third line: it and the rest, and nothing written a second before it.
    since = rows[2].group(1)
    tail = kube_cluster.kubectl("logs", "--timestamps", f"--since-time={since}", "-n", namespace, "printer").stdout
    got = [STAMPED.match(line).group(2) for line in tail.split("\n")]
    assert got[-2:] == ["epoch 2 accuracy=0.7", "done"] and "epoch 0 accuracy=0.5" not in got, tail
    future = "2999-01-01T00:00:00Z"
    assert kube_cluster.kubectl("logs", f"--since-time={future}", "-n", namespace, "printer").stdout == ""

