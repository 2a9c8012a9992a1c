"""Server writes below the API: the checks of a create that need the store, the
one write path for a new server, and a server's delete.

api/compute/create.py parses a Nova create body into a `BootRequest`, asking this
module about what it references (networks, ports, a fixed IP, the availability
zone); `boot` then checks quotas (413) and writes each server with `add_server`.
`add_server` is the only code that makes a server: it places it (store/placement:
site chosen, capacity claimed), makes the ports of its NICs in its site
(store/ports: MAC and fixed IPs from the global IPAM), adds its intent and
enqueues its work, all in the caller's transaction. Tests and benches boot servers
through it too.

Where each decision is made:
- availability zone: `server_zone` asks store/placement.check_zone, whose rule is
  model/placement.pinned_site, the same one `place` applies when it claims;
- a requested fixed IP: `check_fixed_ip` asks store/ports (`subnet_holding`,
  `address_taken`), the rule Neutron's allocation applies too;
- capacity: model/placement.Candidate.fits, through `place` (see model/placement.py
  for why a site's own refusal is not a second rule);
- a network's `availability_zone_hints`: `zones_allowed` (a server in a zone
  outside them is 400, as Nova refuses a volume of another zone; one without a zone
  is placed among the sites all its hinted networks allow; empty hints: anywhere).

With `max_count` > 1 the servers are named `<name>-1`, `<name>-2`, ... as Nova
does, and each is placed on its own (so they spread over the sites unless an
availability zone pins them). Quota permitting fewer than `max_count` but at
least `min_count` servers, that many are created.

A server's requested zone is not kept in its spec: the zone it is in is its
`site` (what Nova shows as `OS-EXT-AZ:availability_zone`).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, NotFound, OverQuota
from isthmus.intent import Caller, boot_volumes
from isthmus.intent.server_groups import PlacementHints, check_members_quota, spread
from isthmus.model import ipam
from isthmus.model.placement import NoValidHost
from isthmus.model.specs import ServerSize
from isthmus.store import placement, ports, quotas, repo, usage
from isthmus.store.tables import Resource
from isthmus.store.work import enqueue


@dataclass
class Nic:
    """One requested NIC: a new port on `network` (optionally at `fixed_ip`), or
    an existing `port`."""

    network: Resource
    port: Resource | None = None
    fixed_ip: str | None = None


@dataclass
class BootRequest:
    """A checked server create (api/compute/create.parse_boot_request makes it)."""

    name: str
    flavor: Resource
    image: Resource | None
    availability_zone: str | None
    keypair: Resource | None = None
    nics: list[Nic] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None
    group_ids: list[str] = field(default_factory=list)
    group_names: list[str] = field(default_factory=list)
    min_count: int = 1
    max_count: int = 1
    admin_pass: str = ""
    disk_config: str = "MANUAL"
    config_drive: bool = False
    access_ipv4: str = ""
    access_ipv6: str = ""
    return_reservation_id: bool = False
    zones_allowed: list[str] | None = None  # from the networks' hints; None: any site
    # spec keys the request's microversion brings (api/compute/server_fields.py:
    # description, tags, hostname, pinned_availability_zone), kept as given
    extra_spec: dict[str, Any] = field(default_factory=dict)
    # the server group and same_host/different_host hints (intent/server_groups.py)
    placement_hints: PlacementHints = field(default_factory=PlacementHints)
    # boot from volume: the checked boot_index 0 mapping (intent/boot_volumes.py)
    root: boot_volumes.RootDisk | None = None


# -- checks against the store ---------------------------------------------------------------


def server_zone(session: Session, zone: str | None) -> str | None:
    """The availability zone a server asks for, checked (400 naming the known zones
    unless it is a site that is enabled); None stays None."""
    if zone:
        placement.check_zone(session, zone)
    return zone


def network_visible(caller: Caller, network: Resource) -> bool:
    return (
        caller.is_admin
        or network.project_id in (caller.project_id, None)
        or bool(network.spec.get("shared"))
    )


def boot_network(session: Session, caller: Caller, network_id: str) -> Resource:
    """A network a server may boot on (visible, with a subnet), or 400."""
    network = session.get(Resource, network_id)
    if (
        network is None
        or network.kind != "network"
        or network.deleting
        or not network_visible(caller, network)
    ):
        raise BadRequest(f"Network {network_id} could not be found.")
    if not ports.subnets_of(session, network.id):
        raise BadRequest(f"Network {network.id} requires a subnet in order to boot instances on.")
    return network


def default_nics(session: Session, caller: Caller) -> list[Nic]:
    """Nova without `networks`: the one network the project can use, else none."""
    candidates = [
        n
        for n in session.scalars(
            select(Resource)
            .where(Resource.kind == "network", Resource.deleting.is_(False))
            .order_by(Resource.created_at, Resource.id)
        )
        if (n.project_id == caller.project_id or n.spec.get("shared"))
        and not (n.spec.get("external") or n.spec.get("router:external"))
    ]
    if len(candidates) > 1:
        raise Conflict("Multiple possible networks found, use a Network ID to be more specific.")
    return [Nic(boot_network(session, caller, candidates[0].id))] if candidates else []


def usable_port(
    session: Session, caller: Caller, port_id: str, missing: type[BadRequest | NotFound]
) -> Resource:
    """An existing port a server may take: the caller's (any for an admin), unused,
    with a fixed IP; else Nova's answer (`missing`: 400 at boot, 404 at attach)."""
    port = session.get(Resource, port_id)
    if (
        port is None
        or port.kind != "port"
        or port.deleting
        or (not caller.is_admin and port.project_id != caller.project_id)
    ):
        text = (
            "Port id {} could not be found."
            if missing is BadRequest
            else "Port {} could not be found."
        )
        raise missing(text.format(port_id))
    if port.device_id:
        raise Conflict(f"Port {port_id} is still in use.")
    if not port.spec.get("fixed_ips"):
        raise BadRequest(f"Port {port_id} requires a FixedIP in order to be used.")
    return port


