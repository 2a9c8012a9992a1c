"""Builds and caches one driver per site, from the `sites` table.

It lives in the engine, not in sites/, because it reads the store (a site's row
names its driver and config); drivers themselves know nothing of the store.

Embedded (`local`) sites keep their state under `<data_dir>/sites/<name>/`
unless their config names a `directory`. `openstack` sites reach a cloud through
the clouds.yaml entry their config names (see sites/openstack/driver.py). A site
removed from Isthmus is retired (`SiteRegistry.retire`: its driver releases what
Isthmus ran for it).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from isthmus.errors import PermanentError, SiteUnavailable
from isthmus.sites.base import SiteDriver
from isthmus.sites.validation import DRIVERS
from isthmus.store.db import Database
from isthmus.store.tables import Site

log = logging.getLogger(__name__)


def local_directory(name: str, config: dict[str, Any], data_dir: Path) -> Path:
    """Where an embedded site's state lives."""
    return Path(config.get("directory") or data_dir / "sites" / name)


def build_driver(name: str, driver: str, config: dict[str, Any], data_dir: Path) -> SiteDriver:
    """A driver object for one site (does not contact the site); PermanentError
    for a driver this Isthmus does not have."""
    if driver == "local":
        from isthmus.sites.local import LocalDriver

        return LocalDriver(name, local_directory(name, config, data_dir), config)
    if driver == "openstack":
        from isthmus.sites.openstack import OpenStackDriver

        return OpenStackDriver(name, config)
    # a site stored by an Isthmus with another driver: the health check marks it down
    # with this message (once), and no work is sent to it
    raise PermanentError(
        f"Unknown site driver {driver!r}; known drivers: {', '.join(DRIVERS)}."
        " Remove the site or run an Isthmus that has this driver."
    )


class SiteRegistry:
    """Drivers of the sites of one database, built on first use."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.data_dir = data_dir
        self._drivers: dict[str, SiteDriver] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> SiteDriver:
        with self._lock:
            driver = self._drivers.get(name)
            if driver is not None:
                return driver
            with self.db.read() as session:
                site = session.get(Site, name)
                if site is None:
                    raise SiteUnavailable(f"site {name} is not registered")
                driver = build_driver(site.name, site.driver, dict(site.config), self.data_dir)
            self._drivers[name] = driver
            return driver

    def forget(self, name: str) -> None:
        """Drop the cached driver of a site (closed); the site is left as it is."""
        with self._lock:
            driver = self._drivers.pop(name, None)
        if driver is not None:
            driver.close()

    def retire(self, name: str, driver: str, config: dict[str, Any]) -> str | None:
        """The site `name` (its `driver` and `config` as they were registered) was
        removed: its driver's `retire()` releases what Isthmus ran for it, then the
        driver is closed and forgotten. A driver not cached is built for the call.
        None when that worked, else why not (logged; the removal stands)."""
        with self._lock:
            cached = self._drivers.pop(name, None)
        problem = None
        try:
            site = cached or build_driver(name, driver, config, self.data_dir)
        except Exception as exc:
            log.warning("cannot retire site %s: %s", name, exc)
            return str(exc)
        try:
            site.retire()
        except Exception as exc:  # the site is gone from the store either way
            log.warning("retiring site %s failed: %s", name, exc)
            problem = str(exc)
        finally:
            site.close()
        return problem

    def close(self) -> None:
        with self._lock:
            drivers, self._drivers = list(self._drivers.values()), {}
        for driver in drivers:
            driver.close()
