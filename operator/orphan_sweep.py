"""The durable backstop for tuner-server state that outlived its AutoTuneExperiment.

The finalizer's delete and :class:`~autotune_operator.orphans.PendingDeletes` (fast retries,
in memory) cover the usual case. This sweep covers the rest, such as an operator restart
while the tuner server was down: it lists the tuner server's experiments and deletes the
ones whose owner (the ``{namespace, name, uid}`` the operator stored on registration) is
gone. It runs when the operator starts and then every ``sweep_seconds``.

Deleting live state would lose an experiment's history, so :func:`decide` deletes only on
positive proof that the owner is gone, and keeps everything else:

- no owner recorded (local mode, or created by an operator older than this sweep): keep;
- the owner's namespace is not one this operator watches (another operator's): keep;
- the owner's uid is not the experiment's id (not how this operator registers): keep;
- the GET of namespace/name answered 404, or an object with a different uid (deleted and
  created again under the same name): delete;
- the same uid, or any other answer of the API server (an error, a timeout): keep.

Two operators sharing a tuner server in one cluster each sweep only their own namespaces.
Operators of *different* clusters must not share one with the sweep on (a 404 in one
cluster says nothing about the other's objects): set ``sweep_seconds`` to 0 there.

:func:`decide` is pure; :func:`sweep_once` does the I/O around it and :class:`Sweeper`
runs it in a thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

log = logging.getLogger("autotune.operator")


@dataclass(frozen=True)
class Found:
    """The GET of the owner's namespace/name returned an object with this uid."""

    uid: str


@dataclass(frozen=True)
class Missing:
    """The GET of the owner's namespace/name answered 404."""


@dataclass(frozen=True)
class LookupFailed:
    """Any other outcome of the GET: nothing is known, so nothing is deleted."""

    error: str


Lookup = Found | Missing | LookupFailed


@dataclass(frozen=True)
class Verdict:
    exp_id: str
    delete: bool
    reason: str


def owner_of(exp: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(namespace, name, uid) of a listed experiment's owner; None if it has no usable one."""
    owner = exp.get("owner")
    if not isinstance(owner, Mapping):
        return None
    ns, name, uid = owner.get("namespace"), owner.get("name"), owner.get("uid")
    if not all(isinstance(v, str) and v for v in (ns, name, uid)):
        return None
    return str(ns), str(name), str(uid)


def _watched(ns: str, watched: frozenset[str] | None) -> bool:
    return watched is None or ns in watched


def to_look_up(experiments: Iterable[Mapping[str, Any]], watched: frozenset[str] | None) -> set[tuple[str, str]]:
    """The (namespace, name) pairs :func:`decide` needs looked up: owners in watched namespaces."""
    out = set()
    for exp in experiments:
        owner = owner_of(exp)
        if owner is not None and _watched(owner[0], watched):
            out.add((owner[0], owner[1]))
    return out


def decide(experiments: Iterable[Mapping[str, Any]], lookups: Mapping[tuple[str, str], Lookup],
           watched: frozenset[str] | None) -> list[Verdict]:
    """One verdict per listed experiment (``experimentId`` and ``owner`` as the tuner
    server's list gives them). ``watched``: the namespaces this operator watches, None for
    cluster-wide. A pair missing from ``lookups`` counts as a failed lookup."""
    out = []
    for exp in experiments:
        exp_id = str(exp.get("experimentId", ""))
        owner = owner_of(exp)
        if not exp_id:
            continue
        if owner is None:
            out.append(Verdict(exp_id, False, "no owner recorded (local mode, or created by an older operator)"))
            continue
        ns, name, uid = owner
        label = f"{ns}/{name}"
        if not _watched(ns, watched):
            out.append(Verdict(exp_id, False, f"owner {label} is in a namespace this operator does not watch"))
        elif uid != exp_id:
            out.append(Verdict(exp_id, False, f"owner {label} has uid {uid}, not the experiment's id"))
        else:
            found = lookups.get((ns, name), LookupFailed("not looked up"))
            if isinstance(found, Missing):
                out.append(Verdict(exp_id, True, f"owner {label} no longer exists"))
            elif isinstance(found, Found) and found.uid != uid:
                out.append(Verdict(exp_id, True, f"owner {label} was deleted (the object there now has uid {found.uid})"))
            elif isinstance(found, Found):
                out.append(Verdict(exp_id, False, f"owner {label} exists"))
            else:
                out.append(Verdict(exp_id, False, f"could not look up owner {label}: {found.error}"))
    return out


def sweep_once(list_experiments: Callable[[], list[dict[str, Any]]], delete: Callable[[str], object],
               lookup: Callable[[str, str], Lookup], watched: frozenset[str] | None) -> list[Verdict]:
    """List (the tuner server's GET /api/v1/experiments), look up the owners, decide,
    delete. Raises if the list fails (nothing deleted); a failed delete is logged and left
    for the next sweep."""
    experiments = list_experiments()
    lookups = {key: lookup(*key) for key in sorted(to_look_up(experiments, watched))}
    verdicts = decide(experiments, lookups, watched)
    for v in verdicts:
        if not v.delete:
            # Live experiments are the normal case; anything else kept is worth a line.
            (log.debug if v.reason.endswith(" exists") else log.info)("orphan sweep keeps %s: %s", v.exp_id, v.reason)
            continue
        try:
            delete(v.exp_id)
        except Exception as e:  # unreachable again: the next sweep
            log.warning("orphan sweep could not delete %s (%s): %s", v.exp_id, v.reason, e)
            continue
        log.info("orphan sweep removed the tuner-server state of %s: %s", v.exp_id, v.reason)
    return verdicts


def kubernetes_lookup(get: Callable[[str, str], Mapping[str, Any]]) -> Callable[[str, str], Lookup]:
    """A lookup from ``get(namespace, name)`` (the custom-objects GET): 404 is Missing, any
    other exception LookupFailed."""
    from kubernetes.client.rest import ApiException  # keeps decide() importable without the client

    def lookup(namespace: str, name: str) -> Lookup:
        try:
            obj = get(namespace, name)
        except ApiException as e:
            return Missing() if e.status == 404 else LookupFailed(f"HTTP {e.status}: {e.reason}")
        except Exception as e:
            return LookupFailed(f"{type(e).__name__}: {e}")
        uid = ((obj or {}).get("metadata") or {}).get("uid")
        return Found(uid) if isinstance(uid, str) and uid else LookupFailed("the object has no uid")

    return lookup


class Sweeper:
    """Runs :func:`sweep_once` now and then every ``interval`` seconds (sooner, ``retry``,
    after a failed list: the tuner server may only be starting) until :meth:`stop`."""

    def __init__(self, sweep: Callable[[], object], interval: float, retry: float = 30.0) -> None:
        self._sweep = sweep
        self._interval = interval
        self._retry = min(retry, interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="autotune-orphan-sweep", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            try:
                self._sweep()
                wait = self._interval
            except Exception as e:
                log.warning("orphan sweep failed (retrying in %.0f s): %s", self._retry, e)
                wait = self._retry
