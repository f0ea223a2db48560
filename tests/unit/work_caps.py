"""Bounds on how much work code under test does, for the tests that a listing or a walk must
stay lazy: wrap the function that does each unit of work (monkeypatch.setattr) and the test
fails with ``message`` as soon as the code goes past ``limit`` units, instead of running for
minutes (or out of memory) before it could fail on its result."""

from __future__ import annotations

from typing import Any, Callable, Iterator

LIMIT = 100_000


def capped_calls(fn: Callable[..., Any], message: str, limit: int = LIMIT) -> Callable[..., Any]:
    """``fn``, failing with ``message`` at its call number ``limit`` + 1. Set on a class, it is
    a method as ``fn`` was (the instance comes in ``args``)."""
    calls = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > limit:
            raise AssertionError(message)
        return fn(*args, **kwargs)

    return counted


def capped_yields(gen: Callable[..., Iterator[Any]], message: str, limit: int = LIMIT) -> Callable[..., Iterator[Any]]:
    """The generator function ``gen``, failing with ``message`` at its item number ``limit`` + 1
    (counted over all its calls)."""
    made = 0

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal made
        for item in gen(*args, **kwargs):
            made += 1
            if made > limit:
                raise AssertionError(message)
            yield item

    return counted
