"""Host names and addresses: which are this machine's own."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host name or address) is this machine's loopback: 'localhost'
    or an address in 127.0.0.0/8 or ::1. Used to keep a proxy out of calls to a server here
    (a proxy cannot reach our loopback) and to relax the log-in limit of a local server."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"
