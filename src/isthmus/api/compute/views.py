"""How Compute v2.1 shows a server: Nova's status / vm_state / task_state /
power_state derived from intent and the site's binding, and the server body
(addresses from its ports, attached volumes, flavor and image references).

State rules (status is what the engine last observed in the server's site;
`server_state` in intent/server_actions.py, which also decides the actions a
state allows):
- status BUILD: vm_state building, task_state scheduling until a site holds the
  server, then spawning; ERROR: vm_state error plus a `fault` from
  `observed["fault"]`; SHUTOFF: stopped; ACTIVE and REBOOT: active.
- A change the site has not applied yet shows as Nova's task in flight: stop
  (spec power_on false) -> powering-off, start -> powering-on, a reboot asked
  at generation g and not yet applied -> REBOOT/rebooting (HARD_REBOOT/
  rebooting_hard); a delete -> deleting, until the engine removes the row.

Microversions (common.request_version; Nova's rest_api_version_history and
Tempest's schemas v2_*): 2.3 more OS-EXT-SRV-ATTR fields for admins and
volumes_attached[].delete_on_termination; 2.9 locked; 2.16 host_status (admins;
the site's health); 2.19 description; 2.26 tags; 2.47 the embedded flavor instead
of its id and link; 2.63 trusted_image_certificates (null: not supported); 2.71
server_groups (show and update only); 2.73 locked_reason; 2.75 update answers the
whole server (servers.py); 2.90 OS-EXT-SRV-ATTR:hostname for everyone; 2.96
pinned_availability_zone (the zone asked for at create). `versioned_fields` adds
them, in one place, to show, list detail and update.

`ServerViews` loads what a batch of servers needs in a handful of queries, so a
list page costs the same few queries whatever its length: each kind of related
row (ports with their network's name and volumes; bindings; floating IPs) in one
prepared statement, on first use, as plain rows rather than ORM objects. A list
reads each server's binding in its site with the server row (`with_site_binding`).
"""

from __future__ import annotations

import hashlib
from collections import namedtuple
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from fastapi import Request
from sqlalchemy import BindParameter, Select, and_, bindparam, select
from sqlalchemy.orm import Session, aliased

from isthmus.api.catalog import base_url_of
from isthmus.api.compute.common import bookmark, links, request_version
from isthmus.api.compute.validation import hostname_from_name
from isthmus.api.context import RequestContext
from isthmus.intent.server_actions import ServerState, server_state
from isthmus.store import repo
from isthmus.store.tables import Binding, Resource, Site

RUNNING_STATUSES = (
    "ACTIVE",
    "SHUTOFF",
    "REBOOT",
    "HARD_REBOOT",
    "PAUSED",
    "SUSPENDED",
    "REBUILD",
    "RESIZE",
    "VERIFY_RESIZE",
    "REVERT_RESIZE",
    "RESCUE",
)
ROOT_DEVICE = "/dev/vda"


def launched_format(moment: datetime | None) -> str | None:
    """Nova's OS-SRV-USG timestamps (no zone suffix, microseconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") if moment else None


@lru_cache(maxsize=4096)
def host_id(project_id: str | None, site: str | None) -> str:
    """Nova's hostId: an opaque per-project hash of the host (here: the site)."""
    if not site:
        return ""
    return hashlib.sha224(f"{project_id or ''}{site}".encode()).hexdigest()


@dataclass(frozen=True)
class _Network:
    id: str
    name: str


@lru_cache(maxsize=64)
def _record_type(fields: tuple[str, ...]) -> Any:
    return namedtuple("Record", fields, rename=True)


def records(result: Iterable[Any]) -> list[Any]:
    """The rows of a query result as named tuples: the same attributes as the rows,
    read some ten times cheaper than a SQLAlchemy Row's (a body reads dozens)."""
    rows = list(result)
    if not rows:
        return []
    make = _record_type(tuple(rows[0]._fields))._make
    return [make(row) for row in rows]


