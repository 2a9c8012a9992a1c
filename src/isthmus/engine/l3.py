"""Where routers and floating IPs belong, read from the store (for reconcilers.py).

A router is distributed: it is present in every site where one of the networks it
has an interface on is present because of a server port there, with all of its
interfaces (the same addresses and MACs in each site), so each site routes its own
servers' traffic. Its networks are then needed in those sites too, even the ones
with no server there (that is how a server in site-a reaches a subnet whose
servers are all in site-b). A router leaves a site when none of its networks has a
server port there any more.

A floating IP is present only in the site of its port's server, while it is
associated and its router is present there (its NAT lives in that router).

Interface ports (`network:router_interface`) and the gateway port are in no site
(their `site` column is empty); only server ports place networks.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from isthmus.model.specs import FloatingIpSpec, RouterGateway, RouterInterface, RouterSpec
from isthmus.store.tables import Binding, Resource

ROUTER_INTERFACE = "network:router_interface"


def _live_port():  # noqa: ANN202 - a SQLAlchemy clause
    return (Resource.kind == "port") & (Resource.deleting.is_(False))


def interface_ports(session: Session, router_id: str) -> list[Resource]:
    """The router's live interface ports, in a stable order."""
    return list(
        session.scalars(
            select(Resource)
            .where(
                _live_port(),
                Resource.device_id == router_id,
                Resource.spec["device_owner"].as_string() == ROUTER_INTERFACE,
            )
            .order_by(Resource.created_at, Resource.id)
        )
    )


def router_networks(session: Session, router_id: str) -> list[str]:
    return sorted({p.parent_id for p in interface_ports(session, router_id) if p.parent_id})


def _has_server_port(session: Session, network_ids: list[str], site: str) -> bool:
    if not network_ids:
        return False
    return bool(
        session.scalar(
            select(
                exists().where(
                    _live_port(), Resource.parent_id.in_(network_ids), Resource.site == site
                )
            )
        )
    )


def router_needed(session: Session, router: Resource, site: str) -> bool:
    """The router should be in `site`: live, and one of its networks has a server
    port placed there."""
    if router.deleting:
        return False
    return _has_server_port(session, router_networks(session, router.id), site)


def routers_on_network(session: Session, network_id: str) -> list[str]:
    """Live routers with a live interface on the network."""
    owners = set(
        session.scalars(
            select(Resource.device_id).where(
                _live_port(),
                Resource.parent_id == network_id,
                Resource.spec["device_owner"].as_string() == ROUTER_INTERFACE,
            )
        )
    )
    owners.discard(None)
    if not owners:
        return []
    return sorted(
        session.scalars(
            select(Resource.id).where(
                Resource.id.in_(owners),
                Resource.kind == "router",
                Resource.deleting.is_(False),
            )
        )
    )


def network_needed_by_router(session: Session, network_id: str, site: str) -> bool:
    """A router present in `site` has an interface on the network."""
    for router_id in routers_on_network(session, network_id):
        router = session.get(Resource, router_id)
        if router is not None and router_needed(session, router, site):
            return True
    return False


def router_sites(session: Session, router_id: str) -> list[str]:
    """Every site the router should be in now."""
    networks = router_networks(session, router_id)
    if not networks:
        return []
    return sorted(
        {
            site
            for site in session.scalars(
                select(Resource.site).where(
                    _live_port(), Resource.parent_id.in_(networks), Resource.site.is_not(None)
                )
            )
            if site
        }
    )


def bound_in(session: Session, kind: str, ids: list[str], site: str) -> list[str]:
    """Those of `ids` that have a binding in `site`."""
    if not ids:
        return []
    return list(
        session.scalars(
            select(Binding.resource_id).where(
                Binding.resource_id.in_(ids), Binding.site == site, Binding.kind == kind
            )
        )
    )


def floating_ips_bound(
    session: Session, site: str, *, router_id: str | None = None, port_id: str | None = None
) -> list[str]:
    """Floating IPs bound in `site` whose spec names this router or port."""
    query = (
        select(Resource.id)
        .join(Binding, Binding.resource_id == Resource.id)
        .where(Resource.kind == "floating_ip", Binding.site == site)
    )
    if router_id is not None:
        query = query.where(Resource.spec["router_id"].as_string() == router_id)
    if port_id is not None:
        query = query.where(Resource.spec["port_id"].as_string() == port_id)
    return list(session.scalars(query))


def _subnet(session: Session, subnet_id: str) -> Resource | None:
    subnet = session.get(Resource, subnet_id)
    return subnet if subnet is not None and subnet.kind == "subnet" else None


def router_spec(session: Session, router: Resource) -> tuple[RouterSpec, list[tuple[str, str]]]:
    """The router's spec (the same for every site) and what it needs in a site."""
    interfaces: list[RouterInterface] = []
    needs: list[tuple[str, str]] = []
    for port in interface_ports(session, router.id):
        network = session.get(Resource, port.parent_id) if port.parent_id else None
        if network is None or network.deleting:
            continue
        if (network.id, "network") not in needs:
            needs.append((network.id, "network"))
        for fixed in port.spec.get("fixed_ips") or []:
            subnet = _subnet(session, fixed["subnet_id"])
            if subnet is None or subnet.deleting:
                continue
            needs.append((subnet.id, "subnet"))
            interfaces.append(
                RouterInterface.from_intent(port, network, subnet, fixed["ip_address"])
            )
    return RouterSpec.from_intent(router, interfaces, _gateway(session, router)), needs


def _gateway(session: Session, router: Resource) -> RouterGateway | None:
    gateway = router.spec.get("gateway") or {}
    port = session.get(Resource, gateway.get("port_id") or "")
    if not gateway or port is None or port.deleting:
        return None
    for fixed in port.spec.get("fixed_ips") or []:
        subnet = _subnet(session, fixed["subnet_id"])
        if subnet is None or ipaddress.ip_network(subnet.spec["cidr"]).version != 4:
            continue
        return RouterGateway.from_intent(router, port, subnet, fixed["ip_address"])
    return None


def floating_ip_spec(
    session: Session, fip: Resource, site: str
) -> tuple[FloatingIpSpec, list[tuple[str, str]]] | None:
    """The floating IP's spec and needs if it belongs in `site`, else None."""
    port_id = fip.spec.get("port_id")
    router_id = fip.spec.get("router_id")
    if fip.deleting or not port_id or not router_id:
        return None
    port = session.get(Resource, port_id)
    router = session.get(Resource, router_id)
    if port is None or port.deleting or port.site != site or router is None:
        return None
    if not router_needed(session, router, site):
        return None
    return FloatingIpSpec.from_intent(fip), [(router_id, "router"), (port_id, "port")]
