"""Neutron port writes below the API (api/network/ports.py parses the bodies,
resolves the references and renders the answers).

- `create_port`: quota (413), then store/ports.create_port (MAC and fixed IPs from
  the global IPAM; a port made here has no site until a server takes it);
- `update_port`: a security group the port leaves is planned again in the sites
  the port is bound in; new fixed IPs are allocated again (an address taken or a
  gateway is the store's 409, see store/ports.py, unless the port is a router
  interface, which may hold it) and the port's floating IPs on addresses it lost
  are disassociated; a router interface's router is applied again where it is;
  then `repo.change` (which enqueues the port's sites);
- `check_port_security`: ML2's port-security rules, for a create (`current` None)
  and an update: with port security off, allowed address pairs are 409
  AddressPairAndPortSecurityRequired, security groups asked for are 400
  PortSecurityAndIPRequiredForSecurityGroups, and groups the port keeps are 409
  PortSecurityPortHasSecurityGroup;
- `delete_port`: floating IPs disassociated, the server using the port planned
  again (it loses a NIC), the port marked deleting.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict
from isthmus.store import ports as store_ports
from isthmus.store import quotas, repo
from isthmus.store.tables import IpAllocation, Resource
from isthmus.store.work import enqueue


def device_of(port: Resource) -> str:
    """The device id (server, router, floating IP or any string a client set)."""
    return port.device_id or port.spec.get("device_id_text") or ""


def create_port(session: Session, network: Resource, *, project_id: str, **fields: Any) -> Resource:
    """A new port of `project_id` on `network` (`fields` as store/ports.create_port
    takes them), once the project's port quota allows it."""
    quotas.check(session, project_id, {"ports": 1})
    return store_ports.create_port(session, network, project_id=project_id, **fields)


def check_port_security(
    enabled: bool,
    *,
    groups: list[str] | None,
    pairs: list[dict[str, Any]] | None,
    current: Resource | None = None,
) -> None:
    """The port-security rules for a port that will have port security `enabled`:
    `groups` and `pairs` are the security groups and allowed address pairs the
    request gives (None: not given), `current` the port being updated."""
    if enabled:
        return
    kept_pairs = (current.spec.get("allowed_address_pairs") if current is not None else None) or []
    if pairs or (pairs is None and kept_pairs):
        raise Conflict(
            "Port Security must be enabled in order to have allowed address pairs on a port.",
            "AddressPairAndPortSecurityRequired",
        )
    if groups:
        raise BadRequest(
            "Port security must be enabled and port must have an IP address in order to use"
            " security groups.",
            "PortSecurityAndIPRequiredForSecurityGroups",
        )
    kept_groups = (current.spec.get("security_groups") if current is not None else None) or []
    if groups is None and kept_groups:
        raise Conflict(
            "Port has security group associated. Cannot disable port security or IP address"
            " until security group is removed.",
            "PortSecurityPortHasSecurityGroup",
        )


def update_port(
    session: Session,
    port: Resource,
    *,
    fields: dict[str, Any],
    spec: dict[str, Any],
    security_groups: list[str] | None = None,
    fixed_ips: list[dict[str, Any]] | None = None,
) -> Resource:
    """Apply a checked update: `fields` (columns) and `spec`, plus new security
    groups and fixed IPs when given (None: unchanged)."""
    spec = dict(spec)
    if security_groups is not None:
        for removed in set(port.spec.get("security_groups") or []) - set(security_groups):
            for site in repo.bound_sites(session, port.id):
                enqueue(session, removed, "security_group", site)
        spec["security_groups"] = security_groups
    if fixed_ips is not None:
        network = session.get(Resource, port.parent_id)
        assert network is not None
        session.execute(delete(IpAllocation).where(IpAllocation.port_id == port.id))
        session.flush()
        interface = port.spec.get("device_owner") == store_ports.ROUTER_INTERFACE
        fixed = store_ports.allocate_fixed_ips(
            session, network, port.id, fixed_ips, gateway_ok=interface
        )
        spec["fixed_ips"] = fixed
        disassociate_floating_ips(session, port, {f["ip_address"] for f in fixed})
        if interface and port.device_id:
            for site in repo.bound_sites(session, port.device_id):
                enqueue(session, port.device_id, "router", site)
    return repo.change(session, port, spec=spec, **fields)


def delete_port(session: Session, port: Resource, device: Resource | None) -> None:
    """Delete `port` (whose device, if any, is `device`): its floating IPs lose
    their association and a server using it is planned again without it."""
    disassociate_floating_ips(session, port)
    if device is not None and device.kind == "server" and device.site and not device.deleting:
        enqueue(session, device.id, "server", device.site)  # the server loses a NIC
    repo.mark_deleting(session, port)


def disassociate_floating_ips(
    session: Session, port: Resource, keep: set[str] | None = None
) -> None:
    """Floating IPs of `port` (on fixed IPs not in `keep`) lose their association."""
    fips = session.scalars(
        select(Resource)
        .where(Resource.kind == "floating_ip", Resource.deleting.is_(False))
        .order_by(Resource.created_at, Resource.id)
    )
    for fip in list(fips):
        if fip.spec.get("port_id") != port.id:
            continue
        if keep is not None and fip.spec.get("fixed_ip_address") in keep:
            continue
        repo.change(
            session,
            fip,
            status="DOWN",
            spec={"port_id": None, "fixed_ip_address": None, "router_id": None},
        )