def _in_chunks(values: list[str], size: int = 1000) -> list[list[str]]:
    """`values` in slices of at most `size` (one IN list each; none when empty)."""
    return [values[i : i + size] for i in range(0, len(values), size)]


# The columns of servers and of the related rows a server body needs. Lists read
# them as plain rows (attribute access like the ORM objects, without the cost of
# the identity map per row); the views take Resource objects as well.
SERVER_COLUMNS = (
    Resource.id,
    Resource.kind,
    Resource.project_id,
    Resource.name,
    Resource.status,
    Resource.site,
    Resource.parent_id,
    Resource.device_id,
    Resource.generation,
    Resource.deleting,
    Resource.spec,
    Resource.observed,
    Resource.created_at,
    Resource.updated_at,
)
_network = aliased(Resource, name="network")
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
# what is attached to servers: their ports (with the name of the port's network)
# and volumes, in one query; deleting volumes and ports are sorted out in Python
_ATTACHED = select(
    Resource.kind,
    Resource.id,
    Resource.device_id,
    Resource.parent_id,
    Resource.status,
    Resource.deleting,
    Resource.spec,
    Resource.created_at,
    _network.name.label("network_name"),
).where(Resource.kind.in_(("port", "volume")), Resource.device_id.in_(_IDS))
_ATTACHED = _ATTACHED.outerjoin(_network, _network.id == Resource.parent_id)
_BINDINGS = select(
    Binding.resource_id, Binding.site, Binding.applied_generation, Binding.updated_at
).where(Binding.resource_id.in_(_IDS))
# a list reads each server's binding in its site along with the server row
_site_binding = aliased(Binding, name="site_binding")
SITE_BINDING_COLUMNS = (
    _site_binding.site.label("binding_site"),
    _site_binding.applied_generation.label("binding_applied_generation"),
    _site_binding.updated_at.label("binding_updated_at"),
)


@dataclass(frozen=True)
class _SiteBinding:
    resource_id: str
    site: str
    applied_generation: int
    updated_at: datetime


def with_site_binding(query: Select[Any]) -> Select[Any]:
    """`query` over servers plus their binding in their site (NULLs without one),
    which ServerViews then takes from the rows instead of loading it."""
    return query.add_columns(*SITE_BINDING_COLUMNS).outerjoin(
        _site_binding,
        and_(_site_binding.resource_id == Resource.id, _site_binding.site == Resource.site),
    )


_FLOATING = select(Resource.name, Resource.spec).where(
    Resource.kind == "floating_ip",
    Resource.deleting.is_(False),
    Resource.spec["port_id"].as_string().in_(_IDS),
)


