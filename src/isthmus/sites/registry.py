"""Builds and caches one driver per site, from the `sites` table.

Embedded (`local`) sites keep their state under `<data_dir>/sites/<name>/`
unless their config names a `directory`. `openstack` sites reach a cloud through
the clouds.yaml entry their config names (see sites/openstack/driver.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from isthmus.errors import NotFound, SiteUnavailable
from isthmus.sites.base import SiteDriver
from isthmus.store.db import Database
from isthmus.store.tables import Site

DRIVERS = ("local", "openstack")


def build_driver(name: str, driver: str, config: dict[str, Any], data_dir: Path) -> SiteDriver:
    """A driver object for one site (does not contact the site)."""
    if driver == "local":
        from isthmus.sites.local import LocalDriver

        directory = Path(config.get("directory") or data_dir / "sites" / name)
        return LocalDriver(name, directory, config)
    if driver == "openstack":
        from isthmus.sites.openstack import OpenStackDriver

        return OpenStackDriver(name, config)
    raise NotFound(f"Unknown site driver {driver!r}; known drivers: {', '.join(DRIVERS)}.")


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
        with self._lock:
            driver = self._drivers.pop(name, None)
        if driver is not None:
            driver.close()

    def close(self) -> None:
        with self._lock:
            drivers, self._drivers = list(self._drivers.values()), {}
        for driver in drivers:
            driver.close()
