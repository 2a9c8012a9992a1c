"""The shared polling helper (tests/waiting.py): returns the first truthy value, fails
naming what it waited for and what it saw last, and lets only listed exceptions retry."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import ManualClock, WaitTimeout, wait_for


def test_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", {"status": "ACTIVE"}])
    assert wait_for(lambda: next(answers), timeout=5, interval=0.001) == {"status": "ACTIVE"}


def test_a_timeout_names_what_and_the_last_value() -> None:
    counter = itertools.count()
    with pytest.raises(WaitTimeout) as failure:
        wait_for(lambda: next(counter) < 0, timeout=0.05, interval=0.01, what="the impossible")
    message = str(failure.value)
    assert "waiting for the impossible" in message and "last: value False" in message
    assert isinstance(failure.value, AssertionError)  # pytest shows it as a failed check
    assert next(counter) >= 3  # polled more than once, and a last time at the deadline


def test_exceptions_propagate_unless_ignored() -> None:
    def broken() -> bool:
        raise KeyError("status")

    with pytest.raises(KeyError):
        wait_for(broken, timeout=5)
    with pytest.raises(WaitTimeout, match=r"last: exception KeyError\('status'\)"):
        wait_for(broken, timeout=0.03, interval=0.01, ignoring=(KeyError,))


def test_an_ignored_exception_then_a_value() -> None:
    answers = iter([LookupError("not yet"), LookupError("still not"), 42])

    def answer() -> int:
        value = next(answers)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_for(answer, timeout=5, interval=0.001, ignoring=(LookupError,)) == 42


def test_without_what_it_names_the_callable() -> None:
    def never() -> None:
        return None

    with pytest.raises(WaitTimeout, match="waiting for .*never; last: value None"):
        wait_for(never, timeout=0.01, interval=0.005)


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start=100.0)
    assert clock() == clock() == 100.0
    clock.advance(2.5)
    assert clock() == 102.5
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert ManualClock()() > 0  # by default it starts at the real monotonic time
