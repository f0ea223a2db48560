"""A local trial's no_proxy names its loopback tuner server (operator/executors/loopback_proxy.py)."""

from __future__ import annotations

import pytest

from autotune_operator.executors.loopback_proxy import no_proxy_for


@pytest.mark.parametrize("url, host", [("http://127.0.0.1:8080", "127.0.0.1"), ("http://localhost:1", "localhost"),
                                       ("http://[::1]:8080/x", "::1"), ("http://127.0.0.2:9", "127.0.0.2")])
def test_a_loopback_server_is_added_to_both_variables(url: str, host: str) -> None:
    assert no_proxy_for({}, url) == {"no_proxy": host, "NO_PROXY": host}


def test_what_either_variable_held_is_kept_once() -> None:
    env = {"no_proxy": "corp.example, .internal", "NO_PROXY": ".internal,10.0.0.0/8"}
    want = "corp.example,.internal,10.0.0.0/8,127.0.0.1"
    assert no_proxy_for(env, "http://127.0.0.1:5") == {"no_proxy": want, "NO_PROXY": want}
    assert no_proxy_for({"NO_PROXY": "127.0.0.1"}, "http://127.0.0.1:5") == {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


@pytest.mark.parametrize("url", ["http://autotune-tuner-server.autotune.svc:8080", "http://10.0.0.5:8080", ""])
def test_another_host_is_left_to_the_environment(url: str) -> None:
    assert no_proxy_for({"no_proxy": "x"}, url) == {}
