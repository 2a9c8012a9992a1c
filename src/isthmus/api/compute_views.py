"""How Compute v2.1 shows a server: Nova's status / vm_state / task_state /
power_state derived from intent and the site's binding, and the server body
(addresses from its ports, attached volumes, flavor and image references).

State rules (status is what the engine last observed in the server's site):
- status BUILD: vm_state building, task_state scheduling until a site holds the
  server, then spawning; ERROR: vm_state error plus a `fault` from
  `observed["fault"]`; SHUTOFF: stopped; ACTIVE and REBOOT: active.
- A change the site has not applied yet shows as Nova's task in flight: stop
  (spec power_on false) -> powering-off, start -> powering-on, a reboot asked
  at generation g and not yet applied -> REBOOT/rebooting (HARD_REBOOT/
  rebooting_hard); a delete -> deleting, until the engine removes the row.

`ServerViews` loads what a batch of servers needs in a handful of queries, so a
list page costs the same few queries whatever its length.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute_common import bookmark, links
from isthmus.api.context import RequestContext
from isthmus.store import repo
from isthmus.store.tables import Binding, Resource

VM_STATES = {
    "BUILD": "building",
    "ACTIVE": "active",
    "REBOOT": "active",
    "HARD_REBOOT": "active",
    "SHUTOFF": "stopped",
    "ERROR": "error",
}
POWER_STATES = {"ACTIVE": 1, "REBOOT": 1, "HARD_REBOOT": 1, "SHUTOFF": 4}
RUNNING_STATUSES = ("ACTIVE", "SHUTOFF", "REBOOT", "HARD_REBOOT")


@dataclass(frozen=True)
class ServerState:
    status: str
    vm_state: str
    task_state: str | None
    power_state: int


def server_state(server: Resource, binding: Binding | None) -> ServerState:
    """Nova's four state fields of `server`, given its binding in its site."""
    status = server.status or "BUILD"
    spec = server.spec
    hard = spec.get("reboot_type") == "HARD"
    task: str | None = None
    applied = binding.applied_generation if binding is not None else 0
    if status == "BUILD":
        task = "scheduling" if binding is None else "spawning"
    elif status == "REBOOT":
        status, task = ("HARD_REBOOT", "rebooting_hard") if hard else ("REBOOT", "rebooting")
    elif status in ("ACTIVE", "SHUTOFF"):
        if int(spec.get("reboot_generation", 0)) > applied:
            status, task = ("HARD_REBOOT", "rebooting_hard") if hard else ("REBOOT", "rebooting")
        elif status == "ACTIVE" and not spec.get("power_on", True):
            task = "powering-off"
        elif status == "SHUTOFF" and spec.get("power_on", True):
            task = "powering-on"
    if server.deleting:
        task = "deleting"
    vm_state = VM_STATES.get(status, status.lower())
    return ServerState(status, vm_state, task, POWER_STATES.get(status, 0))


def launched_format(moment: datetime | None) -> str | None:
    """Nova's OS-SRV-USG timestamps (no zone suffix, microseconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") if moment else None


def host_id(project_id: str | None, site: str | None) -> str:
    """Nova's hostId: an opaque per-project hash of the host (here: the site)."""
    if not site:
        return ""
    return hashlib.sha224(f"{project_id or ''}{site}".encode()).hexdigest()


def _in_chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)] or [[]]


class ServerViews:
    """The related rows of a batch of servers, loaded once."""

    def __init__(self, session: Session, servers: list[Resource]) -> None:
        self.session = session
        ids = [s.id for s in servers]
        deleting = {s.id for s in servers if s.deleting}
        self.ports: dict[str, list[Resource]] = {i: [] for i in ids}
        self.volumes: dict[str, list[Resource]] = {i: [] for i in ids}
        self.bindings: dict[str, Binding] = {}
        self.networks: dict[str, Resource] = {}
        self.floating: dict[str, list[Resource]] = {}
        if not ids:
            return
        sites = {s.id: s.site for s in servers}
        for chunk in _in_chunks(ids):
            for port in session.scalars(
                select(Resource).where(Resource.kind == "port", Resource.device_id.in_(chunk))
            ):
                if port.device_id and (not port.deleting or port.device_id in deleting):
                    self.ports[port.device_id].append(port)
            for volume in session.scalars(
                select(Resource).where(
                    Resource.kind == "volume",
                    Resource.device_id.in_(chunk),
                    Resource.deleting.is_(False),
                )
            ):
                if volume.device_id:
                    self.volumes[volume.device_id].append(volume)
            for binding in session.scalars(select(Binding).where(Binding.resource_id.in_(chunk))):
                if binding.site == sites.get(binding.resource_id):
                    self.bindings[binding.resource_id] = binding
        for port_list in self.ports.values():
            port_list.sort(key=lambda p: (p.spec.get("nic_index") or 0, p.created_at, p.id))
        port_ids = [p.id for plist in self.ports.values() for p in plist]
        network_ids = sorted(
            {p.parent_id for plist in self.ports.values() for p in plist if p.parent_id}
        )
        for chunk in _in_chunks(network_ids):
            for net in session.scalars(select(Resource).where(Resource.id.in_(chunk))):
                self.networks[net.id] = net
        for chunk in _in_chunks(port_ids):
            if not chunk:
                continue
            for fip in session.scalars(
                select(Resource).where(
                    Resource.kind == "floating_ip",
                    Resource.deleting.is_(False),
                    Resource.spec["port_id"].as_string().in_(chunk),
                )
            ):
                self.floating.setdefault(str(fip.spec.get("port_id")), []).append(fip)

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

    def brief(self, request: Request, server: Resource) -> dict[str, Any]:
        return {"id": server.id, "name": server.name, "links": links(request, "servers", server.id)}

    def detail(
        self, request: Request, ctx: RequestContext, server: Resource, extended: bool = True
    ) -> dict[str, Any]:
        spec = server.spec
        state = self.state(server)
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
                {"id": image_id, "links": bookmark(request, "images", image_id)} if image_id else ""
            ),
            "flavor": {"id": flavor_id, "links": bookmark(request, "flavors", flavor_id)},
            "created": repo.isoformat(server.created_at),
            "updated": self.updated(server),
            "addresses": self.addresses(server),
            "accessIPv4": spec.get("access_ipv4") or "",
            "accessIPv6": spec.get("access_ipv6") or "",
            "links": links(request, "servers", server.id),
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
                "OS-EXT-AZ:availability_zone": server.site or "",
                "OS-EXT-STS:vm_state": state.vm_state,
                "OS-EXT-STS:task_state": state.task_state,
                "OS-EXT-STS:power_state": state.power_state,
                "OS-SRV-USG:launched_at": launched_format(launched),
                "OS-SRV-USG:terminated_at": None,
                "os-extended-volumes:volumes_attached": [
                    {"id": v.id} for v in self.volumes.get(server.id, [])
                ],
                "security_groups": [{"name": n} for n in spec.get("security_groups") or []],
                "isthmus:site": server.site,
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
        return body


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
