"""Host names and addresses: which are this machine's own."""

from __future__ import annotations

import ipaddress
import urllib.parse
import urllib.request


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host name or address) is this machine's loopback: 'localhost'
    or an address in 127.0.0.0/8 or ::1. Used to keep a proxy out of calls to a server here
    (a proxy cannot reach our loopback) and to relax the log-in limit of a local server."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"


def opener_for(url: str) -> urllib.request.OpenerDirector:
    """An opener of its own for calls to ``url``, with the proxy settings of this moment.

    A loopback host is reached directly: urllib sends every http:// URL to $http_proxy unless
    $no_proxy names the host, and a proxy cannot reach our loopback. Other hosts follow the
    environment (http_proxy, https_proxy; no_proxy is read again at each request). Not
    urlopen: its process-wide opener keeps the proxies of its first use in the process, or
    whatever opener some other code installed, so a client made later in the process could
    go direct where its environment says proxy (or the reverse)."""
    loopback = is_loopback(urllib.parse.urlsplit(url).hostname or "")
    return urllib.request.build_opener(urllib.request.ProxyHandler({} if loopback else None))
