"""A local trial's environment names its tuner server's loopback host in no_proxy.

`autotune run`'s tuner server (and the MLflow subset it serves) listens on this machine's
loopback, where no proxy can reach. From a shell with $http_proxy set and no no_proxy for
that host (behind a corporate proxy), a trial's HTTP client sends every request to the
proxy: the SDK bypasses it by itself (sdk/autotune: _open), but an MLflow-instrumented
script's client (requests) does not, so every such trial failed ('ProxyError: Unable to
connect to proxy'). Pure: the variables to set, from the environment the trial would get.
"""

from __future__ import annotations

import urllib.parse
from typing import Mapping

from tuner_server.net import is_loopback

NO_PROXY_VARS = ("no_proxy", "NO_PROXY")


def no_proxy_for(env: Mapping[str, str], server_url: str) -> dict[str, str]:
    """no_proxy and NO_PROXY (both: clients read one or the other, lower case first) with the
    server's host added to what either held, when that host is a loopback; else nothing."""
    host = urllib.parse.urlsplit(server_url).hostname or ""
    if not is_loopback(host):
        return {}
    entries: list[str] = []
    for var in NO_PROXY_VARS:
        entries += [e.strip() for e in env.get(var, "").split(",") if e.strip() and e.strip() not in entries]
    if host not in entries:
        entries.append(host)
    value = ",".join(entries)
    return {var: value for var in NO_PROXY_VARS}
