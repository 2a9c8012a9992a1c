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
  higher reboot_count reboots it (soft). `run_state` pauses/unpauses and
  suspends/resumes and rescues/unrescues it (a paused, suspended or rescued
  server is brought back to ACTIVE before it is stopped, as Nova stops only an
  active one). A higher
  `rebuild_count` (recorded as `isthmus_rebuilds`) rebuilds it from the spec's
  image; a flavor other than the spec's resizes it, and the driver confirms the
  site's VERIFY_RESIZE itself (Isthmus keeps its own VERIFY_RESIZE). Interfaces
  are attached and detached to match `port_ids`. Until the site has done it, the
  status reported is transient (BUILD, REBOOT, REBUILD or RESIZE) so the engine
  keeps polling; Nova's own statuses pass through otherwise (ACTIVE, BUILD,
  SHUTOFF, PAUSED, SUSPENDED, ERROR with its fault message; HARD_REBOOT reads as
  REBOOT).
- console output: Nova's os-getConsoleOutput of the site server.
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
REBUILDS_KEY = "isthmus_rebuilds"
GOING = {"DELETED", "SOFT_DELETED"}
SETTLED = ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE")
RUN_STATUSES = {
    "active": "ACTIVE",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "rescued": "RESCUE",
}


def nova_status(obj: Any) -> str:
    """The driver-neutral status of a Nova server (see the module docstring)."""
    status = str(field(obj, "status", "BUILD")).upper()
    task = field(obj, "task_state")
    if status == "ERROR":
        return status
    if status in ("REBOOT", "HARD_REBOOT") or (task and str(task).startswith("reboot")):
        return "REBOOT"
    if status == "REBUILD" or (task and str(task).startswith("rebuild")):
        return "REBUILD"
    if status in ("RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE") or (
        task and str(task).startswith("resize")
    ):
        return "RESIZE"
    if task and task != "deleting":
        return "BUILD"
    return status


