"""Leader election for `autotune operator --leader-election`: the Lease's I/O and the
threads around leader.py's rules.

- :class:`KubernetesLeases` reads and writes one coordination.k8s.io/v1 Lease with
  optimistic concurrency (a replace carries the resourceVersion it read; a 409 means
  another replica wrote first: that one won);
- :class:`Elector` waits until this replica holds the Lease (:meth:`Elector.acquire`),
  then renews it in a thread (:meth:`Elector.start_renewing`). When it cannot renew for
  ``renew_deadline`` seconds, or finds another replica holding the Lease, it calls
  ``on_lost``: the operator exits at once, non-zero (controller-runtime's behaviour; the
  pod restarts as a standby), so two replicas never act at once. A watchdog thread makes
  that call even if a renewal hangs past the deadline;
- on a clean shutdown the leader releases the Lease (:meth:`Elector.release`), and a
  standby takes over at its next look rather than after the lease duration.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from kubernetes import client
from kubernetes.client.rest import ApiException

from autotune_operator.leader import (
    Action,
    Decision,
    LeaseRecord,
    Observation,
    Timing,
    decide,
    lost_after,
    observe,
    release,
)
from autotune_operator.metrics_server import MetricsServer, parse_endpoint

log = logging.getLogger("autotune.operator.leader")

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_LEASE_NAME = "autotune-operator"
# The exit status of an operator that lost its Lease (it may not act any more; Kubernetes
# restarts the container, which then waits as a standby).
LOST_EXIT_CODE = 3

TRUE = {"1", "true", "yes", "on"}
FALSE = {"", "0", "false", "no", "off"}


class Conflict(Exception):
    """Another replica changed the Lease since it was read (HTTP 409), or created it first."""


class LeaseStore(Protocol):
    def get(self, timeout: float) -> LeaseRecord | None: ...

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord: ...

    def replace(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        """Write ``record`` if the Lease's resourceVersion is still ``record.resource_version``."""
        ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> dt.datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class ElectionSettings:
    namespace: str
    name: str
    identity: str
    timing: Timing

    @classmethod
    def from_env(cls, env: Mapping[str, str], sa_namespace_file: str = SERVICE_ACCOUNT_NAMESPACE,
                 suffix: Callable[[], str] = lambda: secrets.token_hex(3)) -> "ElectionSettings | None":
        """The settings from AUTOTUNE_LEADER_ELECTION* (None: leader election is off, the
        default of a plain `autotune operator`; the Helm chart turns it on)."""
        raw = env.get("AUTOTUNE_LEADER_ELECTION", "").strip().lower()
        if raw not in TRUE | FALSE:
            raise SystemExit(f"AUTOTUNE_LEADER_ELECTION must be true or false, not {env['AUTOTUNE_LEADER_ELECTION']!r}")
        if raw in FALSE:
            return None
        namespace = (env.get("AUTOTUNE_LEADER_ELECTION_NAMESPACE", "").strip() or env.get("POD_NAMESPACE", "").strip()
                     or _read(sa_namespace_file))
        if not namespace:
            raise SystemExit("leader election needs the Lease's namespace: set AUTOTUNE_LEADER_ELECTION_NAMESPACE "
                             "(--leader-election-namespace) or POD_NAMESPACE (outside a pod there is no "
                             f"{sa_namespace_file} to read it from)")
        identity = env.get("AUTOTUNE_LEADER_ELECTION_IDENTITY", "").strip()
        if not identity:
            # The pod's name says which pod leads; the suffix makes a restarted container a
            # new candidate, never mistaken for the incarnation whose lease may still run.
            identity = f"{env.get('POD_NAME', '').strip() or socket.gethostname()}_{suffix()}"
        lease = _whole_seconds("AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS",
                               env.get("AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS", "15"))
        deadline = _optional_seconds(env, "AUTOTUNE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS")
        retry = _optional_seconds(env, "AUTOTUNE_LEADER_ELECTION_RETRY_SECONDS")
        try:
            timing = Timing.for_lease(lease, deadline, retry)
        except ValueError as e:
            raise SystemExit(f"AUTOTUNE_LEADER_ELECTION_*: {e}") from None
        return cls(namespace, env.get("AUTOTUNE_LEADER_ELECTION_LEASE", "").strip() or DEFAULT_LEASE_NAME, identity,
                   timing)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _whole_seconds(var: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"{var} must be a whole number of seconds >= 1, not {raw!r}")
    return value


