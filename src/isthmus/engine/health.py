"""Site health: a loop that asks every enabled site's driver `check()` and records
up/degraded/down, the last error, last seen time, capacity and usage. A site that
comes back gets its waiting work woken at once, so it converges by itself.

The same loop sweeps every site that is not down each `sweep_interval` seconds
(engine/drift.py: drift, status changes made in the site, foreign objects), as told
by its `clock` (`time.monotonic`; a test passes its own to let sweep intervals pass
without sleeping)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from isthmus.engine.drift import SweepResult, sweep_site
from isthmus.engine.queue import wake_site
from isthmus.engine.registry import SiteRegistry
from isthmus.errors import SiteError
from isthmus.store import repo
from isthmus.store.db import Database
from isthmus.store.tables import Site

log = logging.getLogger(__name__)


def check_site(db: Database, sites: SiteRegistry, name: str) -> str:
    """Check one site now and record the result; returns its health."""
    try:
        report = sites.get(name).check()
        health, error, capacity, usage = (
            report.health,
            (report.message or None),
            report.capacity,
            report.usage,
        )
        data_plane = report.data_plane
    except SiteError as exc:
        health, error, capacity, usage, data_plane = "down", str(exc), None, None, None
    except Exception as exc:  # a driver bug must not stop health checks
        log.exception("health check of %s failed", name)
        health, error, capacity, usage, data_plane = (
            "down",
            f"check failed: {exc}",
            None,
            None,
            None,
        )
    with db.session() as session:
        # locked: a site removed (forced) while it was being checked is either gone here
        # or waits for this write, never deleted under it (PostgreSQL: StaleDataError)
        site = session.get(Site, name, with_for_update=True)
        if site is None:
            return "removed"
        came_back = site.health == "down" and health != "down"
        if health == "down" and error != site.last_error:  # once per new reason, not per check
            log.warning("site %s is down: %s", name, error)
        site.health = health
        site.last_error = error
        if health != "down":
            site.last_seen = repo.utcnow()
            site.capacity = capacity or {}
            site.usage = usage or {}
            site.data_plane = data_plane or site.data_plane
        if came_back:
            wake_site(session, name)
    return health


class HealthMonitor:
    """Checks every enabled site every `interval` seconds in a thread."""

    def __init__(
        self,
        db: Database,
        sites: SiteRegistry,
        interval: float = 2.0,
        sweep_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.sites = sites
        self.interval = interval
        self.sweep_interval = sweep_interval
        self.clock = clock  # seconds, for sweep_interval only
        self._last_sweep: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_all(self) -> None:
        with self.db.read() as session:
            names = list(session.scalars(select(Site.name).where(Site.enabled.is_(True))))
        for name in names:
            check_site(self.db, self.sites, name)

    def sweep_due(self) -> list[SweepResult]:
        """Sweep each site that is not down and was not swept in `sweep_interval`."""
        if self.sweep_interval <= 0:
            return []
        with self.db.read() as session:
            names = list(session.scalars(select(Site.name).where(Site.health != "down")))
        results = []
        for name in names:
            now = self.clock()
            if now - self._last_sweep.get(name, -math.inf) < self.sweep_interval:
                continue
            self._last_sweep[name] = now
            try:
                results.append(sweep_site(self.db, self.sites, name))
            except Exception:  # a driver bug must not stop the loop
                log.exception("sweep of %s failed", name)
        return results

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="isthmus-health", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_all()
                self.sweep_due()
            except Exception:
                log.exception("health loop failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
