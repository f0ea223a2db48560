"""Failed log-ins per client address, so a token cannot be guessed at network speed.

After ``max_failures`` failed attempts (a wrong token at the web UI's login form, a used or
made-up login code, an unknown bearer token on the API) within ``window`` seconds, an
address is refused (HTTP 429) until the oldest of those failures is ``window`` seconds old:
a sliding window, so an address never gets more than ``max_failures`` tries per window.

The key is the TCP peer address. Behind a reverse proxy or an ingress that is the proxy, so
every user behind it shares one budget; the tuner server has no trusted-proxy setting and
never reads X-Forwarded-For, which any client could forge to get a fresh budget per request.
IPv6 addresses are keyed by their /64 network: one host usually holds a whole /64 and could
otherwise change address for every guess.

Pure bookkeeping with an injectable clock; no HTTP here (ui.py and api.py answer the 429).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

DEFAULT_MAX_FAILURES = 10
DEFAULT_WINDOW_SECONDS = 300.0
DEFAULT_MAX_ADDRESSES = 10_000


def client_key(host: str | None) -> str:
    """The address a failure is counted against: IPv4 as is, IPv6 by its /64 network."""
    if not host:
        return "unknown"  # no peer (a test transport, a Unix socket): one shared budget
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailedLogins:
    """Per-address failure times; decides whether an address may try again, and when.

    ``max_failures=0`` turns limiting off. At most ``max_addresses`` addresses are tracked
    (each holds at most ``max_failures`` times): when full, addresses whose failures have all
    expired go first, then the one that failed longest ago, so a flood from many addresses
    cannot grow memory without bound.
    """

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: float = DEFAULT_WINDOW_SECONDS,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 0:
            raise ValueError(f"max_failures must be >= 0 (0 turns the limit off), got {max_failures}")
        if not window > 0:
            raise ValueError(f"the failed-login window must be > 0 seconds, got {window}")
        if max_addresses < 1:
            raise ValueError(f"max_addresses must be >= 1, got {max_addresses}")
        self.max_failures, self.window, self.max_addresses, self.clock = max_failures, float(window), max_addresses, clock
        # address -> failure times, oldest first; the dict's order is least recently failed first.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None if it may try now."""
        if not self._failures:  # the common case (no failures at all) takes no lock
            return None
        now = self.clock()
        with self._lock:
            times = self._failures.get(address)
            if times is None:
                return None
            self._expire(address, times, now)
            if len(times) < self.max_failures:
                return None
            return times[0] + self.window - now

    def failed(self, address: str) -> None:
        """Count one failed attempt from ``address``."""
        if self.max_failures == 0:
            return
        now = self.clock()
        with self._lock:
            times = self._failures.get(address)
            if times is None:
                self._make_room(now)
                times = self._failures[address] = deque(maxlen=self.max_failures)
            else:
                self._failures.move_to_end(address)
            times.append(now)  # maxlen drops the oldest: only the last max_failures matter

    def succeeded(self, address: str) -> None:
        """A successful log-in: forget the address's failures."""
        with self._lock:
            self._failures.pop(address, None)

    def tracked(self) -> int:
        """How many addresses have failures on record (memory is bounded by max_addresses)."""
        with self._lock:
            return len(self._failures)

    def _expire(self, address: str, times: deque[float], now: float) -> None:
        while times and times[0] + self.window <= now:
            times.popleft()
        if not times:
            del self._failures[address]

    def _make_room(self, now: float) -> None:
        if len(self._failures) < self.max_addresses:
            return
        # The dict is ordered by last failure, so addresses whose failures have all expired
        # form its front: drop those, then (still full) the one that failed longest ago.
        while self._failures:
            oldest = next(iter(self._failures.values()))
            if oldest[-1] + self.window > now and len(self._failures) < self.max_addresses:
                break
            self._failures.popitem(last=False)


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; round up so a client that obeys it is not refused again."""
    return str(max(1, math.ceil(seconds)))