def boot_port(session: Session, caller: Caller, port_id: str) -> Nic:
    """An existing port a server may boot with (`usable_port`) and its network."""
    port = usable_port(session, caller, port_id, BadRequest)
    network = session.get(Resource, port.parent_id or "")
    if network is None or network.deleting:
        raise BadRequest(f"Network of port {port_id} could not be found.")
    return Nic(network, port=port)


def check_fixed_ip(session: Session, network: Resource, address: ipam.IPAddress) -> str:
    """A fixed IP asked for on `network`, as Nova answers (400): it must lie in one
    of the network's subnets and be free there (store/ports decides both)."""
    subnets = ports.subnets_of(session, network.id)
    subnet = ports.subnet_holding(subnets, address)
    if subnet is None:
        cidrs = ", ".join(s.spec["cidr"] for s in subnets)
        raise BadRequest(
            f"Fixed IP {address} is not in a subnet of network {network.id} (subnets: {cidrs})."
        )
    if ports.address_taken(session, subnet, str(address)):
        raise BadRequest(f"Fixed IP address {address} is already in use on network {network.id}.")
    return str(address)


def zones_allowed(nics: list[Nic], zone: str | None) -> list[str] | None:
    """The sites the networks' availability_zone_hints allow (None: no hints, any
    site); 400 when the requested zone is outside a network's hints or the hints of
    the requested networks have no site in common."""
    allowed: set[str] | None = None
    for nic in nics:
        hints = list(nic.network.spec.get("availability_zone_hints") or [])
        if not hints:
            continue
        named = f"Network {nic.network.id}" + (f" ({nic.network.name})" if nic.network.name else "")
        if zone and zone not in hints:
            raise BadRequest(
                f"{named} is limited to availability zones {', '.join(hints)} by its"
                f" availability_zone_hints; availability zone {zone} is not one of them."
                " Boot the server in one of those zones, or use another network."
            )
        allowed = set(hints) if allowed is None else allowed & set(hints)
        if not allowed:
            raise BadRequest(
                "The requested networks have no availability zone in common (their"
                f" availability_zone_hints do not overlap; {named} allows {', '.join(hints)})."
                " Use networks that can meet in one zone."
            )
    return sorted(allowed) if allowed is not None else None


