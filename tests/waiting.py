"""Waiting in tests: the one polling loop every test and fixture uses.

Tests wait for things that happen on their own time (the engine applying intent, a
subprocess starting, a site going down, a packet getting through). Instead of each test
writing its own `deadline = time.monotonic() + ...; while ...: time.sleep(...)` loop,
they call `wait_for(check, timeout=..., interval=..., what=...)`:

    server = wait_for(lambda: show(id)["status"] == "ACTIVE" and show(id), what="server ACTIVE")

`check` is polled (at once, then every `interval` seconds, and a last time at the
deadline) until it returns something truthy, which `wait_for` returns. If the deadline
passes first, it raises `WaitTimeout` (an `AssertionError`, so pytest reports it as a
failed check) naming what it waited for, how long, and the last value `check` returned or
the last exception it raised. Exceptions propagate at once (an assertion inside `check`
fails the test immediately) unless their types are listed in `ignoring`, which makes them
"not yet" instead. Code that waits but goes on either way (stopping a process, then
killing it if it lingers) catches `WaitTimeout`.

Where a test only needs time to pass for the product (an interval to run out), it does
not sleep: the product takes a clock (e.g. engine/health.py's `HealthMonitor(clock=)`)
and the test passes a `ManualClock` it moves on itself.

This module imports only the standard library, so fixtures at any level can use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """`wait_for` ran out of time; the message says what for and what it saw last."""


def wait_for(
    check: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `check()` until it returns something truthy and return that value.

    Raises `WaitTimeout` once `timeout` seconds have passed without a truthy value.
    Exceptions of the types in `ignoring` count as a falsy answer (the last one is named
    in the failure); any other exception propagates at once.
    """
    described = what or getattr(check, "__qualname__", repr(check))
    deadline = time.monotonic() + timeout
    last: str = "nothing (never called)"
    while True:
        try:
            value = check()
        except ignoring as exc:
            last = f"exception {exc!r}"
        else:
            if value:
                return value
            last = f"value {value!r}"
        left = deadline - time.monotonic()
        if left <= 0:
            message = f"timed out after {timeout:g} s waiting for {described}; last: {last}"
            raise WaitTimeout(message)
        time.sleep(min(interval, left))


class ManualClock:
    """A monotonic clock that moves only when told: pass it where the product takes a
    `clock` (a callable returning seconds) and `advance` it instead of sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.monotonic() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds
