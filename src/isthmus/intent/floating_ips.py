"""Floating IP writes below the API (api/network/floating_ips.py parses the body,
checks the association Neutron's way and renders the answer).

`check_quota` (413) comes first (the API then reads the rest of the body, as it
always did); `add_floating_ip` writes the floating IP with its own port on the
external network (owned by no project; its address from the global IPAM through
store/ports.create_port); `associate` records the association and enqueues the
floating IP in the site of the port it points at (the site of that port's
server), where the site's copy of the router does the NAT (engine/l3.py). A port
in no site leaves it DOWN and enqueued nowhere.

`update_floating_ip` applies a checked change (enqueued in the site of the port
it points at afterwards, and wherever it is bound); `delete_floating_ip` removes
it with its own port.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from isthmus.store import ports as store_ports
from isthmus.store import quotas, repo
from isthmus.store.tables import Resource
from isthmus.store.work import enqueue

FLOATING_IP_OWNER = "network:floatingip"  # device_owner of a floating IP's own port


def check_quota(session: Session, project_id: str) -> None:
    """413 unless `project_id` may have one more floating IP."""
    quotas.check(session, project_id, {"floatingips": 1})


def add_floating_ip(
    session: Session,
    network: Resource,
    *,
    project_id: str,
    description: str,
    fixed_ips: list[dict[str, Any]],
) -> Resource:
    """A new floating IP of `project_id` on the external `network`, not associated,
    with its port taking the address `fixed_ips` asks for (after `check_quota`)."""
    fip = repo.add(
        session,
        "floating_ip",
        project_id=project_id,
        status="DOWN",
        spec={"floating_network_id": network.id, "description": description, "tags": []},
    )
    port = store_ports.create_port(
        session,
        network,
        project_id="",
        fixed_ips=fixed_ips,
        security_groups=[],
        device_id=fip.id,
        device_owner=FLOATING_IP_OWNER,
        extra={"description": "", "tags": []},
    )
    fip.spec = {
        **fip.spec,
        "floating_ip_address": port.spec["fixed_ips"][0]["ip_address"],
        "fip_port_id": port.id,
    }
    return fip


def associate(session: Session, fip: Resource, association: dict[str, Any]) -> Resource | None:
    """Record a new floating IP's checked association (port_id, fixed_ip_address,
    router_id) and enqueue it in its port's site; returns that port (None when
    the floating IP points at no live port)."""
    fip.spec = {**fip.spec, **association}
    session.flush()
    target = store_ports.live_port(session, association["port_id"])
    if target is not None and target.site:
        enqueue(session, fip.id, "floating_ip", target.site)
    return target


def update_floating_ip(
    session: Session, fip: Resource, *, spec: dict[str, Any], fields: dict[str, Any]
) -> Resource | None:
    """Apply a checked update (`spec`, columns in `fields`); the floating IP is
    planned again in the site of the port it now points at and wherever it is
    bound. Returns that port (None: none live)."""
    target = store_ports.live_port(session, spec.get("port_id", fip.spec.get("port_id")))
    sites = [target.site] if target is not None and target.site else []
    repo.change(session, fip, spec=spec, sites=sites, **fields)
    return target


def delete_floating_ip(session: Session, fip: Resource) -> None:
    """Delete a floating IP and its own port on the external network."""
    port = store_ports.live_port(session, fip.spec.get("fip_port_id"))
    if port is not None:
        repo.mark_deleting(session, port)
    repo.mark_deleting(session, fip)
