"""Interface attach and detach of a server (Nova's os-interface POST and DELETE),
below api/compute/interfaces.py.

Nova's order after the server is found: its lock (409 for a non-admin), its
vm_state (active, paused or stopped) and task_state (none), then the port or
network: a port that does not exist or is another project's 404 "Port X could
not be found.", a port in use 409 "Port X is still in use.", a network not found
404, a fixed IP not in the network or taken 400 (intent/servers.check_fixed_ip,
as at create).

An attached port is bound to the server in the server's site (the port's `site`
is the server's, its `nic_index` the next free one) and the server is changed
(`repo.change`), so the engine attaches it there (the server's spec lists its
ports, model/specs.ServerSpec.port_ids). A port made for the attach
(`net_id`) goes with a detach, as Nova deletes the ports it made; a port given
(`port_id`) stays, unbound.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, NotFound
from isthmus.intent import Caller
from isthmus.intent.server_actions import check_state, state_of
from isthmus.intent.server_lifecycle import check_lock
from isthmus.intent.servers import (
    check_fixed_ip,
    default_nics,
    network_visible,
    release_port,
    usable_port,
)
from isthmus.model import ipam
from isthmus.store import ports, repo
from isthmus.store.tables import Resource

INTERFACE_STATES = ("active", "paused", "stopped")


def server_ports(session: Session, server: Resource) -> list[Resource]:
    """The server's live ports."""
    return list(
        session.scalars(
            select(Resource).where(
                Resource.kind == "port",
                Resource.device_id == server.id,
                Resource.deleting.is_(False),
            )
        )
    )


def _network(session: Session, caller: Caller, network_id: str) -> Resource:
    network = session.get(Resource, network_id)
    if (
        network is None
        or network.kind != "network"
        or network.deleting
        or not network_visible(caller, network)
    ):
        raise NotFound(f"Network {network_id} could not be found.")
    return network


def attach_interface(
    session: Session,
    caller: Caller,
    server: Resource,
    *,
    port_id: str | None,
    net_id: str | None,
    fixed_ip: str | None,
) -> Resource:
    """Attach the port `port_id`, or a new port on `net_id` (at `fixed_ip`), or
    with neither a new port on the project's one network; returns the port."""
    action = "attach_interface"
    check_lock(server, caller)
    check_state(server, state_of(session, server), action, INTERFACE_STATES)
    site = server.site or ""
    index = 1 + max(
        (int(p.spec.get("nic_index") or 0) for p in server_ports(session, server)), default=-1
    )
    if port_id:
        port = usable_port(session, caller, port_id, NotFound)
        repo.change(
            session,
            port,
            sites=[site],
            device_id=server.id,
            site=site,
            spec={
                "nic_index": index,
                "device_owner": f"compute:{site}",
                "delete_with_server": False,
                "made_for_attach": False,
            },
        )
    else:
        if net_id:
            network = _network(session, caller, net_id)
        else:
            nics = default_nics(session, caller)
            if not nics:
                raise BadRequest("No network is available to attach an interface to.")
            network = nics[0].network
        if not ports.subnets_of(session, network.id):
            raise BadRequest(f"Network {network.id} has no subnet to take an address from.")
        fixed: list[dict[str, Any]] | None = None
        if fixed_ip:
            address = check_fixed_ip(session, network, ipam.parse_address(fixed_ip))
            fixed = [{"ip_address": address}]
        port = ports.create_port(
            session,
            network,
            project_id=server.project_id or caller.project_id,
            fixed_ips=fixed,
            security_groups=None,
            device_id=server.id,
            device_owner=f"compute:{site}",
            site=site or None,
            extra={"nic_index": index, "delete_with_server": True, "made_for_attach": True},
        )
    repo.change(session, server)
    return port


def detach_interface(session: Session, caller: Caller, server: Resource, port_id: str) -> None:
    """Detach the port `port_id` (404 unless attached to the server): a port made
    by Nova (at boot or attach) is deleted, one given is left unbound."""
    check_lock(server, caller)
    check_state(server, state_of(session, server), "detach_interface", INTERFACE_STATES)
    port = next((p for p in server_ports(session, server) if p.id == port_id), None)
    if port is None:
        raise NotFound(f"Port {port_id} is not attached")
    release_port(session, port)
    repo.change(session, server)
