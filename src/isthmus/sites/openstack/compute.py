"""Nova kind: server (with its flavor and key pair).

- flavor: the site flavor the config's `flavor_map` names for the server's
  Isthmus flavor, else the site's smallest flavor with at least the server's
  vCPUs, RAM and disk (none: PermanentError "No valid host was found").
- image and ports: the site objects made for their Isthmus ids (absent: retry).
  A server without an image boots the config's `default_image`.
- key pair: `spec.public_key` imported once as `isthmus-<key name>-<8 hex of the
  key's digest>` (two users' same-named keys never clash) and left in place.
- metadata: the spec's, plus `isthmus_id`, `isthmus_name` and `isthmus_reboots`
  (how many reboots the site has been asked for, so a reboot is asked once).
- power: power_on false stops an ACTIVE server, true starts a SHUTOFF one; a
  higher reboot_count reboots it (soft). Until the site has done it, the status
  reported is transient (BUILD, or REBOOT for a reboot) so the engine keeps
  polling; Nova's own statuses pass through otherwise (ACTIVE, BUILD, SHUTOFF,
  ERROR with its fault message; HARD_REBOOT reads as REBOOT).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from openstack import exceptions as sdk

from isthmus.errors import PermanentError, TemporaryError
from isthmus.model.specs import ServerSpec
from isthmus.sites.base import Observed
from isthmus.sites.openstack.common import (
    MARKER,
    NAME_KEY,
    Kind,
    field,
    get_or_none,
    site_name,
)

if TYPE_CHECKING:
    from openstack.connection import Connection

REBOOTS_KEY = "isthmus_reboots"
GOING = {"DELETED", "SOFT_DELETED"}


def nova_status(obj: Any) -> str:
    """The driver-neutral status of a Nova server (see the module docstring)."""
    status = str(field(obj, "status", "BUILD")).upper()
    task = field(obj, "task_state")
    if status == "ERROR":
        return status
    if status in ("REBOOT", "HARD_REBOOT") or (task and str(task).startswith("reboot")):
        return "REBOOT"
    if task and task != "deleting":
        return "BUILD"
    return status


def keypair_name(key_name: str, public_key: str) -> str:
    digest = hashlib.sha256(public_key.strip().encode()).hexdigest()[:8]
    return f"isthmus-{key_name[:200]}-{digest}"


class Servers(Kind[ServerSpec]):
    kind = "server"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        # Nova's name filter is a regular expression; find_all keeps exact matches
        query: dict[str, Any] = {"name": f"^{name}$"} if name else {}
        return conn.compute.servers(details=True, **query)

    def going(self, obj: Any) -> bool:
        return field(obj, "task_state") == "deleting" or str(field(obj, "status")) in GOING

    def status(self, obj: Any) -> str:
        return nova_status(obj)

    def fault(self, obj: Any) -> str | None:
        fault = field(obj, "fault")
        if self.status(obj) != "ERROR" or not fault:
            return None
        return str(fault.get("message") or fault) if isinstance(fault, dict) else str(fault)

    def details(self, obj: Any) -> dict[str, Any]:
        return {"site_status": field(obj, "status"), "task_state": field(obj, "task_state")}

    # -- ensure ------------------------------------------------------------------------

    def ensure(self, spec: ServerSpec) -> Observed:
        obj = self.find(spec.isthmus_id)
        if obj is None:
            return self._create(spec)
        return self._update(obj, spec)

    def _metadata(self, spec: ServerSpec, reboots: int) -> dict[str, str]:
        return {
            **dict(spec.metadata),
            MARKER: spec.isthmus_id,
            NAME_KEY: spec.name[:255],
            REBOOTS_KEY: str(reboots),
        }

    def _create(self, spec: ServerSpec) -> Observed:
        conn = self.conn
        for_what = f"server {spec.isthmus_id}"
        ports = self.site.kinds["port"]
        nics = [{"port": ports.require(p, for_what).id} for p in spec.port_ids]
        if spec.image_id:
            image_id = self.site.kinds["image"].require(spec.image_id, for_what).id
        else:
            image_id = self._default_image(spec)
        body: dict[str, Any] = {
            "name": site_name(spec.isthmus_id),
            "flavor_id": self._flavor(spec),
            "image_id": image_id,
            "networks": nics or "none",
            "metadata": self._metadata(spec, spec.reboot_count),
        }
        if spec.key_name and spec.public_key:
            body["key_name"] = self._keypair(spec.key_name, spec.public_key)
        if spec.user_data:
            body["user_data"] = spec.user_data
        if self.site.availability_zone:
            body["availability_zone"] = self.site.availability_zone
        with self.errors("create", create=True):
            obj = conn.compute.create_server(**body)
        # A server to be created stopped is stopped by a later ensure, once ACTIVE
        return self.observed(obj, spec.isthmus_id)

    def _update(self, obj: Any, spec: ServerSpec) -> Observed:
        status = self.status(obj)
        if status != str(field(obj, "status", "")).upper() or status not in ("ACTIVE", "SHUTOFF"):
            return self.observed(obj, spec.isthmus_id)  # busy, building or ERROR: look later
        conn = self.conn
        metadata = dict(field(obj, "metadata", {}) or {})
        try:
            applied = int(metadata.get(REBOOTS_KEY, 0))
        except ValueError:
            applied = 0
        reboot = spec.power_on and spec.reboot_count > applied
        wanted = self._metadata(spec, max(applied, spec.reboot_count))
        if metadata != wanted:
            # recorded before the reboot is asked for: a crash in between loses a
            # reboot rather than doing one twice
            with self.errors("set metadata"):
                response = conn.compute.put(
                    f"/servers/{obj.id}/metadata", json={"metadata": wanted}
                )
                sdk.raise_from_response(response)
        transient: str | None = None
        with self.errors("change power state"):
            if spec.power_on and status == "SHUTOFF":
                conn.compute.start_server(obj)
                transient = "BUILD"
            elif not spec.power_on and status == "ACTIVE":
                conn.compute.stop_server(obj)
                transient = "BUILD"
            elif reboot and status == "ACTIVE":
                conn.compute.reboot_server(obj, "SOFT")
                transient = "REBOOT"
        observed = self.observed(obj, spec.isthmus_id)
        if transient is None:
            return observed
        return Observed(
            kind=observed.kind,
            isthmus_id=observed.isthmus_id,
            site_id=observed.site_id,
            status=transient,
            details=observed.details,
        )

    # -- what a server needs -----------------------------------------------------------------

    def _flavor(self, spec: ServerSpec) -> str:
        flavors = self.site.cached("flavors", self._load_flavors)
        mapped = self.site.flavor_map.get(spec.flavor_name or "")
        if mapped:
            for flavor in flavors:
                if mapped in (flavor["id"], flavor["name"]):
                    return str(flavor["id"])
            raise PermanentError(
                f"site {self.site.name} has no flavor {mapped!r} (flavor_map of"
                f" {spec.flavor_name!r})"
            )
        fitting = [
            f
            for f in flavors
            if f["vcpus"] >= spec.vcpus and f["ram"] >= spec.ram_mb and f["disk"] >= spec.disk_gb
        ]
        if not fitting:
            raise PermanentError(
                f"No valid host was found: site {self.site.name} has no flavor with at least"
                f" {spec.vcpus} vCPUs, {spec.ram_mb} MiB RAM and {spec.disk_gb} GiB disk"
                f" for server {spec.isthmus_id}"
            )
        best = min(fitting, key=lambda f: (f["vcpus"], f["ram"], f["disk"], f["name"]))
        return str(best["id"])

    def _load_flavors(self) -> list[dict[str, Any]]:
        with self.errors("list flavors"):
            return [
                {
                    "id": f.id,
                    "name": f.name,
                    "vcpus": int(f.vcpus or 0),
                    "ram": int(f.ram or 0),
                    "disk": int(f.disk or 0),
                }
                for f in self.conn.compute.flavors(details=True)
                if not field(f, "is_disabled", False)
            ]

    def _default_image(self, spec: ServerSpec) -> str:
        name = self.site.default_image
        if not name:
            raise PermanentError(
                f"server {spec.isthmus_id} names no image and site {self.site.name} has no"
                " `default_image` in its config"
            )

        def load() -> str | None:
            with self.errors("find the default image"):
                image = get_or_none(self.conn.image.get_image, name)
                if image is None:  # not an id: a name
                    image = next(iter(self.conn.image.images(name=name, status="active")), None)
            return image.id if image is not None else None

        image_id = self.site.cached(f"image:{name}", load)
        if image_id is None:
            raise PermanentError(f"site {self.site.name} has no image {name!r} (default_image)")
        return str(image_id)

    def _keypair(self, key_name: str, public_key: str) -> str:
        name = keypair_name(key_name, public_key)
        conn = self.conn
        with self.errors("look up key pair"):
            found = get_or_none(conn.compute.get_keypair, name)
        if found is None:
            try:
                with self.errors("import key pair", create=True):
                    conn.compute.create_keypair(name=name, public_key=public_key)
            except TemporaryError:  # a 409: imported meanwhile by another worker?
                with self.errors("look up key pair"):
                    if get_or_none(conn.compute.get_keypair, name) is None:
                        raise
        return name

    def remove(self, conn: Connection, obj: Any) -> None:
        conn.compute.delete_server(obj, ignore_missing=True)