# -- writes -----------------------------------------------------------------------------------


def flavor_copy(flavor: Resource) -> dict[str, Any]:
    """What a server keeps of its flavor (Nova keeps a copy, not a reference)."""
    spec = flavor.spec
    return {
        "id": flavor.id,
        "name": flavor.name,
        "vcpus": int(spec.get("vcpus", 0)),
        "ram": int(spec.get("ram", 0)),
        "disk": int(spec.get("disk", 0)),
        "ephemeral": int(spec.get("ephemeral", 0)),
        "swap": int(spec.get("swap", 0)),
        "extra_specs": dict(spec.get("extra_specs") or {}),
    }


def flavor_need(flavor: Resource) -> dict[str, int]:
    """What one server of `flavor` takes from a site (placement's dimensions), as
    its intent keeps it (read back by `ServerSize.from_intent`)."""
    return ServerSize.from_flavor(flavor.spec).as_spec()


def allowed_count(session: Session, project_id: str, request: BootRequest) -> int:
    """How many servers (min_count..max_count) fit the project's quotas; 413 if
    not even min_count do."""
    per_server = {
        "instances": 1,
        "cores": int(request.flavor.spec.get("vcpus", 0)),
        "ram": int(request.flavor.spec.get("ram", 0)),
    }
    limits = quotas.limits(session, project_id)
    allowed = request.max_count
    for name, amount in per_server.items():
        if limits[name] < 0 or amount <= 0:
            continue
        headroom = limits[name] - quotas.usage(session, project_id, name)
        allowed = min(allowed, max(0, headroom) // amount)
    if allowed < request.min_count:
        quotas.check(
            session,
            project_id,
            {name: amount * request.min_count for name, amount in per_server.items()},
        )
        raise OverQuota(f"Quota exceeded for instances: Requested {request.min_count}.")
    return allowed


def nth_name(name: str, index: int) -> str:
    """`name-<n>` of the n-th server of a multiple create, cut to fit 255 characters
    (a 255-character name would otherwise not fit the name column)."""
    suffix = f"-{index + 1}"
    return f"{name[: 255 - len(suffix)]}{suffix}"


def boot(session: Session, caller: Caller, request: BootRequest) -> list[Resource]:
    """Write the servers (and their ports) of a checked request; returns them."""
    project_id = caller.project_id
    count = allowed_count(session, project_id, request)
    group = request.placement_hints.group
    if group is not None:
        check_members_quota(session, group, count)
    need = flavor_need(request.flavor)
    reservation_id = f"r-{secrets.token_hex(4)}"
    keypair = request.keypair
    servers = []
    for index in range(count):
        server = add_server(
            session,
            project_id=project_id,
            name=request.name if count == 1 else nth_name(request.name, index),
            need=need,
            availability_zone=request.availability_zone,
            among=request.zones_allowed,
            nics=request.nics,
            group_ids=list(request.group_ids),
            hints=request.placement_hints,
            spec={
                "flavor": flavor_copy(request.flavor),
                "image_id": request.image.id if request.image is not None else None,
                "key_name": keypair.name if keypair is not None else None,
                "public_key": keypair.spec.get("public_key") if keypair is not None else None,
                "metadata": dict(request.metadata),
                "user_data": request.user_data,
                "power_on": True,
                "reboot_count": 0,
                "security_groups": list(request.group_names),
                "user_id": caller.user_id,
                "disk_config": request.disk_config,
                "config_drive": request.config_drive,
                "access_ipv4": request.access_ipv4,
                "access_ipv6": request.access_ipv6,
                "reservation_id": reservation_id,
                "launch_index": index,
                **request.extra_spec,
                **({"server_group": group.id} if group is not None else {}),
            },
        )
        if request.root is not None and server.site:  # None: no valid host
            boot_volumes.add_root(session, caller, server, request.root)
        servers.append(server)
    return servers


def add_server(
    session: Session,
    *,
    project_id: str,
    name: str,
    need: dict[str, int],
    spec: dict[str, Any],
    availability_zone: str | None = None,
    among: Collection[str] | None = None,
    nics: Sequence[Nic] = (),
    group_ids: list[str] | None = None,
    hints: PlacementHints | None = None,
) -> Resource:
    """One new server: placed (capacity claimed), the ports of its `nics` made or
    taken in its site (new ports get `group_ids`, None: the project's `default`
    group), its intent (`need` then `spec`) added as BUILD and its work enqueued.

    When its server group or host `hints` leave no site (model/placement.NoValidHost)
    the server is still written, as Nova's scheduler leaves it: ERROR with the
    fault "No valid host was found", in no site, with no ports and no claim."""
    try:
        site = placement.place(
            session,
            need,
            availability_zone,
            among=among,
            spread=spread(session, hints) if hints is not None else None,
        )
    except NoValidHost as exc:
        server = repo.add(
            session,
            "server",
            project_id=project_id,
            name=name,
            status="ERROR",
            spec={**need, **spec},
        )
        server.observed = {"fault": exc.message}
        return server
    server_id = repo.new_id()
    for nic_index, nic in enumerate(nics):
        _attach_nic(session, project_id, group_ids, nic, nic_index, server_id, site)
    server = repo.add(
        session,
        "server",
        project_id=project_id,
        name=name,
        status="BUILD",
        site=site,
        resource_id=server_id,
        spec={**need, **spec},
    )
    enqueue(session, server.id, "server", site)
    return server


def _attach_nic(
    session: Session,
    project_id: str,
    group_ids: list[str] | None,
    nic: Nic,
    nic_index: int,
    server_id: str,
    site: str,
) -> None:
    if nic.port is not None:
        repo.change(
            session,
            nic.port,
            sites=[site],
            device_id=server_id,
            site=site,
            spec={
                "nic_index": nic_index,
                "device_owner": f"compute:{site}",
                "delete_with_server": False,
            },
        )
        return
    ports.create_port(
        session,
        nic.network,
        project_id=project_id,
        fixed_ips=[{"ip_address": nic.fixed_ip}] if nic.fixed_ip else None,
        security_groups=None if group_ids is None else list(group_ids),
        device_id=server_id,
        device_owner=f"compute:{site}",
        site=site,
        extra={"nic_index": nic_index, "delete_with_server": True},
    )


def delete_server(session: Session, server: Resource) -> None:
    """Accept a server's delete: its own ports go with it, ports given at create
    stay (detached, out of the site), attached volumes are detached, and the
    server is marked deleting (the engine removes it from its site). What it ran
    is kept for os-simple-tenant-usage (store/usage.py)."""
    _release_attachments(session, server)
    usage.record_end(session, server)
    repo.mark_deleting(session, server)


def release_port(session: Session, port: Resource) -> None:
    """A port leaves its server: one Nova made (at boot or attach) is deleted, one
    the user gave stays, unbound and out of the site."""
    if port.spec.get("delete_with_server"):
        repo.mark_deleting(session, port)
    else:
        repo.change(
            session,
            port,
            device_id=None,
            site=None,
            status="DOWN",
            spec={"nic_index": None, "device_owner": "", "delete_with_server": False},
        )


def _release_attachments(session: Session, server: Resource) -> None:
    for port in session.scalars(
        select(Resource).where(
            Resource.kind == "port",
            Resource.device_id == server.id,
            Resource.deleting.is_(False),
        )
    ):
        release_port(session, port)
    for volume in session.scalars(
        select(Resource).where(
            Resource.kind == "volume",
            Resource.device_id == server.id,
            Resource.deleting.is_(False),
        )
    ):
        if boot_volumes.release_root(session, volume):
            continue  # its mapping said delete_on_termination
        repo.change(session, volume, device_id=None, status="detaching", spec={"device": None})