def _optional_seconds(env: Mapping[str, str], var: str) -> float | None:
    raw = env.get(var, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise SystemExit(f"{var} must be a number of seconds > 0, not {raw!r}")
    return value


class KubernetesLeases:
    """One Lease through CoordinationV1Api. Reads take the raw JSON (the record keeps the
    MicroTime text as the API wrote it); writes send plain dicts (micro_time's format)."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.api = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name

    def get(self, timeout: float) -> LeaseRecord | None:
        try:
            resp = self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False,
                                                  _request_timeout=timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return LeaseRecord.from_lease(json.loads(resp.data))

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": record.spec()}
        return self._write(lambda: self.api.create_namespaced_lease(self.namespace, body, _preload_content=False,
                                                                    _request_timeout=timeout))

    def replace(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": record.resource_version},
                "spec": record.spec()}
        return self._write(lambda: self.api.replace_namespaced_lease(self.name, self.namespace, body,
                                                                     _preload_content=False, _request_timeout=timeout))

    @staticmethod
    def _write(call: Callable[[], Any]) -> LeaseRecord:
        try:
            resp = call()
        except ApiException as e:
            if e.status == 409:  # a stale resourceVersion, or created by another replica first
                raise Conflict(str(e.reason)) from None
            raise
        return LeaseRecord.from_lease(json.loads(resp.data))


def _describe(e: BaseException) -> str:
    if isinstance(e, ApiException):
        hint = " (the operator's service account needs get/create/update on leases there)" if e.status == 403 else ""
        return f"HTTP {e.status} {e.reason}{hint}"
    return f"{type(e).__name__}: {e}"


class Elector:
    """One replica's side of the election (see the module's docstring)."""

    def __init__(self, store: LeaseStore, identity: str, timing: Timing, clock: Clock | None = None,
                 where: str = "") -> None:
        self.store = store
        self.identity = identity
        self.timing = timing
        self.clock: Clock = clock or SystemClock()
        self.where = where  # "namespace/name", for the log
        self._lock = threading.Lock()
        self._seen: Observation | None = None
        self._held: LeaseRecord | None = None  # the Lease as we last wrote it, while we lead
        self._last_renewed: float | None = None  # monotonic time we sent the last renewal that succeeded
        self._lost = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._waiting_for: str | None = None  # the holder we last logged waiting for
        self._last_error: str | None = None

    @property
    def leading(self) -> bool:
        with self._lock:
            return self._held is not None and not self._lost

    # ----- one step: read, decide, write -----
    def try_once(self) -> Decision:
        """Read the Lease, decide, and carry out an acquire or renewal. Returns the decision
        taken; after ACQUIRE or RENEW this replica leads unless the write lost a race (then
        the decision returned is WAIT)."""
        sent = self.clock.monotonic()
        record = self.store.get(self._timeout(sent))
        now = self.clock.monotonic()
        with self._lock:
            self._seen = observe(self._seen, record, now)
            seen = self._seen
        d = decide(seen, self.identity, now, self.clock.wall(), self.timing.lease_duration)
        if d.action is Action.WAIT:
            return d
        assert d.write is not None
        try:
            written = (self.store.create(d.write, self._timeout(sent)) if record is None
                       else self.store.replace(d.write, self._timeout(sent)))
        except Conflict:
            # Another replica wrote between our read and our write: it won this round.
            return Decision(Action.WAIT, reason="another replica wrote the Lease first")
        with self._lock:
            self._held = written
            self._last_renewed = sent
            self._seen = observe(self._seen, written, self.clock.monotonic())
        return d

    def _timeout(self, started: float) -> float:
        """A request never outlasts the time this replica may still lead (nor a retry period
        when it does not lead): a hung call cannot hold the renewal loop past the deadline."""
        with self._lock:
            last = self._last_renewed if self._held is not None else None
        if last is None:
            return max(self.timing.retry_period, 1.0)
        return max(0.05, last + self.timing.renew_deadline - started)

    # ----- standby: wait until we lead -----
    def acquire(self, stop: threading.Event) -> bool:
        """Block until this replica holds the Lease (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                d = self.try_once()
            except Exception as e:  # API unreachable, forbidden, ...: log (once per kind) and retry
                msg = _describe(e)
                if msg != self._last_error:
                    log.warning("leader election: cannot read or write the Lease %s: %s; retrying every %ss",
                                self.where, msg, self.timing.retry_period)
                    self._last_error = msg
            else:
                self._last_error = None
                if d.action is not Action.WAIT:
                    log.info("leader election: %s leads now (Lease %s, %s)", self.identity, self.where, d.reason)
                    return True
                self._log_waiting(d)
                if d.expires_at is not None:  # look again right when the holder's lease would expire
                    stop.wait(min(self.timing.retry_period, max(0.01, d.expires_at - self.clock.monotonic())))
                    continue
            stop.wait(self.timing.retry_period)
        return False

    def _log_waiting(self, d: Decision) -> None:
        if d.expires_at is None:
            return  # lost a race to write: the next look says who holds it
        with self._lock:
            holder = self._seen.record.holder if self._seen and self._seen.record else "?"
        if holder == self._waiting_for:
            return
        self._waiting_for = holder
        until = "?"
        if d.expires_at is not None:
            at = self.clock.wall() + dt.timedelta(seconds=d.expires_at - self.clock.monotonic())
            until = at.strftime("%H:%M:%SZ")
        log.info("waiting for leadership: held by %s until %s unless renewed (Lease %s; I am %s)",
                 holder, until, self.where, self.identity)

    # ----- leader: keep it -----
    def renew_once(self) -> bool:
        """One renewal. False when leadership is lost for certain (another replica holds the
        Lease); a failed call is only logged (the deadline decides when that is fatal)."""
        sent = self.clock.monotonic()
        with self._lock:
            held = self._held
        if held is None:
            return False
        try:
            d = decide(Observation(held, sent), self.identity, sent, self.clock.wall(), self.timing.lease_duration)
            assert d.action is Action.RENEW and d.write is not None
            written = self.store.replace(d.write, self._timeout(sent))
        except Conflict:
            try:  # someone wrote the Lease: still ours (a lost response of our own)? then go on from it
                current = self.store.get(self._timeout(sent))
            except Exception as e:
                log.warning("leader election: renewal conflicted and the Lease cannot be read: %s", _describe(e))
                return True
            if current is None or current.holder != self.identity:
                with self._lock:
                    self._held = None
                return False
            with self._lock:
                self._held = current
            return True
        except Exception as e:
            log.warning("leader election: could not renew the Lease %s: %s", self.where, _describe(e))
            return True
        with self._lock:
            self._held = written
            self._last_renewed = sent
        return True

    def deadline_passed(self) -> bool:
        with self._lock:
            last = self._last_renewed
        return last is None or lost_after(last, self.timing.renew_deadline, self.clock.monotonic())

    def start_renewing(self, on_lost: Callable[[str], None]) -> None:
        """Renew every retry period in a thread; call ``on_lost(reason)`` once, from whichever
        thread notices first, when leadership is lost. A second thread watches the deadline
        alone, so a renewal stuck in a call cannot delay the stop."""
        fired = threading.Event()

        def lost(reason: str) -> None:
            with self._lock:
                if self._lost or self._stop.is_set():
                    return
                self._lost = True
            fired.set()
            on_lost(reason)

        def renew() -> None:
            while not self._stop.wait(self.timing.retry_period) and not fired.is_set():
                if not self.renew_once():
                    lost(f"another replica holds the Lease {self.where} now")
                    return
                if self.deadline_passed():
                    lost(f"could not renew the Lease {self.where} for {self.timing.renew_deadline:g}s")
                    return

        def watchdog() -> None:
            while not self._stop.is_set() and not fired.is_set():
                with self._lock:
                    last = self._last_renewed or 0.0
                remaining = last + self.timing.renew_deadline - self.clock.monotonic()
                if remaining <= 0:
                    lost(f"could not renew the Lease {self.where} for {self.timing.renew_deadline:g}s")
                    return
                self._stop.wait(min(remaining, self.timing.retry_period))

        self._stop.clear()
        self._threads = [threading.Thread(target=renew, name="lease renewal", daemon=True),
                         threading.Thread(target=watchdog, name="lease deadline", daemon=True)]
        for t in self._threads:
            t.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timing.renew_deadline)
        self._threads = []

    def release(self) -> bool:
        """Clear the holder (a clean shutdown), so a standby need not wait out the lease.
        False when it was not ours any more or the write failed (it then expires)."""
        with self._lock:
            held, lost = self._held, self._lost
            self._held = None
        if held is None or lost:
            return False
        freed = release(held, self.identity, self.clock.wall())
        if freed is None:
            return False
        try:
            self.store.replace(freed, max(self.timing.retry_period, 1.0))
        except Exception as e:  # a Conflict too: someone else's now
            log.warning("leader election: could not release the Lease %s (%s); it expires on its own", self.where,
                        _describe(e))
            return False
        log.info("leader election: %s released the Lease %s", self.identity, self.where)
        return True


