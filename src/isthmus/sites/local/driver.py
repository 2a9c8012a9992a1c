"""`LocalDriver`: the embedded site's implementation of the driver contract
(see sites/base.py).

Config keys (all optional): `vcpus`, `ram_mb`, `disk_gb` (capacity),
`boot_seconds` (time a server spends in BUILD), `directory` (where its state lives),
`data_plane` (true: real namespaces, VXLAN + BGP EVPN and nftables where the machine
can run them, see plumbing.py; a data-plane server's site id is its namespace name),
`fabric_dir` (where the shared fabric state lives, default `<directory>/../_fabric`),
`copy_rate` (bytes/s: the simulated WAN bandwidth image copies into this site get, as a
remote site would; default 0 = unlimited; copies report progress, see images.py).
Routers and floating IPs are objects of the site too (in the data plane, a router
namespace with NAT for the floating IPs: fabric/routing.py).
The site can be taken down and brought back (`set_down`), which makes every call
raise SiteUnavailable, as a powered-off cloud would.

Objects made in the site outside Isthmus (an operator working on `self.state`
directly, the way one would use a cloud's own API) carry an empty tag: `foreign()`
lists them, `inventory()` leaves them out, and they still take capacity.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from isthmus.errors import PermanentError, SiteUnavailable, TemporaryError
from isthmus.model.specs import (
    FloatingIpSpec,
    ImageSpec,
    NetworkSpec,
    PortSpec,
    RouterSpec,
    SecurityGroupSpec,
    ServerSpec,
    SnapshotSpec,
    Spec,
    SubnetSpec,
    VolumeSpec,
)
from isthmus.sites.base import ForeignObject, Observed, SiteReport
from isthmus.sites.local.images import copy_image, file_md5, file_stats
from isthmus.sites.local.plumbing import SitePlumbing, data_plane_status, fabric_directory
from isthmus.sites.local.state import SiteObject, SiteState

DEFAULT_CAPACITY = {"vcpus": 64, "ram_mb": 131072, "disk_gb": 2000}
BUSY = ("BUILD", "REBOOT", "REBUILD", "RESIZE")  # a server's status until its ready_at
RUN_STATUSES = {
    "active": "ACTIVE",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "rescued": "RESCUE",
}
CONSOLE_LINES = 1000  # a server's console log keeps its last lines


def settled_status(spec: dict[str, Any]) -> str:
    """What a server shows once done: SHUTOFF when powered off, else the status of
    its run state (ACTIVE, PAUSED, SUSPENDED)."""
    if not spec.get("power_on", True):
        return "SHUTOFF"
    return RUN_STATUSES.get(str(spec.get("run_state") or "active"), "ACTIVE")


class LocalDriver:
    """The embedded site named `name`, its state under `directory`."""

    def __init__(self, name: str, directory: Path, config: dict[str, Any] | None = None) -> None:
        config = config or {}
        self.name = name
        self.directory = directory
        self.capacity = {
            key: int(config.get(key, value)) for key, value in DEFAULT_CAPACITY.items()
        }
        self.boot_seconds = float(config.get("boot_seconds", 0.0))
        self.copy_rate = float(config.get("copy_rate", 0) or 0)
        self.state = SiteState(directory)
        self._down_flag = directory / "DOWN"
        on, self.data_plane = data_plane_status(config)
        self.plumbing: SitePlumbing | None = None
        self._plumbing_lock = threading.Lock()  # delete/retire vs. a rebuild in check()
        if on:
            from isthmus.fabric.dataplane import EmbeddedFabric

            fabric = EmbeddedFabric(fabric_directory(directory, config))
            self.plumbing = SitePlumbing(name, self.state, fabric)

    # -- power of the whole site (embedded sites only) --------------------------

    def set_down(self, down: bool) -> None:
        """Take the site down (every call fails with SiteUnavailable) or bring it back."""
        if down:
            self._down_flag.write_text("down\n")
        else:
            self._down_flag.unlink(missing_ok=True)

    @property
    def is_down(self) -> bool:
        return self._down_flag.exists()

    def _reachable(self) -> None:
        if self.is_down:
            raise SiteUnavailable(f"embedded site {self.name} is down")

    # -- contract ----------------------------------------------------------------

    def check(self) -> SiteReport:
        """Health and capacity. With the data plane, this also repairs it: when the
        site holds objects whose kernel side is not there (after `isthmus down` tore
        the fabric down, a reboot, or a namespace removed by hand: `healthy()`), it
        plumbs them again from the site's own state (`SitePlumbing.rebuild`) before
        reporting: `up` once that worked, else `degraded` with what is still wrong.
        The health loop calls it every few seconds; on a healthy site it only looks."""
        self._reachable()
        trouble = self.plumbing.healthy() if self.plumbing else ""
        if trouble and self.plumbing is not None:
            with self._plumbing_lock:
                failed = self.plumbing.rebuild()
                trouble = self.plumbing.healthy()
            if failed:
                trouble = f"data plane rebuild: {failed[0]}"[:255]
        return SiteReport(
            health="degraded" if trouble else "up",
            message=trouble,
            capacity=dict(self.capacity),
            usage=self._usage(),
            data_plane=self.data_plane,
        )

    def ensure(self, spec: Spec) -> Observed:
        self._reachable()
        # Each handler takes its own Spec type; spec.kind picks the one that matches.
        handlers: dict[str, Callable[[Any], Observed]] = {
            "network": self._ensure_network,
            "subnet": self._ensure_subnet,
            "security_group": self._ensure_security_group,
            "port": self._ensure_port,
            "image": self._ensure_image,
            "server": self._ensure_server,
            "volume": self._ensure_volume,
            "snapshot": self._ensure_snapshot,
            "router": self._ensure_router,
            "floating_ip": self._ensure_floating_ip,
        }
        handler = handlers.get(spec.kind)
        if handler is None:
            raise PermanentError(f"embedded sites have no {spec.kind} objects")
        return handler(spec)

    def delete(self, kind: str, isthmus_id: str) -> None:
        self._reachable()
        for obj in self.state.find_all(kind, isthmus_id):
            if kind == "network" and self._children("port", "network_id", isthmus_id):
                raise TemporaryError(f"network {isthmus_id} still has ports in {self.name}", 0.5)
            if kind == "network" and self._routers_on(isthmus_id):
                raise TemporaryError(f"network {isthmus_id} still has a router in {self.name}", 0.5)
            if kind == "volume" and obj.spec.get("attached_server_id"):
                raise PermanentError(f"volume {isthmus_id} is attached; detach it first")
            if kind == "volume" and self.state.find("server", obj.spec.get("root_of") or ""):
                raise TemporaryError(f"volume {isthmus_id} boots a server still here", 0.5)
            if kind == "image":
                (self.directory / "images" / obj.site_id).unlink(missing_ok=True)
            if kind == "server":
                self._console_path(obj.site_id).unlink(missing_ok=True)
            if self.plumbing is not None:
                with self._plumbing_lock:  # a rebuild in check() must not re-plumb it
                    self._unplug(obj)
                    self.state.remove(obj.site_id)
            else:
                self.state.remove(obj.site_id)
            if kind == "floating_ip" and self.plumbing is not None:
                self.plumbing.floating_ips_changed(obj.spec.get("router_id", ""))

    def observe(self, kind: str, isthmus_id: str) -> Observed | None:
        self._reachable()
        obj = self.state.find(kind, isthmus_id)
        return self._observed(obj) if obj else None

    def inventory(self) -> list[Observed]:
        self._reachable()
        return [self._observed(obj) for obj in self.state.list() if obj.tag]

    def foreign(self) -> list[ForeignObject]:
        self._reachable()
        return [
            ForeignObject(obj.kind, obj.site_id, obj.name)
            for obj in self.state.list()
            if not obj.tag
        ]

    def retire(self) -> None:
        """The site is being removed from Isthmus: with the data plane, the FRR and
        namespaces Isthmus runs for it go (its servers', routers' and gateway's,
        `SitePlumbing.retire`); then its on-disk state goes (the objects' database,
        the image copies, the DOWN flag; the directory too once nothing else is in
        it: an operator's own files in a configured `directory` stay), so a site
        added again under the same name starts empty and up. Works while the site
        is down; calling it again succeeds."""
        try:
            if self.plumbing is not None:
                with self._plumbing_lock:
                    self.plumbing.retire()
        finally:  # the removal stands either way (registry.retire logs a failure)
            images = self.directory / "images"
            for obj in self.state.list():  # only the copies this site made: a configured
                if obj.kind == "image":  # `directory` may hold an operator's own files
                    (images / obj.site_id).unlink(missing_ok=True)
            self.state.destroy()
            self._down_flag.unlink(missing_ok=True)
            console = self.directory / "console"
            if console.is_dir():
                for log in console.glob("*.log"):
                    log.unlink(missing_ok=True)
            for path in (images, console, self.directory):
                with contextlib.suppress(OSError):  # not empty: what is left is not ours
                    path.rmdir()

    def close(self) -> None:
        self.state.close()

    def console_output(self, isthmus_id: str, length: int | None = None) -> str:
        """The server's console log: the lines this site wrote as it booted,
        rebooted, rebuilt, resized, paused, suspended or powered the server off and
        on (an embedded server has no guest of its own; with the data plane its
        namespace keeps running while paused or suspended: only the recorded state
        changes). Its tail as Nova's libvirt driver cuts it: the last `length` pieces
        of the log split at newlines (None: all; 0: nothing). PermanentError when
        the site holds no such server."""
        self._reachable()
        obj = self.state.find("server", isthmus_id)
        if obj is None:
            raise PermanentError(f"server {isthmus_id} is not in site {self.name}")
        path = self._console_path(obj.site_id)
        text = path.read_text() if path.is_file() else ""
        if length is None:
            return text
        return "\n".join(text.split("\n")[-length:]) if length > 0 else ""

    def _console_path(self, site_id: str) -> Path:
        return self.directory / "console" / f"{site_id}.log"

    def _console(self, site_id: str, message: str) -> None:
        """Append one line to a server's console log (kept to its last lines)."""
        path = self._console_path(site_id)
        path.parent.mkdir(exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
        lines.append(f"[{stamp}] isthmus-site {self.name}: {message}\n")
        path.write_text("".join(lines[-CONSOLE_LINES:]))

    # -- helpers -------------------------------------------------------------------

    def _observed(self, obj: SiteObject) -> Observed:
        status = obj.status
        if obj.kind == "server" and status in BUSY and time.time() >= obj.ready_at:
            status = settled_status(obj.spec)
        details = {"created_at": obj.created_at}
        if obj.kind == "volume" and obj.spec.get("attached_server_id"):
            details["attached_server_id"] = obj.spec["attached_server_id"]
        if obj.kind == "volume" and obj.spec.get("root_of"):  # in-use while its server is here
            status = "in-use" if self.state.find("server", obj.spec["root_of"]) else "attaching"
        return Observed(
            kind=obj.kind,
            isthmus_id=obj.tag,
            site_id=obj.site_id,
            status=status,
            fault=obj.fault,
            details=details,
        )

    def _children(self, kind: str, key: str, isthmus_id: str) -> list[SiteObject]:
        return [o for o in self.state.list(kind) if o.spec.get(key) == isthmus_id]

    def _require(self, kind: str, isthmus_id: str, for_what: str) -> SiteObject:
        obj = self.state.find(kind, isthmus_id)
        if obj is None:
            raise TemporaryError(
                f"{for_what} needs {kind} {isthmus_id}, not yet present in site {self.name}", 0.2
            )
        return obj

    def _upsert(self, spec: Spec, status: str, ready_at: float | None = None) -> SiteObject:
        body = asdict(spec)
        obj = self.state.find(spec.kind, spec.isthmus_id)
        if obj is None:
            return self.state.create(spec.kind, spec.isthmus_id, spec.name, body, status, ready_at)
        if obj.spec != body or obj.name != spec.name:
            self.state.update(obj.site_id, spec=body, name=spec.name)
            obj.spec = body
        return obj

    def _usage(self) -> dict[str, int]:
        servers = self.state.totals("server", ("vcpus", "ram_mb", "disk_gb"))
        volumes = self.state.totals("volume", ("size_gb",))
        return {
            "vcpus": servers["vcpus"],
            "ram_mb": servers["ram_mb"],
            "disk_gb": servers["disk_gb"] + volumes["size_gb"],
            "servers": servers["count"],
            "volumes": volumes["count"],
        }

    # -- per kind ------------------------------------------------------------------

    def _unplug(self, obj: SiteObject) -> None:
        assert self.plumbing is not None
        if obj.kind == "server":
            self.plumbing.server_absent(obj.tag)
        elif obj.kind == "port":
            self.plumbing.port_absent(obj.tag)
        elif obj.kind == "network":
            self.plumbing.network_absent(obj)
        elif obj.kind == "router":
            self.plumbing.router_absent(obj.tag)

    def _ensure_network(self, spec: NetworkSpec) -> Observed:
        if self.plumbing is not None:
            self.plumbing.network_present(asdict(spec))
        return self._observed(self._upsert(spec, "ACTIVE"))

    def _ensure_subnet(self, spec: SubnetSpec) -> Observed:
        self._require("network", spec.network_id, f"subnet {spec.isthmus_id}")
        return self._observed(self._upsert(spec, "ACTIVE"))

    def _ensure_security_group(self, spec: SecurityGroupSpec) -> Observed:
        obj = self._upsert(spec, "ACTIVE")
        if self.plumbing is not None:
            self.plumbing.security_group_changed(spec.isthmus_id)
        return self._observed(obj)

    def _ensure_port(self, spec: PortSpec) -> Observed:
        self._require("network", spec.network_id, f"port {spec.isthmus_id}")
        for fixed_ip in spec.fixed_ips:
            self._require("subnet", fixed_ip.subnet_id, f"port {spec.isthmus_id}")
        for group_id in spec.security_group_ids:
            self._require("security_group", group_id, f"port {spec.isthmus_id}")
        obj = self._upsert(spec, "ACTIVE")
        if self.plumbing is not None:
            self.plumbing.port_changed(spec.isthmus_id)
        return self._observed(obj)

    def _ensure_image(self, spec: ImageSpec) -> Observed:
        if spec.snapshot_of:
            return self._snapshot(spec)
        obj = self.state.find("image", spec.isthmus_id)
        if obj is not None and obj.status == "active":
            return self._observed(obj)
        source = Path(spec.data_path)
        if not source.is_file():
            raise PermanentError(f"image {spec.isthmus_id} has no data at {source}")
        if obj is None:
            obj = self.state.create("image", spec.isthmus_id, spec.name, asdict(spec), "saving")
        target_dir = self.directory / "images"
        target_dir.mkdir(exist_ok=True)
        target = target_dir / obj.site_id
        copy_image(source, target, self.copy_rate)
        digest = file_md5(target)
        if spec.checksum and digest != spec.checksum:
            target.unlink(missing_ok=True)
            raise TemporaryError(f"image {spec.isthmus_id} copy failed its checksum check", 1.0)
        self.state.update(obj.site_id, status="active")
        obj.status = "active"
        return self._observed(obj)

    def _snapshot(self, spec: ImageSpec) -> Observed:
        """Nova's createImage in the embedded site. An embedded server has no disk of
        its own: its root disk is the site's copy of the image it booted from
        (unchanged: nothing writes to it), so the snapshot's bytes are that copy's
        (none for a server without an image). They go to `spec.data_path` (Isthmus'
        image store) and stay in the site as this image's copy; the answer's
        `snapshot` detail has Glance's figures of them."""
        server = self.state.find("server", spec.snapshot_of or "")
        if server is None:
            raise PermanentError(
                f"image {spec.isthmus_id}: server {spec.snapshot_of} is not in site {self.name}"
            )
        obj = self.state.find("image", spec.isthmus_id)
        if obj is None:
            obj = self.state.create("image", spec.isthmus_id, spec.name, asdict(spec), "saving")
        target_dir = self.directory / "images"
        target_dir.mkdir(exist_ok=True)
        copy = target_dir / obj.site_id
        boot_image = server.spec.get("image_id")
        source = self.state.find("image", boot_image) if boot_image else None
        if source is not None and (target_dir / source.site_id).is_file():
            copy_image(target_dir / source.site_id, copy)
        else:
            copy.write_bytes(b"")
        copy_image(copy, Path(spec.data_path))
        self._console(server.site_id, f"image {spec.isthmus_id} made of the root disk")
        self.state.update(obj.site_id, status="active")
        obj.status = "active"
        observed = self._observed(obj)
        details = {**observed.details, "snapshot": file_stats(copy)}
        return Observed(obj.kind, obj.tag, obj.site_id, "active", None, details)

    def _ensure_server(self, spec: ServerSpec) -> Observed:
        existing = self.state.find("server", spec.isthmus_id)
        if existing is not None:
            updated = self._update_server(existing, spec)
            if self.plumbing is not None:
                self.plumbing.server_present(updated.spec)
            return self._observed(updated)
        for port_id in spec.port_ids:
            self._require("port", port_id, f"server {spec.isthmus_id}")
        if spec.image_id:
            self._require("image", spec.image_id, f"server {spec.isthmus_id}")
        if spec.root_volume_id:  # booted from a volume (recorded: no guest disk here)
            self._require("volume", spec.root_volume_id, f"server {spec.isthmus_id}")
        usage = self._usage()
        for key, need in (
            ("vcpus", spec.vcpus),
            ("ram_mb", spec.ram_mb),
            ("disk_gb", spec.disk_gb),
        ):
            free = self.capacity[key] - usage[key]
            if need > free:
                raise PermanentError(
                    f"No valid host was found: site {self.name} has {free} {key} free,"
                    f" server {spec.isthmus_id} needs {need}"
                )
        ready_at = time.time() + self.boot_seconds
        site_id = None
        if self.plumbing is not None:
            self.plumbing.server_present(asdict(spec))
            site_id = self.plumbing.server_namespace(spec.isthmus_id)
        obj = self.state.create(
            "server", spec.isthmus_id, spec.name, asdict(spec), "BUILD", ready_at, site_id
        )
        for line in self._boot_log(spec):
            self._console(obj.site_id, line)
        return self._observed(obj)

    def _boot_log(self, spec: ServerSpec) -> list[str]:
        """What the embedded site writes to a new server's console: what it was
        given (no guest OS runs here; these lines are the site's own account)."""
        lines = [
            f"booting {spec.name} ({spec.isthmus_id}) from image {spec.image_id}:"
            f" {spec.vcpus} vCPU, {spec.ram_mb} MiB, {spec.disk_gb} GiB,"
            f" {len(spec.port_ids)} NIC(s)",
            f"site {self.name}: embedded, no guest OS: this log is the site's account",
            f"cpu: {spec.vcpus} virtual CPU(s)",
            f"memory: {spec.ram_mb} MiB",
            f"root disk: {spec.disk_gb} GiB"
            + (f" from image {spec.image_id}" if spec.image_id else " (no image)"),
            f"flavor: {spec.flavor_name or '-'}",
        ]
        lines += [f"eth{i}: port {port}" for i, port in enumerate(spec.port_ids)]
        lines += [
            f"key pair: {spec.key_name or '-'}",
            f"user data: {len(spec.user_data or '')} bytes",
            f"metadata: {', '.join(f'{k}={v}' for k, v in spec.metadata) or '-'}",
            f"data plane: {self.data_plane}",
            "power: " + ("on" if spec.power_on else "off (created stopped)"),
            f"{spec.name} login:",
        ]
        return lines

    def _update_server(self, obj: SiteObject, spec: ServerSpec) -> SiteObject:
        """A higher rebuild_count makes the server again from its image (REBUILD for
        boot_seconds), a new size resizes it (RESIZE), a higher reboot_count reboots
        it; power and run state (paused, suspended) change at once. The server's
        console log records each (`console_output`)."""
        body = asdict(spec)
        old = obj.spec
        fields: dict[str, Any] = {}
        later = time.time() + self.boot_seconds
        resized = any(body[k] != old.get(k) for k in ("vcpus", "ram_mb", "disk_gb"))
        if body["rebuild_count"] > old.get("rebuild_count", 0):
            if spec.image_id:
                self._require("image", spec.image_id, f"server {spec.isthmus_id}")
            fields.update(status="REBUILD", ready_at=later)
            self._console(obj.site_id, f"rebuilding from image {spec.image_id}")
        elif resized:
            fields.update(status="RESIZE", ready_at=later)
            self._console(
                obj.site_id, f"resized to {spec.vcpus} vCPU, {spec.ram_mb} MiB, {spec.disk_gb} GiB"
            )
        elif body["reboot_count"] > old.get("reboot_count", 0) and spec.power_on:
            fields.update(status="REBOOT", ready_at=later)
            self._console(obj.site_id, "reboot")
        elif body["power_on"] != old.get("power_on", True) or body["run_state"] != old.get(
            "run_state", "active"
        ):
            fields.update(status="BUILD", ready_at=time.time())
            self._console(obj.site_id, f"now {settled_status(body).lower()}")
        if body != obj.spec:
            fields["spec"] = body
        if fields:
            self.state.update(obj.site_id, **fields)
            refreshed = self.state.get(obj.site_id)
            assert refreshed is not None
            return refreshed
        return obj

    def _ensure_volume(self, spec: VolumeSpec) -> Observed:
        """A volume is a record (embedded sites keep no volume data): made from its
        snapshot, source volume or image, which must be in this site when it is
        first made (the image's copy, sites/local/images.py); attached or not."""
        if self.state.find("volume", spec.isthmus_id) is None:
            for kind, source in (
                ("snapshot", spec.snapshot_id),
                ("volume", spec.source_volid),
                ("image", spec.image_id),
            ):
                if source:
                    self._require(kind, source, f"volume {spec.isthmus_id}")
        if spec.attached_server_id:
            self._require("server", spec.attached_server_id, f"volume {spec.isthmus_id}")
        status = "in-use" if spec.attached_server_id else "available"
        if spec.root_of:  # the server's to attach: in-use once it is here (poll until then)
            status = "in-use" if self.state.find("server", spec.root_of) else "attaching"
        obj = self._upsert(spec, status)
        if obj.status != status:
            self.state.update(obj.site_id, status=status)
            obj.status = status
        return self._observed(obj)

    def _ensure_snapshot(self, spec: SnapshotSpec) -> Observed:
        self._require("volume", spec.volume_id, f"snapshot {spec.isthmus_id}")
        return self._observed(self._upsert(spec, "available"))

    def _routers_on(self, network_id: str) -> list[SiteObject]:
        return [
            router
            for router in self.state.list("router")
            if any(i.get("network_id") == network_id for i in router.spec.get("interfaces", []))
        ]

    def _ensure_router(self, spec: RouterSpec) -> Observed:
        """Needs the site objects of its interfaces' networks; in the data plane its
        namespace is shaped like `spec` (with the NAT of its floating IPs here)."""
        for interface in spec.interfaces:
            self._require("network", interface.network_id, f"router {spec.isthmus_id}")
        obj = self._upsert(spec, "ACTIVE")
        if self.plumbing is not None:
            self.plumbing.router_present(obj.spec)
        return self._observed(obj)

    def _ensure_floating_ip(self, spec: FloatingIpSpec) -> Observed:
        """Needs its router and its port here; in the data plane it is 1:1 NAT in
        the router's namespace."""
        self._require("router", spec.router_id, f"floating IP {spec.isthmus_id}")
        self._require("port", spec.port_id, f"floating IP {spec.isthmus_id}")
        previous = self.state.find("floating_ip", spec.isthmus_id)
        obj = self._upsert(spec, "ACTIVE")
        if self.plumbing is not None:
            if previous is not None and previous.spec.get("router_id") != spec.router_id:
                self.plumbing.floating_ips_changed(previous.spec.get("router_id", ""))
            self.plumbing.floating_ips_changed(spec.router_id)
        return self._observed(obj)