class ServerViews:
    """The related rows of a batch of servers, each kind loaded once, on first use
    (a list page costs the same few queries whatever its length; a filter or a
    body that needs no ports never loads them). The statements are built once.

    `servers` are Resource objects or rows of their columns (anything with the
    same attributes); ports, volumes, bindings, networks and floating IPs are
    rows of the columns the bodies read.
    """

    def __init__(self, session: Session, servers: list[Any]) -> None:
        self.session = session
        self._servers = list(servers)
        self._ids = [s.id for s in self._servers]
        self._ports: dict[str, list[Any]] | None = None
        self._volumes: dict[str, list[Any]] = {}
        self._networks: dict[str, Any] = {}
        self._bindings: dict[str, Any] | None = None
        if self._servers and hasattr(self._servers[0], "binding_site"):  # with_site_binding
            self._bindings = {
                s.id: _SiteBinding(
                    s.id, s.binding_site, s.binding_applied_generation, s.binding_updated_at
                )
                for s in self._servers
                if s.binding_site is not None
            }
        self._floating: dict[str, list[Any]] | None = None
        self._base: tuple[Request, str] | None = None
        self._host_status: dict[str, str] | None = None

    # -- related rows, loaded on first use -------------------------------------------------

    def _load_attached(self) -> dict[str, list[Any]]:
        ports: dict[str, list[Any]] = {i: [] for i in self._ids}
        volumes: dict[str, list[Any]] = {i: [] for i in self._ids}
        deleting = {s.id for s in self._servers if s.deleting}
        for chunk in _in_chunks(self._ids):
            for row in records(self.session.execute(_ATTACHED, {"ids": chunk})):
                if not row.device_id:
                    continue
                if row.kind == "volume":
                    if not row.deleting:
                        volumes[row.device_id].append(row)
                elif not row.deleting or row.device_id in deleting:
                    ports[row.device_id].append(row)
                    if row.parent_id and row.network_name is not None:
                        self._networks[row.parent_id] = _Network(row.parent_id, row.network_name)
        for port_list in ports.values():
            if len(port_list) > 1:
                port_list.sort(key=lambda p: (p.spec.get("nic_index") or 0, p.created_at, p.id))
        for volume_list in volumes.values():
            if len(volume_list) > 1:
                volume_list.sort(key=lambda v: (v.created_at, v.id))
        self._volumes = volumes
        return ports

    @property
    def ports(self) -> dict[str, list[Any]]:
        """server id -> its ports (a deleting port only for a deleting server), in
        NIC order."""
        if self._ports is None:
            self._ports = self._load_attached()
        return self._ports

    @property
    def volumes(self) -> dict[str, list[Any]]:
        """server id -> the volumes attached to it (rows with `id`)."""
        if self._ports is None:
            self._ports = self._load_attached()
        return self._volumes

    @property
    def networks(self) -> dict[str, Any]:
        """network id -> the network (`id`, `name`) of the servers' ports."""
        if self._ports is None:
            self._ports = self._load_attached()
        return self._networks

    @property
    def bindings(self) -> dict[str, Any]:
        """server id -> its binding in the site it is placed in."""
        if self._bindings is None:
            bindings: dict[str, Any] = {}
            sites = {s.id: s.site for s in self._servers}
            for chunk in _in_chunks(self._ids):
                for binding in records(self.session.execute(_BINDINGS, {"ids": chunk})):
                    if binding.site == sites.get(binding.resource_id):
                        bindings[binding.resource_id] = binding
            self._bindings = bindings
        return self._bindings

    @property
    def floating(self) -> dict[str, list[Any]]:
        """port id -> the floating IPs (rows with `name`, `spec`) associated with it."""
        if self._floating is None:
            floating: dict[str, list[Any]] = {}
            port_ids = [p.id for plist in self.ports.values() for p in plist]
            for chunk in _in_chunks(port_ids):
                for fip in self.session.execute(_FLOATING, {"ids": chunk}):
                    floating.setdefault(str(fip.spec.get("port_id")), []).append(fip)
            self._floating = floating
        return self._floating

    def host_status(self, site: str | None) -> str:
        """Nova's host_status of a server in `site` (2.16): UP, DOWN, MAINTENANCE (a
        disabled site), UNKNOWN (health not known yet), "" when in no site."""
        if not site:
            return ""
        if self._host_status is None:
            rows = self.session.execute(select(Site.name, Site.enabled, Site.health))
            self._host_status = {
                name: (
                    "MAINTENANCE"
                    if not enabled
                    else "DOWN"
                    if health == "down"
                    else "UNKNOWN"
                    if health == "unknown"
                    else "UP"
                )
                for name, enabled, health in rows
            }
        return self._host_status.get(site, "UNKNOWN")

    def server_groups(self, server: Any) -> list[str]:
        """The server group the server joined (2.71), if that group is still there."""
        group_id = (server.spec or {}).get("server_group")
        if not group_id:
            return []
        group = self.session.get(Resource, group_id)
        return [group_id] if group is not None and not group.deleting else []

    def _base_url(self, request: Request) -> str:
        """base_url_of(request), worked out once per request."""
        if self._base is None or self._base[0] is not request:
            self._base = (request, base_url_of(request))
        return self._base[1]

    # -- pieces ----------------------------------------------------------------------------

    def state(self, server: Resource) -> ServerState:
        return server_state(server, self.bindings.get(server.id))

    def addresses(self, server: Resource) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for port in self.ports.get(server.id, []):
            net = self.networks.get(port.parent_id or "")
            label = (net.name if net is not None else "") or (port.parent_id or "")
            mac = port.spec.get("mac_address", "")
            entries = out.setdefault(label, [])
            for fixed in port.spec.get("fixed_ips", []):
                address = str(fixed.get("ip_address", ""))
                entries.append(_address(address, "fixed", mac))
            for fip in self.floating.get(port.id, []):
                address = str(fip.spec.get("floating_ip_address") or fip.name or "")
                if address:
                    entries.append(_address(address, "floating", mac))
        return out

    def ips(self, server: Resource) -> list[str]:
        return [
            str(entry["addr"]) for entries in self.addresses(server).values() for entry in entries
        ]

    def updated(self, server: Resource) -> str | None:
        binding = self.bindings.get(server.id)
        moment = server.updated_at
        if binding is not None and binding.updated_at and binding.updated_at > moment:
            moment = binding.updated_at
        return repo.isoformat(moment)

    # -- bodies ------------------------------------------------------------------------------

    def brief(self, request: Request, server: Any) -> dict[str, Any]:
        base = self._base_url(request)
        return {
            "id": server.id,
            "name": server.name,
            "links": links(request, "servers", server.id, base),
        }

    def detail(
        self,
        request: Request,
        ctx: RequestContext,
        server: Resource,
        extended: bool = True,
        single: bool = True,
    ) -> dict[str, Any]:
        """The server body of show (`single`), list detail (not `single`) and update
        (not `extended` below 2.75), at the request's microversion."""
        version = request_version(request)
        spec = server.spec
        state = self.state(server)
        base = self._base_url(request)
        flavor_id = str((spec.get("flavor") or {}).get("id", ""))
        image_id = spec.get("image_id")
        body: dict[str, Any] = {
            "id": server.id,
            "name": server.name,
            "status": state.status,
            "tenant_id": server.project_id,
            "user_id": spec.get("user_id", ""),
            "metadata": dict(spec.get("metadata") or {}),
            "hostId": host_id(server.project_id, server.site),
            "image": (
                {"id": image_id, "links": bookmark(request, "images", image_id, base)}
                if image_id
                else ""
            ),
            "flavor": (
                embedded_flavor(spec.get("flavor") or {})
                if version >= (2, 47)
                else {"id": flavor_id, "links": bookmark(request, "flavors", flavor_id, base)}
            ),
            "created": repo.isoformat(server.created_at),
            "updated": self.updated(server),
            "addresses": self.addresses(server),
            "accessIPv4": spec.get("access_ipv4") or "",
            "accessIPv6": spec.get("access_ipv6") or "",
            "links": links(request, "servers", server.id, base),
            "OS-DCF:diskConfig": spec.get("disk_config", "MANUAL"),
        }
        if state.status in ("ACTIVE", "BUILD"):
            body["progress"] = 0
        if state.status == "ERROR" and server.observed.get("fault"):
            body["fault"] = {
                "code": 500,
                "message": str(server.observed["fault"]),
                "created": repo.isoformat(server.updated_at),
            }
        if version > (2, 1):
            self.versioned_fields(body, version, ctx, server, extended, single)
        if not extended:
            return body
        binding = self.bindings.get(server.id)
        launched = (
            binding.updated_at if binding is not None and state.status in RUNNING_STATUSES else None
        )
        body.update(
            {
                "key_name": spec.get("key_name"),
                "config_drive": "True" if spec.get("config_drive") else "",
                # a shelved (offloaded) server is in no site: the zone it was in
                "OS-EXT-AZ:availability_zone": server.site or spec.get("shelved_site") or "",
                "OS-EXT-STS:vm_state": state.vm_state,
                "OS-EXT-STS:task_state": state.task_state,
                "OS-EXT-STS:power_state": state.power_state,
                "OS-SRV-USG:launched_at": launched_format(launched),
                "OS-SRV-USG:terminated_at": None,
                "os-extended-volumes:volumes_attached": [
                    {"id": v.id, "delete_on_termination": bool(v.spec.get("delete_on_termination"))}
                    if version >= (2, 3)
                    else {"id": v.id}
                    for v in self.volumes.get(server.id, [])
                ],
                "security_groups": [{"name": n} for n in spec.get("security_groups") or []],
            }
        )
        reason = None if server.deleting else repo.pending_reason(self.session, server)
        if reason:
            body["isthmus:pending_reason"] = reason
        if ctx.is_admin:
            body.update(
                {
                    "OS-EXT-SRV-ATTR:host": server.site,
                    "OS-EXT-SRV-ATTR:hypervisor_hostname": server.site,
                    "OS-EXT-SRV-ATTR:instance_name": f"instance-{server.id[:8]}",
                }
            )
            if version >= (2, 3):
                body.update(
                    {
                        "OS-EXT-SRV-ATTR:reservation_id": spec.get("reservation_id"),
                        "OS-EXT-SRV-ATTR:launch_index": int(spec.get("launch_index") or 0),
                        "OS-EXT-SRV-ATTR:kernel_id": "",
                        "OS-EXT-SRV-ATTR:ramdisk_id": "",
                        "OS-EXT-SRV-ATTR:hostname": server_hostname(server),
                        "OS-EXT-SRV-ATTR:root_device_name": ROOT_DEVICE,
                        "OS-EXT-SRV-ATTR:user_data": spec.get("user_data") or None,
                    }
                )
        if version >= (2, 90):
            body["OS-EXT-SRV-ATTR:hostname"] = server_hostname(server)
        if version >= (2, 16) and ctx.is_admin:
            body["host_status"] = self.host_status(server.site)
        return body

    def versioned_fields(
        self,
        body: dict[str, Any],
        version: tuple[int, int],
        ctx: RequestContext,
        server: Any,
        extended: bool,
        single: bool,
    ) -> None:
        """The fields microversions 2.9 to 2.96 add to show, list detail and update."""
        spec = server.spec
        if version >= (2, 9):
            body["locked"] = bool(spec.get("locked"))
        if version >= (2, 19):
            body["description"] = spec.get("description")
        if version >= (2, 26):
            body["tags"] = list(spec.get("tags") or [])
        if version >= (2, 63):
            body["trusted_image_certificates"] = None
        if version >= (2, 71) and single:
            body["server_groups"] = self.server_groups(server)
        if version >= (2, 73):
            body["locked_reason"] = spec.get("locked_reason") if spec.get("locked") else None
        if version >= (2, 96):
            body["pinned_availability_zone"] = spec.get("pinned_availability_zone")