def run_elected(elector: Elector, run_operator: Callable[[], None], *, health_endpoint: str | None = None,
                on_leader: Callable[[bool], None] = lambda _leading: None,
                on_lost: Callable[[str], None] | None = None) -> int:
    """The operator process with leader election: wait as a standby (serving a health
    endpoint at ``health_endpoint`` meanwhile, so a liveness probe does not restart a
    healthy standby), then run the operator (``run_operator``, kopf, which serves its own
    liveness endpoint there from then on) while renewing the Lease, and release the Lease
    when it returns. SIGTERM while waiting ends the process cleanly (0)."""
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    health = None
    if health_endpoint:
        health = MetricsServer(parse_endpoint(health_endpoint), lambda: b"standby: waiting for leadership\n").start()
    try:
        on_leader(False)
        leads = elector.acquire(stop)
    finally:
        if health is not None:
            health.stop()  # the port is kopf's from here on
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # kopf installs its own for a graceful stop
    if not leads:
        log.info("leader election: stopped while waiting for leadership")
        return 0
    on_leader(True)
    elector.start_renewing(on_lost or exit_lost)
    try:
        if not stop.is_set():
            run_operator()
    finally:
        elector.stop_renewing()
        elector.release()
        on_leader(False)
    return 0


def exit_lost(reason: str) -> None:
    """The operator's ``on_lost``: stop acting at once. No graceful kopf shutdown (its daemons
    may take seconds to stop, and another replica may lead by then): the process ends here;
    trial workloads are in Kubernetes and the tuner server, and the next leader adopts them."""
    log.critical("leader election lost (%s): exiting so that this replica stops acting", reason)
    for h in logging.getLogger().handlers:
        try:
            h.flush()
        except Exception:
            pass
    os._exit(LOST_EXIT_CODE)
