"""Several operator replicas with leader election, on the real kube-apiserver: `autotune
operator --leader-election` processes sharing one Lease, an experiment whose trials run on
the harness's fake nodes as local processes.

One story, in order (each step needs the one before):
1. replica a leads, replica b waits as a standby (log, Lease, metrics, health endpoint);
2. only a launches trials; a is SIGKILLed mid-experiment; b takes over once a's lease
   has expired (never before: the Lease's times say so), adopts the running trials and
   finishes the experiment DONE with exactly maxTrialNum trials, none lost, none launched
   twice (logs, Jobs, pods, Events);
3. b stopped cleanly (SIGTERM) releases the Lease: the standby c takes over before b's
   lease could have expired;
4. a Lease taken from the leader (written by someone else) makes it exit at once, non-zero.

And a leader cut off from the API server (a TCP proxy that stops forwarding, as a network
partition: calls hang, nothing is refused) exits non-zero before its lease expires.

Plus: two Electors racing on the real API server, exactly one wins (the 409 path).
The failover times are printed (pytest -s shows them), not asserted as speed.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from autotune_operator.leader import Timing
from autotune_operator.leader_election import LOST_EXIT_CODE, Elector, KubernetesLeases
from kube_harness.experiments import wait_for_phase
from tests.e2e.test_operator_helpers import (
    LABEL,
    TRIAL_SCRIPT,
    OperatorProcess,
    TunerServer,
    apply_manifest,
    events_of,
    install_crd,
    jobs,
    trial_experiment,
    wait_for,
)

LEASE = "autotune-operator"
SHORT = 5  # seconds: replica a's lease, so the failover after its SIGKILL is quick
LONG = 60  # replica b's: its clean handover must come long before this could expire
RETRY = 0.5  # seconds between looks at the Lease (and renewals), every replica


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Replica(OperatorProcess):
    """An operator process with leader election on, its own metrics and health ports."""

    def __init__(self, cluster, server, ns: str, tmp: Path, identity: str, lease_seconds: int,
                 retry_seconds: float) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        super().__init__(cluster, server, [ns], tmp / f"operator-{identity}.log", extra_env={
            "AUTOTUNE_WORKLOAD_KIND": "job",
            "AUTOTUNE_RESYNC_SECONDS": "0.5",
            "AUTOTUNE_LEADER_ELECTION": "true",
            "AUTOTUNE_LEADER_ELECTION_NAMESPACE": ns,
            "AUTOTUNE_LEADER_ELECTION_IDENTITY": identity,
            "AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS": str(lease_seconds),
            # Every replica looks as often, whatever its lease: a standby's failover time is
            # the holder's lease plus up to one of its own retry periods.
            "AUTOTUNE_LEADER_ELECTION_RETRY_SECONDS": str(retry_seconds),
            "AUTOTUNE_METRICS_ENDPOINT": f"http://127.0.0.1:{self.metrics_port}/metrics",
            "AUTOTUNE_LIVENESS_ENDPOINT": f"http://127.0.0.1:{self.health_port}/healthz",
        })
        self.identity = identity

    def metric(self, name: str) -> float | None:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def health(self) -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5) as r:
                return r.status, r.read().decode()
        except OSError:
            return None

    def adopted_trials(self) -> list[str]:
        """Trials whose Job this process found already there when it launched them."""
        return [line.rsplit("/", 1)[1].strip() for line in self.output().splitlines() if "adopted existing Job" in line]

    def started_trials(self) -> list[str]:
        """Trials this process launched (controller.py logs each), in order."""
        return [line.split(" trial ", 1)[1].split()[0] for line in self.output().splitlines()
                if " trial " in line and " started with " in line]


def lease(cluster, ns: str) -> dict:
    r = cluster.kubectl("get", "lease", LEASE, "-n", ns, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def holder(cluster, ns: str) -> str:
    return (lease(cluster, ns).get("spec") or {}).get("holderIdentity") or ""


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    install_crd(kube_cluster)
    tmp = tmp_path_factory.mktemp("leader")
    script = tmp / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    ns = kube_cluster.new_namespace("leader")
    server = TunerServer(tmp / "tuner.db")
    server.start()
    replicas: list[Replica] = []
    try:
        yield {"ns": ns, "tmp": tmp, "script": script, "server": server, "replicas": replicas}
    finally:
        for r in replicas:
            r.stop()
        server.stop()


def replica(kube_cluster, env, identity: str, lease_seconds: int) -> Replica:
    r = Replica(kube_cluster, env["server"], env["ns"], env["tmp"], identity, lease_seconds, RETRY)
    env["replicas"].append(r)
    r.start()
    return r


def test_one_replica_acts_and_a_standby_takes_over_without_losing_or_repeating_trials(kube_cluster, env):
    ns, name = env["ns"], "failover"
    a = replica(kube_cluster, env, "a", SHORT)
    wait_for(lambda: holder(kube_cluster, ns) == "a", 60, "replica a to hold the Lease", interval=0.2)
    b = replica(kube_cluster, env, "b", LONG)
    wait_for(lambda: "waiting for leadership: held by a" in b.output(), 60, "replica b to wait as a standby")

    # The standby serves its metrics (not leading) and a health endpoint meanwhile.
    wait_for(lambda: a.metric("autotune_operator_leader") == 1.0, 30, "a's leader gauge at 1")
    assert b.metric("autotune_operator_leader") == 0.0
    status, body = b.health() or (0, "")
    assert status == 200 and body.startswith("standby"), (status, body)

    space = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4, 5, 6]}, "sleep": {"_type": "choice", "_value": [1.0]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=6, concurrency=2, space=space,
                                                      tuner="GridSearch"))
    wait_for(lambda: len(jobs(kube_cluster, ns, name)) >= 3, 90, "three trial Jobs (one ended, two running)")
    assert a.started_trials() and not b.started_trials(), "only the leader launches trials"
    assert b.metric("autotune_operator_trials_created_total") == 0.0

    a.kill()  # SIGKILL: no release; the Lease stays a's until it expires
    killed = time.time()
    last = lease(kube_cluster, ns)["spec"]
    assert last["holderIdentity"] == "a"
    wait_for(lambda: holder(kube_cluster, ns) == "b", SHORT + 30, "b to take the Lease over", interval=0.1)
    took = lease(kube_cluster, ns)["spec"]
    acquired = parse_time(took["acquireTime"])
    print(f"\nfailover after SIGKILL of the leader: {acquired - killed:.2f}s (lease {SHORT}s); "
          f"{acquired - parse_time(last['renewTime']):.2f}s after its last renewal")
    # Never before a's lease expired: a whole lease duration after its last renewal.
    assert acquired >= parse_time(last["renewTime"]) + SHORT
    assert took["leaseTransitions"] == last.get("leaseTransitions", 0) + 1

    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=b.output)["status"]
    assert st["trials"]["total"] == 6 and st["trials"]["succeeded"] == 6, st
    names = sorted(f"{name}-{i}" for i in range(6))
    assert sorted(j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)) == names
    pods = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"{LABEL}={name}", "-o", "json").stdout)["items"]
    assert len(pods) == 6, "one pod per trial: nothing ran twice"
    ended = sorted(e["message"].split()[1] for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialSucceeded")
    assert ended == names, f"one TrialSucceeded event per trial across the failover: {ended}"
    # A trial a launched that was not yet seen running is launched again by b, and found
    # to exist (adopted: the create is refused with 409); every other one is new to b.
    # (a may have been killed between creating a Job and logging it: adopted covers that.)
    by_a, adopted, by_b = a.started_trials(), b.adopted_trials(), b.started_trials()
    created_by_b = [t for t in by_b if t not in adopted]
    assert created_by_b, "the new leader launched the rest"
    assert len(set(by_a)) == len(by_a) and len(set(created_by_b)) == len(created_by_b), (by_a, by_b)
    assert not set(created_by_b) & set(by_a), (by_a, by_b, adopted)  # never created by both
    assert set(by_a) | set(adopted) | set(created_by_b) == set(names), (by_a, by_b, adopted)
    assert b.metric("autotune_operator_leader") == 1.0
    assert b.metric('autotune_operator_workloads_created_total{family="job"}') == len(created_by_b)


def test_a_clean_stop_hands_over_at_once(kube_cluster, env):
    ns = env["ns"]
    b = next(r for r in env["replicas"] if r.identity == "b")
    assert holder(kube_cluster, ns) == "b"
    c = replica(kube_cluster, env, "c", SHORT)
    wait_for(lambda: "waiting for leadership: held by b" in c.output(), 60, "replica c to wait as a standby")
    before = lease(kube_cluster, ns)["spec"]
    assert before["leaseDurationSeconds"] == LONG
    stopped = time.time()
    b.stop()  # SIGTERM
    assert b.proc is not None and b.proc.returncode == 0, b.output()[-3000:]
    assert "released the Lease" in b.output()
    wait_for(lambda: holder(kube_cluster, ns) == "c", 60, "c to take the released Lease", interval=0.1)
    acquired = parse_time(lease(kube_cluster, ns)["spec"]["acquireTime"])
    print(f"\nhandover after SIGTERM of the leader: {acquired - stopped:.2f}s (its lease: {LONG}s)")
    # Released, not expired: c did not wait out b's lease.
    assert acquired < parse_time(before["renewTime"]) + LONG
    wait_for(lambda: c.metric("autotune_operator_leader") == 1.0, 30, "c's leader gauge at 1")


def test_a_leader_whose_lease_is_taken_exits_at_once(kube_cluster, env):
    ns = env["ns"]
    c = next(r for r in env["replicas"] if r.identity == "c")
    assert holder(kube_cluster, ns) == "c"
    coord = client.CoordinationV1Api(kube_cluster.api_client())
    current = coord.read_namespaced_lease(LEASE, ns)
    current.spec.holder_identity = "intruder"
    current.spec.renew_time = dt.datetime.now(dt.timezone.utc)
    coord.replace_namespaced_lease(LEASE, ns, current)
    assert c.proc is not None
    assert c.proc.wait(timeout=30) == LOST_EXIT_CODE, c.output()[-3000:]
    assert "leader election lost (another replica holds the Lease" in c.output()


def test_two_electors_racing_on_the_api_server_one_wins(kube_cluster):
    ns = kube_cluster.new_namespace("lease-race")
    api = kube_cluster.api_client()
    electors = [Elector(KubernetesLeases(api, ns, "race"), f"e{i}", Timing(15, 10.0, 2.0)) for i in range(4)]
    go = threading.Barrier(len(electors))
    results: dict[str, str] = {}

    def run(e: Elector) -> None:
        go.wait()
        results[e.identity] = e.try_once().action.value

    threads = [threading.Thread(target=run, args=(e,)) for e in electors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [e.identity for e in electors if e.leading]
    assert len(winners) == 1, results
    assert sorted(results.values()) == ["acquire", "wait", "wait", "wait"], results
    got = client.CoordinationV1Api(api).read_namespaced_lease("race", ns)
    assert got.spec.holder_identity == winners[0] and got.spec.lease_duration_seconds == 15
    # The winner renews on the real API (replace with its resourceVersion); a loser's stale write is refused.
    (w,) = [e for e in electors if e.leading]
    assert w.renew_once() and w.leading
    loser = next(e for e in electors if not e.leading)
    assert loser.try_once().action.value == "wait"


class Partition:
    """A TCP proxy to the API server that can stop forwarding (bounded: it lives as long as
    the test; every thread is a daemon and ends when its sockets close)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.socks.append(conn)
            if self.cut.is_set():
                continue  # accepted and never answered
            up = socket.create_connection(self.upstream)
            self.socks.append(up)
            threading.Thread(target=self._pump, args=(conn, up), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.cut.is_set():
                continue  # swallowed: the other side waits for an answer that never comes
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def test_a_leader_cut_off_from_the_api_server_exits_before_its_lease_expires(kube_cluster, env, tmp_path):
    ns = kube_cluster.new_namespace("partition")
    host, port = kube_cluster.server.removeprefix("https://").rsplit(":", 1)
    proxy = Partition((host, int(port)))
    try:
        kc = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
        for c in kc["clusters"]:
            c["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"  # the API server's cert names 127.0.0.1
        kubeconfig = tmp_path / "via-proxy.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(kc))
        lease_seconds = 6  # renew deadline 4 s: the leader must be gone 2 s before a standby could take over
        r = Replica(kube_cluster, env["server"], ns, tmp_path, "p", lease_seconds, RETRY)
        r.extra_env["KUBECONFIG"] = str(kubeconfig)
        env["replicas"].append(r)
        r.start()
        wait_for(lambda: holder(kube_cluster, ns) == "p", 60, "replica p to hold the Lease", interval=0.2)
        wait_for(lambda: r.metric("autotune_operator_leader") == 1.0, 30, "p to run the operator")
        time.sleep(2 * RETRY)  # a few renewals through the proxy
        proxy.cut.set()
        cut = time.time()
        assert r.proc is not None
        code = wait_for(lambda: r.proc.poll() is not None and (r.proc.returncode,), lease_seconds + 30,
                        "p to exit", interval=0.05)[0]
        exited = time.time()
        last = parse_time(lease(kube_cluster, ns)["spec"]["renewTime"])  # read directly, not through the proxy
        print(f"\npartitioned leader exited {exited - cut:.2f}s after the cut, {exited - last:.2f}s after its last "
              f"renewal (lease {lease_seconds}s)")
        assert code == LOST_EXIT_CODE, r.output()[-3000:]
        assert "leader election lost (could not renew" in r.output()
        assert exited < last + lease_seconds, "it could still act when a standby may take over"
        assert holder(kube_cluster, ns) == "p"  # never released: it could not reach the API server
    finally:
        proxy.close()
