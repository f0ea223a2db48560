"""The failed-login limiter's decisions (fake clock, no HTTP)."""

from __future__ import annotations

import pytest

from tuner_server.failed_logins import FailedLogins, client_key, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_nth_failure_in_the_window_blocks_until_the_oldest_expires() -> None:
    clock = Clock()
    f = FailedLogins(max_failures=3, window=60, clock=clock)
    for _ in range(2):
        f.failed("10.0.0.1")
        clock.now += 10
    assert f.retry_after("10.0.0.1") is None  # 2 of 3: may still try
    f.failed("10.0.0.1")  # failures at 1000, 1010, 1020
    assert f.retry_after("10.0.0.1") == pytest.approx(40)  # the one at 1000 leaves the window at 1060
    assert f.retry_after("10.0.0.2") is None, "another address has its own budget"
    clock.now = 1059.9
    assert f.retry_after("10.0.0.1") == pytest.approx(0.1)
    clock.now = 1060
    assert f.retry_after("10.0.0.1") is None
    # Sliding: one more failure now blocks again until the one at 1010 expires.
    f.failed("10.0.0.1")
    assert f.retry_after("10.0.0.1") == pytest.approx(10)


def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    f = FailedLogins(max_failures=3, window=60, clock=clock)
    for _ in range(10):
        f.failed("a")
        clock.now += 31  # never 3 within 60 s
        assert f.retry_after("a") is None


def test_a_success_clears_only_that_address() -> None:
    clock = Clock()
    f = FailedLogins(max_failures=2, window=60, clock=clock)
    for addr in ("a", "b"):
        f.failed(addr)
        f.failed(addr)
    assert f.retry_after("a") and f.retry_after("b")
    f.succeeded("a")
    assert f.retry_after("a") is None
    assert f.retry_after("b") == pytest.approx(60)
    f.failed("a")
    assert f.retry_after("a") is None, "the count starts again from zero after a success"


def test_zero_turns_the_limit_off_and_bad_settings_are_refused() -> None:
    f = FailedLogins(max_failures=0)
    for _ in range(100):
        f.failed("a")
    assert f.retry_after("a") is None and f.tracked() == 0
    with pytest.raises(ValueError, match="max_failures"):
        FailedLogins(max_failures=-1)
    with pytest.raises(ValueError, match="window"):
        FailedLogins(window=0)
    with pytest.raises(ValueError, match="max_addresses"):
        FailedLogins(max_addresses=0)


def test_tracked_addresses_are_bounded_dropping_expired_then_least_recent() -> None:
    clock = Clock()
    f = FailedLogins(max_failures=2, window=60, max_addresses=3, clock=clock)
    f.failed("old")
    clock.now += 61  # "old" has expired but is still on record
    f.failed("a")
    f.failed("a")
    f.failed("b")
    assert f.tracked() == 3
    f.failed("c")  # full: the expired address goes first
    assert f.tracked() == 3
    f.failed("b")  # b is now the most recent; a failed longest ago
    f.failed("d")  # full, nothing expired: "a" (least recently failed) is dropped
    assert f.tracked() == 3
    assert f.retry_after("a") is None
    assert f.retry_after("b") == pytest.approx(60)
    for i in range(1000):
        f.failed(f"flood-{i}")
    assert f.tracked() == 3


def test_each_address_keeps_at_most_max_failures_times() -> None:
    clock = Clock()
    f = FailedLogins(max_failures=3, window=60, clock=clock)
    for _ in range(1000):
        f.failed("a")
    assert len(f._failures["a"]) == 3
    assert f.retry_after("a") == pytest.approx(60)


@pytest.mark.parametrize("host,key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same /64, same budget
    ("::ffff:192.0.2.7", "192.0.2.7"),
    (None, "unknown"),
    ("testclient", "testclient"),
])
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key


@pytest.mark.parametrize("seconds,header", [(40.0, "40"), (0.1, "1"), (59.2, "60"), (0.0, "1")])
def test_retry_after_header_rounds_up(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header
