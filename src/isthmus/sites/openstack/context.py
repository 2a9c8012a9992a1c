"""`SiteContext`: what the parts of one OpenStack site's driver share, as one object.

The driver (driver.py) builds one per site and hands it to each kind of site
object (network.py, compute.py, storage.py, l3.py) and to the BGPVPN interconnect
(interconnect.py). It holds the site's config, its connections (one per thread,
plus the `admin_cloud` ones for what Neutron reserves to admins), the error
mapping (errors.py), a small cache, the settle loop, and the kinds themselves as
`Prerequisite`s, so one kind can require another's object (a port needs its
network) without knowing the driver. Nothing here imports a kind module or the
driver: the modules of this package import downwards only
(driver -> kinds and interconnect -> common -> context -> errors).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from openstack.config import OpenStackConfig
from openstack.connection import Connection

from isthmus.errors import SiteUnavailable
from isthmus.sites.openstack.errors import site_errors


class Prerequisite(Protocol):
    """One kind of site object as the other kinds use it (common.Kind is one)."""

    def find(self, isthmus_id: str) -> Any | None:
        """The live site object carrying `isthmus_id`, or None."""
        ...

    def require(self, isthmus_id: str, for_what: str) -> Any:
        """The live site object for `isthmus_id`; retryable (TemporaryError) if absent."""
        ...


class SiteContext:
    """One OpenStack site's config and connections (see the module docstring and
    driver.py for the config keys)."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        self.name = name
        self.cloud = str(config.get("cloud") or "")
        self.clouds_yaml = config.get("clouds_yaml") or None
        self.region_name = config.get("region_name") or None
        self.availability_zone: str | None = config.get("availability_zone") or None
        self.flavor_map: dict[str, str] = {
            str(k): str(v) for k, v in (config.get("flavor_map") or {}).items()
        }
        self.default_image: str | None = config.get("default_image") or None
        self.settle_seconds = float(config.get("settle_seconds", 30.0))
        self.timeout = float(config.get("timeout", 30.0))
        self.capacity_config: dict[str, int] = {
            key: int(config[key]) for key in ("vcpus", "ram_mb", "disk_gb") if key in config
        }
        self.external_network: str | None = config.get("external_network") or None
        self.admin_cloud: str | None = config.get("admin_cloud") or None
        # the site's kinds by name, filled in by the driver once it has made them
        self.kinds: dict[str, Prerequisite] = {}
        self._local = threading.local()
        self._admin_local = threading.local()
        self._connections: list[Connection] = []
        self._admin_connections: list[Connection] = []
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    def errors(self, action: str, *, create: bool = False) -> AbstractContextManager[None]:
        """Map SDK errors raised inside to SiteError (see errors.py)."""
        return site_errors(self.name, action, create=create)

    def connection(self) -> Connection:
        """This thread's connection to the site (built, not yet authenticated, on first use)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if not self.cloud:
            raise SiteUnavailable(f"site {self.name}: its config names no `cloud` (clouds.yaml)")
        with self.errors("read the cloud configuration"):
            files = [self.clouds_yaml] if self.clouds_yaml else None
            config = OpenStackConfig(config_files=files, load_envvars=False)
            region = config.get_one(
                cloud=self.cloud, region_name=self.region_name, api_timeout=self.timeout
            )
            conn = Connection(config=region)
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def admin(self) -> Connection:
        """The connection for what Neutron reserves to admins: BGPVPNs, a floating IP at
        a chosen address (`admin_cloud`, else the driver's own)."""
        if self.admin_cloud is None:
            return self.connection()
        conn: Connection | None = getattr(self._admin_local, "conn", None)
        if conn is None:
            with self.errors(f"read the cloud configuration of {self.admin_cloud!r}"):
                files = [self.clouds_yaml] if self.clouds_yaml else None
                config = OpenStackConfig(config_files=files, load_envvars=False)
                region = config.get_one(
                    cloud=self.admin_cloud,
                    region_name=self.region_name,
                    api_timeout=self.timeout,
                )
                conn = Connection(config=region)
            self._admin_local.conn = conn
            with self._lock:
                self._admin_connections.append(conn)
        return conn

    def cached(self, key: str, load: Callable[[], Any], seconds: float = 60.0) -> Any:
        """`load()`, remembered for `seconds` (flavors, images by name, extensions)."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < seconds:
            return hit[1]
        value = load()
        self._cache[key] = (now, value)
        return value

    def settle(
        self, obj: Any, fetch: Callable[[Any], Any], transient: Callable[[Any], bool]
    ) -> Any:
        """Poll `fetch(obj)` while `transient(obj)`, for at most `settle_seconds`."""
        deadline = time.monotonic() + self.settle_seconds
        delay = 0.1
        while obj is not None and transient(obj) and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            obj = fetch(obj)
        return obj

    def close(self) -> None:
        """Close every connection (the site's own first, then the admin ones)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
        with self._lock:
            admins, self._admin_connections = self._admin_connections, []
        for conn in admins:
            with contextlib.suppress(Exception):
                conn.close()
        self._admin_local = threading.local()