def _count(metadata: dict[str, Any], key: str) -> int:
    try:
        return int(metadata.get(key, 0))
    except (TypeError, ValueError):
        return 0


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

    def _metadata(self, spec: ServerSpec, reboots: int, rebuilds: int) -> dict[str, str]:
        return {
            **dict(spec.metadata),
            MARKER: spec.isthmus_id,
            NAME_KEY: spec.name[:255],
            REBOOTS_KEY: str(reboots),
            REBUILDS_KEY: str(rebuilds),
        }

    def _create(self, spec: ServerSpec) -> Observed:
        conn = self.conn
        for_what = f"server {spec.isthmus_id}"
        ports = self.site.kinds["port"]
        nics = [{"port": ports.require(p, for_what).id} for p in spec.port_ids]
        root: list[dict[str, Any]] = []
        image_id: str | None = None
        if spec.root_volume_id:  # boot from the site's copy of the root volume
            volume = self.site.kinds["volume"].require(spec.root_volume_id, for_what)
            root = [
                {
                    "uuid": volume.id,
                    "source_type": "volume",
                    "destination_type": "volume",
                    "boot_index": 0,
                    "delete_on_termination": False,  # Isthmus deletes it (or not) itself
                }
            ]
        elif spec.image_id:
            image_id = self.site.kinds["image"].require(spec.image_id, for_what).id
        else:
            image_id = self._default_image(spec)
        body: dict[str, Any] = {
            "name": site_name(spec.isthmus_id),
            "flavor_id": self._flavor(spec),
            **({"image_id": image_id} if image_id else {"block_device_mapping": root}),
            "networks": nics or "none",
            "metadata": self._metadata(spec, spec.reboot_count, spec.rebuild_count),
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
        site_status = str(field(obj, "status", "")).upper()
        if site_status == "VERIFY_RESIZE":  # Isthmus keeps the verify step itself
            with self.errors("confirm resize"):
                self.conn.compute.confirm_server_resize(obj)
            return self._transient(obj, spec, "RESIZE")
        status = self.status(obj)
        if status != site_status or status not in SETTLED:
            return self.observed(obj, spec.isthmus_id)  # busy, building or ERROR: look later
        conn = self.conn
        metadata = dict(field(obj, "metadata", {}) or {})
        reboots = _count(metadata, REBOOTS_KEY)
        rebuilds = _count(metadata, REBUILDS_KEY)
        reboot = spec.power_on and spec.reboot_count > reboots
        rebuild = spec.rebuild_count > rebuilds
        wanted = self._metadata(
            spec, max(reboots, spec.reboot_count), max(rebuilds, spec.rebuild_count)
        )
        if metadata != wanted:
            # recorded before the reboot or rebuild is asked for: a crash in between
            # loses one rather than doing it twice
            with self.errors("set metadata"):
                response = conn.compute.put(
                    f"/servers/{obj.id}/metadata", json={"metadata": wanted}
                )
                sdk.raise_from_response(response)
        if rebuild:
            image = self._image(spec)
            with self.errors("rebuild"):
                conn.compute.rebuild_server(obj, image=image)
            return self._transient(obj, spec, "REBUILD")
        flavor = self._flavor(spec)
        if not self._has_flavor(obj, flavor):
            with self.errors("resize"):
                conn.compute.resize_server(obj, flavor)
            return self._transient(obj, spec, "RESIZE")
        transient = self._power(obj, spec, status, reboot)
        if transient is None and status in ("ACTIVE", "PAUSED", "SHUTOFF"):
            self._interfaces(obj, spec)
        if transient is None:
            return self.observed(obj, spec.isthmus_id)
        return self._transient(obj, spec, transient)

    def _power(self, obj: Any, spec: ServerSpec, status: str, reboot: bool) -> str | None:
        """Ask the site for one step towards the spec's power and run state; the
        transient status to report, or None when it is there already."""
        compute = self.conn.compute
        wanted = RUN_STATUSES.get(spec.run_state, "ACTIVE") if spec.power_on else "SHUTOFF"
        with self.errors("change power state"):
            if status == wanted:
                if reboot and status == "ACTIVE":
                    compute.reboot_server(obj, "SOFT")
                    return "REBOOT"
                return None
            if status == "SHUTOFF":
                compute.start_server(obj)
            elif status == "PAUSED":
                compute.unpause_server(obj)
            elif status == "SUSPENDED":
                compute.resume_server(obj)
            elif status == "RESCUE":
                compute.unrescue_server(obj)
            elif wanted == "SHUTOFF":
                compute.stop_server(obj)
            elif wanted == "PAUSED":
                compute.pause_server(obj)
            elif wanted == "SUSPENDED":
                compute.suspend_server(obj)
            elif wanted == "RESCUE":
                compute.rescue_server(obj)
        return "BUILD"

    def _interfaces(self, obj: Any, spec: ServerSpec) -> None:
        """Attach the spec's ports the site server lacks, detach the others."""
        compute = self.conn.compute
        ports = self.site.kinds["port"]
        for_what = f"server {spec.isthmus_id}"
        wanted = {ports.require(p, for_what).id for p in spec.port_ids}
        with self.errors("list interfaces"):
            present = {str(i.port_id) for i in compute.server_interfaces(obj)}
        with self.errors("attach interface"):
            for port_id in sorted(wanted - present):
                compute.create_server_interface(obj, port_id=port_id)
        with self.errors("detach interface"):
            for port_id in sorted(present - wanted):
                compute.delete_server_interface(port_id, server=obj, ignore_missing=True)

    def _transient(self, obj: Any, spec: ServerSpec, status: str) -> Observed:
        observed = self.observed(obj, spec.isthmus_id)
        return Observed(
            kind=observed.kind,
            isthmus_id=observed.isthmus_id,
            site_id=observed.site_id,
            status=status,
            details=observed.details,
        )

    def _image(self, spec: ServerSpec) -> str:
        if spec.image_id:
            return str(
                self.site.kinds["image"].require(spec.image_id, f"server {spec.isthmus_id}").id
            )
        return self._default_image(spec)

    def _has_flavor(self, obj: Any, flavor_id: str) -> bool:
        """Whether the site server has the site flavor `flavor_id` (Nova 2.47+ shows
        the flavor's name, not its id)."""
        current = field(obj, "flavor") or {}
        ids = {str(field(current, "id") or ""), str(field(current, "original_name") or "")}
        ids.add(str(field(current, "name") or ""))
        flavors = self.site.cached("flavors", self._load_flavors)
        names = {str(f["name"]) for f in flavors if str(f["id"]) == flavor_id}
        return flavor_id in ids or bool(names & ids)

    def console_output(self, isthmus_id: str, length: int | None) -> str:
        obj = self.find(isthmus_id)
        if obj is None:
            raise PermanentError(f"server {isthmus_id} is not in site {self.site.name}")
        with self.errors("get console output"):
            answer = self.conn.compute.get_server_console_output(obj, length=length)
        return str((answer or {}).get("output") or "")

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
