"""Progress of long copies into a site (image data), from the driver to whoever asks.

The driver contract (`sites/base.py`) keeps `ensure(spec)` as it is: progress goes
through a context variable instead of an argument. The caller (the engine, see
engine/progress.py) installs a reporter around `driver.ensure` with
`reporting(reporter)`; while a driver copies data into its site it calls
`report(bytes_done, bytes_total)` as bytes go (at least once at the start and once
when all bytes are through). With no reporter installed, `report` does nothing.

A reporter is a plain callable `(bytes_done, bytes_total) -> None`. It runs in the
driver's thread, between two chunks of the copy, so it must be quick (the engine's
throttles itself). It never breaks a copy: whatever it raises is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

log = logging.getLogger(__name__)

Reporter = Callable[[int, int], None]

_reporter: ContextVar[Reporter | None] = ContextVar("isthmus_copy_reporter", default=None)


def report(bytes_done: int, bytes_total: int) -> None:
    """Tell the installed reporter how far the current copy is (no-op when none)."""
    reporter = _reporter.get()
    if reporter is None:
        return
    try:
        reporter(bytes_done, bytes_total)
    except Exception:  # progress is a view: it must never fail the copy
        log.exception("copy progress reporter failed")


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Install `reporter` for the copies made in this context (this thread)."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
