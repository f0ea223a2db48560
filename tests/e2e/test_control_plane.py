"""The test control plane itself: Jobs become real processes, GC, RBAC with ServiceAccount
tokens, kubectl/helm/CRDs, extended-resource scheduling on the fake nodes."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kube_harness import wait_for

pytestmark = pytest.mark.e2e

PY = sys.executable


def job(name: str, code: str, *, backoff: int = 0, env=None, restart="Never", **container):
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff, "template": {"spec": {
            "restartPolicy": restart,
            "containers": [{"name": "main", "image": "python:3.11", "command": [PY, "-c", code],
                            "env": env or [], **container}]}}},
    }


def job_condition(batch, ns, name):
    conds = batch.read_namespaced_job_status(name, ns).status.conditions or []
    return {c.type for c in conds if c.status == "True"} & {"Complete", "Failed"}


def job_pods(core, ns, name):
    return core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_job_runs_as_a_process_and_completes(kube_cluster, core_v1, namespace, tmp_path):
    batch = client.BatchV1Api(kube_cluster.api_client())
    out = tmp_path / "written-by-pod.txt"
    code = textwrap.dedent(f"""
        import os, pathlib
        pathlib.Path({str(out)!r}).write_text(os.environ["POD_NAME"] + " " + str(os.getpid()))
        print("hello from", os.environ["POD_NAME"], "in", os.environ["POD_NS"])
    """)
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    batch.create_namespaced_job(namespace, job("hello", code, env=env))

    assert wait_for(lambda: job_condition(batch, namespace, "hello"), 60,
                    "job hello to finish") == {"Complete"}
    [pod] = job_pods(core_v1, namespace, "hello")
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    # The process really ran on this host: it wrote the file with its own pod name.
    name, pid = out.read_text().split()
    assert name == pod.metadata.name and int(pid) != os.getpid()
    assert f"hello from {pod.metadata.name} in {namespace}" in kube_cluster.pod_log(
        namespace, pod.metadata.name)
    # kube-apiserver proxies `kubectl logs` to the fake node.
    logs = kube_cluster.kubectl("logs", "-n", namespace, pod.metadata.name).stdout
    assert f"hello from {pod.metadata.name}" in logs


def test_failing_job_ends_failed_with_exit_code(kube_cluster, core_v1, namespace):
    batch = client.BatchV1Api(kube_cluster.api_client())
    batch.create_namespaced_job(namespace, job("boom", "import sys; print('bad'); sys.exit(3)"))

    assert wait_for(lambda: job_condition(batch, namespace, "boom"), 60,
                    "job boom to finish") == {"Failed"}
    [pod] = job_pods(core_v1, namespace, "boom")
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (3, "Error")


def test_on_failure_restarts_the_container(kube_cluster, core_v1, namespace, tmp_path):
    batch = client.BatchV1Api(kube_cluster.api_client())
    marker = tmp_path / "tried-once"
    code = (f"import pathlib, sys; m = pathlib.Path({str(marker)!r})\n"
            "if not m.exists(): m.touch(); sys.exit(1)\n")
    batch.create_namespaced_job(namespace, job("retry", code, backoff=2, restart="OnFailure"))

    assert wait_for(lambda: job_condition(batch, namespace, "retry"), 60,
                    "job retry to finish") == {"Complete"}
    [pod] = job_pods(core_v1, namespace, "retry")
    st = pod.status.container_statuses[0]
    assert st.restart_count == 1
    assert st.last_state.terminated.exit_code == 1
    assert st.state.terminated.exit_code == 0


def test_deleting_job_removes_its_pod_and_process(kube_cluster, core_v1, namespace, tmp_path):
    batch = client.BatchV1Api(kube_cluster.api_client())
    pidfile = tmp_path / "pid"
    code = (f"import os, pathlib, time; pathlib.Path({str(pidfile)!r}).write_text("
            "str(os.getpid())); time.sleep(600)")
    batch.create_namespaced_job(namespace, job("sleeper", code))
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), 60, "the pod's process")
    pid = int(pidfile.read_text())
    assert pid_alive(pid)
    [pod] = job_pods(core_v1, namespace, "sleeper")
    assert pod.status.phase == "Running"

    batch.delete_namespaced_job("sleeper", namespace, propagation_policy="Background")
    wait_for(lambda: not job_pods(core_v1, namespace, "sleeper"), 60,
             "the garbage collector to remove the job's pod")
    assert not pid_alive(pid), "the pod is gone but its process still runs"


def test_a_pod_past_its_active_deadline_is_killed_and_kept_with_its_log(kube_cluster, core_v1, namespace, tmp_path):
    # spec.activeDeadlineSeconds set on a running Job pod (the field may be set or lowered on
    # a running pod): as the kubelet does, its process is killed, the pod ends Failed with
    # reason DeadlineExceeded and stays, its log readable; the Job (backoffLimit 0) fails.
    batch = client.BatchV1Api(kube_cluster.api_client())
    pidfile = tmp_path / "pid"
    code = (f"import os, pathlib, time; print('working', flush=True); "
            f"pathlib.Path({str(pidfile)!r}).write_text(str(os.getpid())); time.sleep(600)")
    batch.create_namespaced_job(namespace, job("deadline", code))
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), 60, "the pod's process")
    pid = int(pidfile.read_text())
    [pod] = job_pods(core_v1, namespace, "deadline")
    core_v1.patch_namespaced_pod(pod.metadata.name, namespace, {"spec": {"activeDeadlineSeconds": 1}})
    wait_for(lambda: core_v1.read_namespaced_pod(pod.metadata.name, namespace).status.phase == "Failed", 60,
             "the pod to end for its deadline")
    assert not pid_alive(pid), "the pod ended but its process still runs"
    p = core_v1.read_namespaced_pod(pod.metadata.name, namespace)
    assert p.status.reason == "DeadlineExceeded" and not p.metadata.deletion_timestamp, p.status
    assert p.status.message == "Pod was active on the node longer than the specified deadline"
    assert p.status.container_statuses[0].state.terminated is not None
    assert "working" in kube_cluster.kubectl("logs", "-n", namespace, pod.metadata.name).stdout
    assert wait_for(lambda: job_condition(batch, namespace, "deadline"), 60, "the Job to fail") == {"Failed"}
    assert [q.metadata.name for q in job_pods(core_v1, namespace, "deadline")] == [pod.metadata.name]


def test_an_evicted_pod_is_killed_and_ends_failed_with_its_disruption_condition(kube_cluster, core_v1, namespace,
                                                                                  tmp_path):
    # As the kubelet does: the process is killed and the pod reported Failed before it goes,
    # keeping the Eviction API's DisruptionTarget (a Job's podFailurePolicy reads both). A
    # finalizer holds the pod so that last status can be read.
    pidfile = tmp_path / "pid"
    code = f"import os, pathlib, time; pathlib.Path({str(pidfile)!r}).write_text(str(os.getpid())); time.sleep(600)"
    core_v1.create_namespaced_pod(namespace, {
        "metadata": {"name": "evictee", "finalizers": ["example.com/hold"]},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "none", "command": [PY, "-c", code]}]}})
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), 60, "the pod's process")
    pid = int(pidfile.read_text())
    core_v1.create_namespaced_pod_eviction("evictee", namespace, client.V1Eviction(
        metadata=client.V1ObjectMeta(name="evictee", namespace=namespace)))
    pod = wait_for(lambda: (p := core_v1.read_namespaced_pod("evictee", namespace)).status.phase == "Failed" and p,
                   60, "the evicted pod to be Failed")
    try:
        assert not pid_alive(pid)
        conds = {c.type: c for c in pod.status.conditions}
        disrupted = conds["DisruptionTarget"]
        assert disrupted.status == "True" and disrupted.reason == "EvictionByEvictionAPI"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 143  # SIGTERM
    finally:
        core_v1.patch_namespaced_pod("evictee", namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: not [p for p in core_v1.list_namespaced_pod(namespace).items if p.metadata.name == "evictee"],
             60, "the evicted pod to be removed")


def test_a_pod_may_opt_into_its_whole_grace_period_and_a_shorter_deletion_ends_it(kube_cluster, core_v1, namespace,
                                                                                    tmp_path):
    # The agent caps a pod's grace period at 10 s, unless the pod has the harness's annotation
    # (node_agent.HONOUR_GRACE_ANNOTATION). Two pods that ignore SIGTERM, with an hour of grace,
    # are stopped by their deadline, the one that opted in first: once the capped one has been
    # SIGKILLed, the other, SIGTERMed earlier, still runs (terminating, as under a kubelet),
    # which it would not if it were capped too. Then a deletion with a grace period of 1 s
    # shortens its kill, as the kubelet's pod worker does.
    code = ("import os, pathlib, signal, sys, time; d = pathlib.Path(sys.argv[1]); "
            "signal.signal(signal.SIGTERM, lambda *a: (d / 'sigterm').write_text('1')); "
            "(d / 'pid').write_text(str(os.getpid())); time.sleep(3600)")
    pids = {}
    try:
        for name, notes in (("honoured", {"kube-harness/honour-grace-period": "true"}), ("capped", {})):
            d = tmp_path / name
            d.mkdir()
            core_v1.create_namespaced_pod(namespace, {
                "metadata": {"name": name, "annotations": notes},
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 3600,
                         "containers": [{"name": "main", "image": "none", "command": [PY, "-c", code, str(d)]}]}})
            pids[name] = int(wait_for(lambda d=d: (d / "pid").exists() and (d / "pid").read_text(), 60,
                                      f"{name}'s process"))
            core_v1.patch_namespaced_pod(name, namespace, {"spec": {"activeDeadlineSeconds": 1}})
            wait_for(lambda d=d: (d / "sigterm").exists(), 60, f"{name}'s SIGTERM (its deadline)")
        capped = wait_for(lambda: (p := core_v1.read_namespaced_pod("capped", namespace)).status.phase == "Failed"
                          and p, 60, "the capped pod killed after at most 10 s")
        assert capped.status.reason == "DeadlineExceeded" and not pid_alive(pids["capped"]), capped.status
        honoured = core_v1.read_namespaced_pod("honoured", namespace)
        assert honoured.status.phase == "Running" and pid_alive(pids["honoured"]), honoured.status
    finally:  # (an hour of grace: not left to the namespace's deletion)
        try:
            core_v1.delete_namespaced_pod("honoured", namespace, grace_period_seconds=1)
        except ApiException as e:
            if e.status != 404:
                raise
    wait_for(lambda: not pid_alive(pids["honoured"]), 60, "the deletion's 1 s grace period to end the process")
    wait_for(lambda: not [p for p in core_v1.list_namespaced_pod(namespace).items if p.metadata.name == "honoured"],
             60, "the deleted pod to be removed")


def test_env_from_secret_configmap_and_downward_api(kube_cluster, core_v1, namespace):
    core_v1.create_namespaced_secret(namespace, {
        "metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}})
    core_v1.create_namespaced_config_map(namespace, {
        "metadata": {"name": "cfg"}, "data": {"lr": "0.01"}})
    core_v1.create_namespaced_pod(namespace, {
        "metadata": {"name": "envy", "labels": {"trial": "t-7"}},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "none",
            "command": [PY, "-c"],
            "args": ["import os; print(os.environ['PW'], os.environ['LR'], os.environ['TRIAL'],"
                     " os.environ['GREETING'], os.getcwd())"],
            "workingDir": "/definitely/not/here",
            "env": [
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                              "key": "password"}}},
                {"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "lr"}}},
                {"name": "TRIAL", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.labels['trial']"}}},
                {"name": "GREETING", "value": "lr=$(LR)"},
            ]}]}})
    wait_for(lambda: core_v1.read_namespaced_pod("envy", namespace).status.phase == "Succeeded",
             60, "pod envy to succeed")
    log = kube_cluster.pod_log(namespace, "envy")
    assert "s3cret 0.01 t-7 lr=0.01 " in log
    assert "workingDir /definitely/not/here does not exist" in log
    events = core_v1.list_namespaced_event(
        namespace, field_selector="involvedObject.name=envy").items
    assert any(e.reason == "WorkingDirMissing" for e in events)


def test_service_account_token_is_limited_by_its_role(kube_cluster, core_v1, namespace):
    admin = kube_cluster.api_client()
    rbac = client.RbacAuthorizationV1Api(admin)
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "reader-cm"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "visible"}})
    tr = core_v1.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 600}})
    token = tr.status.token

    as_sa = kube_cluster.token_client(token)
    who = client.AuthenticationV1Api(as_sa).create_self_subject_review({})
    assert who.status.user_info.username == f"system:serviceaccount:{namespace}:reader"
    sa_core = client.CoreV1Api(as_sa)
    # RBAC may take a moment to see the new binding.
    names = wait_for(lambda: [c.metadata.name for c in
                              sa_core.list_namespaced_config_map(namespace).items],
                     10, "the RoleBinding to take effect")
    assert "visible" in names
    assert sa_core.read_namespaced_config_map("visible", namespace).metadata.name == "visible"

    forbidden = [
        lambda: sa_core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}}),
        lambda: sa_core.list_namespaced_secret(namespace),
        lambda: sa_core.list_namespaced_config_map("default"),
        lambda: sa_core.list_namespaced_pod(namespace),
    ]
    for call in forbidden:
        with pytest.raises(ApiException) as exc:
            call()
        assert exc.value.status == 403

    bad = client.CoreV1Api(kube_cluster.token_client("not-a-token"))
    with pytest.raises(ApiException) as exc:
        bad.list_namespaced_config_map(namespace)
    assert exc.value.status == 401


def test_kubectl_and_helm_talk_to_the_cluster(kube_cluster, namespace, tmp_path):
    version = json.loads(kube_cluster.kubectl("get", "--raw", "/version").stdout)
    assert (version["major"], version["minor"]) == ("1", "34")
    assert version["gitVersion"].startswith("v1.34.")

    hv = kube_cluster.helm("version", "--short").stdout
    assert hv.startswith("v3.")
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  answer: {{ .Values.answer | quote }}\n")
    (chart / "values.yaml").write_text("answer: 42\n")
    kube_cluster.helm("install", "rel", str(chart), "-n", namespace, "--wait", "--timeout", "60s")
    cm = json.loads(kube_cluster.kubectl("get", "configmap", "rel-cm", "-n", namespace,
                                         "-o", "json").stdout)
    assert cm["data"] == {"answer": "42"}
    listed = kube_cluster.helm("list", "-n", namespace, "-o", "json").stdout
    assert [r["name"] for r in json.loads(listed)] == ["rel"]


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def test_kubectl_apply_crd_and_custom_resource(kube_cluster, namespace):
    kube_cluster.kubectl("apply", "-f", "-", input=CRD)
    try:
        kube_cluster.wait_crd_established("widgets.example.com", timeout=30)
        good = ("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n"
                "spec: {size: 3}\n")
        # Discovery of the new type can lag a moment behind Established.
        wait_for(lambda: kube_cluster.kubectl("apply", "-n", namespace, "-f", "-",
                                              input=good, check=False).returncode == 0,
                 30, "kubectl apply of a Widget")
        w = json.loads(kube_cluster.kubectl("get", "widget", "w1", "-n", namespace,
                                            "-o", "json").stdout)
        assert w["spec"] == {"size": 3}
        bad = good.replace("w1", "w2").replace("size: 3", "size: 0")
        r = kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
        assert r.returncode != 0 and "spec.size" in r.stderr
    finally:
        kube_cluster.kubectl("delete", "crd", "widgets.example.com", "--wait=false",
                             check=False)


def _pod(name, resources, **spec):
    return {"metadata": {"name": name}, "spec": {
        "restartPolicy": "Never", **spec,
        "containers": [{"name": "main", "image": "none",
                        "command": [PY, "-c", "import time; time.sleep(600)"],
                        "resources": {"limits": resources}}]}}


@pytest.mark.parametrize("resource,count,expected_node", [
    ("nvidia.com/gpu", "1", "fake-node-gpu"),
    ("huawei.com/Ascend910", "2", "fake-node-npu"),
])
def test_accelerator_pod_lands_on_a_node_that_has_it(kube_cluster, core_v1, namespace,
                                                     resource, count, expected_node):
    core_v1.create_namespaced_pod(namespace, _pod("accel", {resource: count}))
    node = wait_for(lambda: core_v1.read_namespaced_pod("accel", namespace).spec.node_name,
                    30, "the pod to be bound")
    assert node == expected_node
    alloc = core_v1.read_node(node).status.allocatable
    assert int(alloc[resource]) >= int(count)
    wait_for(lambda: core_v1.read_namespaced_pod("accel", namespace).status.phase == "Running",
             30, "the pod to run")


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending(kube_cluster, core_v1,
                                                                   namespace):
    most = max(int((n.status.allocatable or {}).get("nvidia.com/gpu", "0"))
               for n in core_v1.list_node().items)
    core_v1.create_namespaced_pod(namespace, _pod("greedy", {"nvidia.com/gpu": str(most + 1)}))

    def unschedulable():
        p = core_v1.read_namespaced_pod("greedy", namespace)
        return next((c for c in p.status.conditions or []
                     if c.type == "PodScheduled" and c.status == "False"), None)

    cond = wait_for(unschedulable, 30, "PodScheduled=False")
    assert cond.reason == "Unschedulable" and "Insufficient nvidia.com/gpu" in cond.message
    time.sleep(2)  # and it stays that way
    p = core_v1.read_namespaced_pod("greedy", namespace)
    assert p.spec.node_name is None and p.status.phase == "Pending"


def test_node_selector_and_taints_are_respected(kube_cluster, core_v1, namespace):
    core_v1.patch_node("fake-node-cpu", {"spec": {"taints": [
        {"key": "autotune.dev/dedicated", "value": "x", "effect": "NoSchedule"}]}})
    try:
        core_v1.create_namespaced_pod(namespace, _pod(
            "picky", {"cpu": "100m"},
            nodeSelector={"kubernetes.io/hostname": "fake-node-cpu"}))
        core_v1.create_namespaced_pod(namespace, _pod(
            "tolerant", {"cpu": "100m"},
            nodeSelector={"kubernetes.io/hostname": "fake-node-cpu"},
            tolerations=[{"key": "autotune.dev/dedicated", "operator": "Exists",
                          "effect": "NoSchedule"}]))
        node = wait_for(lambda: core_v1.read_namespaced_pod("tolerant", namespace)
                        .spec.node_name, 30, "the tolerating pod to be bound")
        assert node == "fake-node-cpu"
        cond = wait_for(lambda: next((
            c for c in core_v1.read_namespaced_pod("picky", namespace).status.conditions or []
            if c.reason == "Unschedulable"), None), 30, "picky to be marked Unschedulable")
        assert "untolerated taint" in cond.message
        assert core_v1.read_namespaced_pod("picky", namespace).spec.node_name is None
    finally:
        core_v1.patch_node("fake-node-cpu", {"spec": {"taints": None}})


def test_pod_process_acts_as_its_service_account(kube_cluster, core_v1, namespace):
    code = textwrap.dedent("""
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
        config.load_kube_config()  # KUBECONFIG from the fake node: the pod's SA token
        review = client.AuthenticationV1Api().create_self_subject_review({})
        print("user", review.status.user_info.username)
        try:
            client.CoreV1Api().list_namespaced_secret("default")
        except ApiException as e:
            print("secrets", e.status)
    """)
    core_v1.create_namespaced_pod(namespace, {
        "metadata": {"name": "whoami"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "none", "command": [PY, "-c", code]}]}})
    wait_for(lambda: core_v1.read_namespaced_pod("whoami", namespace).status.phase
             in ("Succeeded", "Failed"), 60, "pod whoami to finish")
    log = kube_cluster.pod_log(namespace, "whoami")
    assert f"user system:serviceaccount:{namespace}:default" in log, log
    assert "secrets 403" in log, log


# The fake node's scheduling and env rules on their own (no cluster needed).
from kube_harness import node_agent as na  # noqa: E402


def _node(alloc, labels=None, taints=None):
    return {"metadata": {"name": "n", "labels": labels or {}},
            "spec": {"taints": taints or []}, "status": {"allocatable": alloc}}


def test_fit_rules_of_the_fake_scheduler():
    pod = {"spec": {"containers": [
        {"resources": {"requests": {"cpu": "500m"}, "limits": {"nvidia.com/gpu": "1"}}},
        {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
        "initContainers": [{"resources": {"requests": {"cpu": "2"}}}]}}
    req = na.pod_requests(pod)
    assert req == {"cpu": 2.0, "nvidia.com/gpu": 1.0, "memory": 2.0 ** 30}
    gpu = _node({"cpu": "4", "memory": "8Gi", "pods": "10", "nvidia.com/gpu": "1"})
    assert na.why_not(gpu, pod, {}, req) is None
    assert na.why_not(gpu, pod, {"nvidia.com/gpu": 1.0}, req) == "Insufficient nvidia.com/gpu"
    assert na.why_not(_node({"cpu": "4", "memory": "8Gi", "pods": "10"}), pod, {}, req) \
        == "Insufficient nvidia.com/gpu"
    assert na.why_not(gpu, pod, {"pods": 10}, req) == "Too many pods"
    pod["spec"]["nodeSelector"] = {"zone": "a"}
    assert "node selector" in na.why_not(gpu, pod, {}, req)
    tainted = _node({"cpu": "4", "memory": "8Gi", "pods": "10", "nvidia.com/gpu": "1"},
                    labels={"zone": "a"}, taints=[{"key": "k", "value": "v",
                                                   "effect": "NoSchedule"}])
    assert "untolerated taint" in na.why_not(tainted, pod, {}, req)
    pod["spec"]["tolerations"] = [{"key": "k", "operator": "Equal", "value": "v"}]
    assert na.why_not(tainted, pod, {}, req) is None
    pod["spec"]["tolerations"] = [{"key": "k", "operator": "Equal", "value": "other"}]
    assert na.why_not(tainted, pod, {}, req) is not None
    pod["spec"]["tolerations"] = [{"operator": "Exists"}]
    assert na.why_not(tainted, pod, {}, req) is None


def test_dependent_env_expansion():
    env = {"A": "1", "B": "two"}
    assert na.expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


def test_liveness_of_a_spawned_component_from_proc():
    """No cluster needed. A process still inside execve has an empty cmdline: alive (this was
    read as "exited" right after spawning); a zombie or another program on a reused pid is not."""
    from kube_harness.controlplane import is_our_process

    running = "4242 (kube-apiserver) S 1 4242"
    assert is_our_process(running, b"", "kube-apiserver")
    assert is_our_process(running, b"/cache/bin/kube-apiserver\0--v=1\0", "kube-apiserver")
    assert not is_our_process(running, b"/usr/bin/python3\0-m\0http.server\0", "kube-apiserver")
    assert not is_our_process("4242 (kube-apiserver) Z 1 4242", b"", "kube-apiserver")
    assert not is_our_process("", b"kube-apiserver", "kube-apiserver")