def embedded_flavor(copy: dict[str, Any]) -> dict[str, Any]:
    """The flavor a server keeps (intent/servers.flavor_copy), as 2.47 shows it."""
    return {
        "original_name": str(copy.get("name") or ""),
        "vcpus": int(copy.get("vcpus") or 0),
        "ram": int(copy.get("ram") or 0),
        "disk": int(copy.get("disk") or 0),
        "ephemeral": int(copy.get("ephemeral") or 0),
        "swap": int(copy.get("swap") or 0),
        "extra_specs": {str(k): str(v) for k, v in (copy.get("extra_specs") or {}).items()},
    }


def server_hostname(server: Any) -> str:
    """The server's hostname: the one set (2.90) or the one Nova makes of its name."""
    return str(server.spec.get("hostname") or hostname_from_name(server.name, server.id))


def _address(address: str, kind: str, mac: str) -> dict[str, Any]:
    return {
        "version": 6 if ":" in address else 4,
        "addr": address,
        "OS-EXT-IPS:type": kind,
        "OS-EXT-IPS-MAC:mac_addr": mac,
    }


def interface(port: Resource) -> dict[str, Any]:
    """One entry of os-interface (a port of the server)."""
    return {
        "port_id": port.id,
        "net_id": port.parent_id,
        "mac_addr": port.spec.get("mac_address", ""),
        "port_state": port.status or "DOWN",
        "fixed_ips": [
            {"subnet_id": f.get("subnet_id"), "ip_address": f.get("ip_address")}
            for f in port.spec.get("fixed_ips", [])
        ],
    }
