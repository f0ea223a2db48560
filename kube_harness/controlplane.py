"""A Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager,
plus the fake-node agent (kube_harness.node_agent) that runs pods as local processes.

Everything lives in one state directory: certificates, etcd data, logs of each component,
the admin kubeconfig and state.json (pids, ports), which is all `down` needs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import build, pki as _pki

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


def default_state_dir() -> Path:
    env = os.environ.get("AUTOTUNE_CLUSTER_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".cache" / "cluster"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, crt: Path, key: Path, user: str) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "autotune-test", "cluster": {
            "server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(crt), "client-key-data": _b64(key)}}],
        "contexts": [{"name": "autotune-test", "context": {
            "cluster": "autotune-test", "user": user, "namespace": "default"}}],
        "current-context": "autotune-test",
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    path.chmod(0o600)


@dataclass
class ControlPlane:
    """A running (or stopped) control plane. `kubeconfig` is the admin kubeconfig."""

    state_dir: Path
    server: str = ""
    kubeconfig: Path = Path()
    admin_token: str = ""
    ca_file: Path = Path()
    bin_dir: Path = Path()
    ports: dict = field(default_factory=dict)
    pids: dict = field(default_factory=dict)
    started_seconds: float = 0.0

    # -- persistence -----------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def save(self) -> None:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        self.state_file.write_text(json.dumps(d, indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> "ControlPlane | None":
        f = Path(state_dir) / "state.json"
        if not f.is_file():
            return None
        d = json.loads(f.read_text())
        for k in ("state_dir", "kubeconfig", "ca_file", "bin_dir"):
            d[k] = Path(d[k])
        return cls(**d)

    # -- helpers for users -----------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for tools: KUBECONFIG and PATH with the cached kubectl/helm first."""
        return dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                    PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def api_client(self):
        """A kubernetes.client.ApiClient for the admin user."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def token_client(self, token: str):
        """A kubernetes.client.ApiClient authenticating with a bearer token (no client cert)."""
        from kubernetes import client

        c = client.Configuration()
        c.host = self.server
        c.ssl_ca_cert = str(self.ca_file)
        c.api_key = {"authorization": token}
        c.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(c)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([build.binary("kubectl"), *args], env=self.env(), input=input,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def wait_crd_established(self, name: str, timeout: float = 60) -> None:
        """Wait until the CustomResourceDefinition ``name`` (plural.group) is Established.

        Polls rather than `kubectl wait`: right after a CRD is applied to a fresh control
        plane, `kubectl wait --for=condition=Established` sometimes exited 1 at once instead
        of waiting (2 of ~17 runs of a test installing the CRD first thing), failing a test
        on a transient answer. Raises with kubectl's last output if the time runs out."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            r = self.kubectl("get", "crd", name, "-o", "json", check=False)
            if r.returncode == 0:
                conditions = json.loads(r.stdout).get("status", {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                    return
                last = f"conditions: {conditions}"
            else:
                last = r.stderr.strip()
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established within {timeout:g}s; last: {last}")
            time.sleep(0.2)

    def helm(self, *args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([build.binary("helm"), *args], env=self.env(),
                              capture_output=True, text=True, check=check, timeout=timeout)

    def new_namespace(self, prefix: str = "e2e", timeout: float = 30) -> str:
        """Create a uniquely named namespace and wait for its default ServiceAccount
        (pods are refused until the controller-manager has made it)."""
        from kubernetes import client

        api = client.CoreV1Api(self.api_client())
        ns = f"{prefix}-{secrets.token_hex(3)}"
        api.create_namespace({"metadata": {"name": ns}})
        wait_for(lambda: api.read_namespaced_service_account("default", ns), timeout,
                 f"ServiceAccount default in {ns}")
        return ns

    def pod_log(self, namespace: str, pod: str, container: str | None = None) -> str:
        """Stdout+stderr of a pod's container as the fake node kept it (all restarts)."""
        root = self.state_dir / "pods"
        matches = sorted(root.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime)
        if not matches:
            raise FileNotFoundError(f"no fake-node sandbox for pod {namespace}/{pod}")
        logs = sorted(matches[-1].glob("*.log"))
        if container:
            logs = [p for p in logs if p.stem == container]
        if not logs:
            raise FileNotFoundError(f"no log for {namespace}/{pod} container {container}")
        return logs[0].read_text(errors="replace")

    # -- lifecycle ------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> int:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 cwd=self.state_dir, env=env)
        self.pids[name] = p.pid
        self.save()
        return p.pid

    def _tail(self, name: str, n: int = 40) -> str:
        f = self.state_dir / "logs" / f"{name}.log"
        if not f.is_file():
            return ""
        return "\n".join(f.read_text(errors="replace").splitlines()[-n:])

    def _alive(self, name: str) -> bool:
        pid = self.pids.get(name)
        if not pid:
            return False
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:  # guard against a reused pid
                cmdline = f.read()
        except (FileNotFoundError, ProcessLookupError):
            return False
        return is_our_process(stat, cmdline, "kube_harness.node_agent" if name == "node-agent" else name)

    def _wait(self, what: str, probe, timeout: float, watch: tuple[str, ...]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name in watch:
                if not self._alive(name):
                    raise RuntimeError(f"{name} exited while waiting for {what}; "
                                       f"last lines of its log:\n{self._tail(name)}")
            try:
                if probe():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; "
                                   + "; ".join(f"{n} log:\n{self._tail(n)}" for n in watch))
            time.sleep(0.2)

    def _https_ok(self, port: int, path: str, token: str | None = None) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if token is None:  # controller-manager serves a self-signed cert on /healthz
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(f"https://127.0.0.1:{port}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, context=ctx, timeout=2) as r:
            return r.status == 200

    def start(self, *, nodes: str | None = None, timeout: float = 120, attempts: int = 2) -> "ControlPlane":
        """Start everything and wait until pods can run. `nodes`: JSON for the fake nodes.

        A component that exits while starting is retried once on fresh ports: the ports are
        picked free but only bound by the component a moment later, and parallel test
        sessions on one machine can take one in between ("address already in use").
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(nodes=nodes, timeout=timeout)
            except (RuntimeError, TimeoutError) as e:
                if attempt == attempts or "still running" in str(e):
                    raise
                print(f"[kube_harness] start attempt {attempt} failed, retrying on new ports: {e}",
                      file=sys.stderr, flush=True)
                self.stop()
        raise AssertionError("unreachable")

    def _start_once(self, *, nodes: str | None, timeout: float) -> "ControlPlane":
        t0 = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.load(self.state_dir) and any(self.load(self.state_dir).pids.values()):
            old = self.load(self.state_dir)
            if any(old._alive(n) for n in old.pids):
                raise RuntimeError(f"a cluster from {self.state_dir} is still running; "
                                   "stop it first (python -m kube_harness down)")
        for sub in ("etcd", "pki", "pods", "logs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        self.bin_dir = build.bin_dir()
        b = lambda n: str(self.bin_dir / n)  # noqa: E731
        self.ports = {n: _free_port() for n in
                      ("etcd_client", "etcd_peer", "apiserver", "controller_manager", "kubelet")}
        p = self.ports
        self.pids = {}

        etcd_url = f"http://127.0.0.1:{p['etcd_client']}"
        peer_url = f"http://127.0.0.1:{p['etcd_peer']}"
        self._spawn("etcd", [
            b("etcd"), "--name=default", f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync=true",
            "--quota-backend-bytes=2147483648", "--log-level=warn",
        ])

        pk = _pki.generate(self.state_dir / "pki", service_ip=SERVICE_IP)
        self.ca_file = pk.ca_crt
        self.admin_token = secrets.token_hex(16)
        tokens = self.state_dir / "pki" / "tokens.csv"
        tokens.write_text(f'{self.admin_token},autotune-admin,autotune-admin,"system:masters"\n')
        tokens.chmod(0o600)
        self.server = f"https://127.0.0.1:{p['apiserver']}"

        self._spawn("kube-apiserver", [
            b("kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={p['apiserver']}",
            f"--tls-cert-file={pk.apiserver_crt}", f"--tls-private-key-file={pk.apiserver_key}",
            f"--client-ca-file={pk.ca_crt}", f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            f"--requestheader-client-ca-file={pk.front_proxy_ca_crt}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pk.front_proxy_client_crt}",
            f"--proxy-client-key-file={pk.front_proxy_client_key}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pk.sa_pub}",
            f"--service-account-signing-key-file={pk.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",  # a loopback advertise address is not valid there
            "--allow-privileged=true",
            f"--kubelet-client-certificate={pk.apiserver_kubelet_client_crt}",
            f"--kubelet-client-key={pk.apiserver_kubelet_client_key}",
            f"--kubelet-certificate-authority={pk.ca_crt}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--cert-dir={self.state_dir / 'pki'}",
            "--v=1",
        ])

        def ready():
            return self._https_ok(p["apiserver"], "/readyz", self.admin_token)

        self._wait("kube-apiserver /readyz", ready, timeout, ("etcd", "kube-apiserver"))

        self.kubeconfig = self.state_dir / "kubeconfig"
        write_kubeconfig(self.kubeconfig, self.server, pk.ca_crt, pk.admin_crt, pk.admin_key,
                         "autotune-admin")
        cm_kubeconfig = self.state_dir / "pki" / "controller-manager.kubeconfig"
        write_kubeconfig(cm_kubeconfig, self.server, pk.ca_crt, pk.controller_manager_crt,
                         pk.controller_manager_key, "system:kube-controller-manager")
        self._spawn("kube-controller-manager", [
            b("kube-controller-manager"),
            f"--kubeconfig={cm_kubeconfig}",
            f"--authentication-kubeconfig={cm_kubeconfig}",
            f"--authorization-kubeconfig={cm_kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={p['controller_manager']}",
            f"--cert-dir={self.state_dir / 'pki' / 'controller-manager'}",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pk.sa_key}",
            f"--root-ca-file={pk.ca_crt}",
            f"--cluster-signing-cert-file={pk.ca_crt}",
            f"--cluster-signing-key-file={pk.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--v=1",
        ])
        agent_env = dict(os.environ)
        if nodes:
            agent_env["AUTOTUNE_FAKE_NODES"] = nodes
        self._spawn("node-agent", [
            sys.executable, "-m", "kube_harness.node_agent",
            f"--kubeconfig={self.kubeconfig}", f"--state-dir={self.state_dir}",
            f"--port={p['kubelet']}", f"--server={self.server}",
            f"--ca={pk.ca_crt}", f"--cert={pk.kubelet_crt}", f"--key={pk.kubelet_key}",
        ], env=agent_env)
        self.save()

        cm_and_all = ("etcd", "kube-apiserver", "kube-controller-manager", "node-agent")
        self._wait("kube-controller-manager /healthz",
                   lambda: self._https_ok(p["controller_manager"], "/healthz"),
                   timeout, cm_and_all)
        from kubernetes import client

        api = client.CoreV1Api(self.api_client())
        self._wait("the default ServiceAccount in namespace default",
                   lambda: api.read_namespaced_service_account("default", "default"),
                   timeout, cm_and_all)

        def nodes_ready():
            items = api.list_node().items
            return items and all(
                any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
                for n in items)

        self._wait("fake nodes Ready", nodes_ready, timeout, cm_and_all)
        self.started_seconds = round(time.monotonic() - t0, 2)
        self.save()
        return self

    def stop(self, *, remove_data: bool = True) -> None:
        """Stop the agent first (it kills its pods' processes), then the control plane."""
        order = ["node-agent", "kube-controller-manager", "kube-apiserver", "etcd"]
        for name in order + [n for n in self.pids if n not in order]:
            pid = self.pids.get(name)
            if not pid or not self._alive(name):
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while self._alive(name) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.1)
            if self._alive(name):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _reap(pid)
        self.pids = {}
        if self.state_file.parent.is_dir():
            self.save()
        if remove_data:
            shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)

    def status(self) -> dict[str, bool]:
        return {n: self._alive(n) for n in self.pids}


def is_our_process(stat: str, cmdline: bytes, marker: str) -> bool:
    """From /proc/<pid>/stat and /proc/<pid>/cmdline: alive (not a zombie) and ours."""
    try:
        if stat.split(") ", 1)[1][0] == "Z":
            return False
    except IndexError:
        return False
    # Empty while execve is still setting up the new image: Popen returns (vfork released,
    # CLOEXEC pipe closed) before the kernel has written argv, so a check right after
    # spawning read "" and took a starting kube-apiserver for dead (the e2e start failing
    # with an empty log), and stop() then left it running.
    if not cmdline:
        return True
    return marker.encode() in cmdline


def wait_for(probe, timeout: float = 30, what: str = "condition", interval: float = 0.2):
    """Call probe() until it returns something truthy (exceptions count as not yet);
    return that value, or raise TimeoutError naming `what` and the last exception."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            v = probe()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - e.g. 404 until the object appears
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def up(state_dir: Path | None = None, **kw) -> ControlPlane:
    build.ensure_built()
    cp = ControlPlane(Path(state_dir or default_state_dir()))
    try:
        return cp.start(**kw)
    except BaseException:
        cp.stop()
        raise
