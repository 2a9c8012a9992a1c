"""Server create (POST /servers), in two steps inside one transaction:

1. `parse_boot_request` reads and checks everything (flavor, image, key pair,
   networks, ports, fixed IPs, security groups, availability zone, metadata,
   user data, counts) and only reads the store; bad input raises 400/404/409
   before anything is written.
2. `boot` checks quotas (413), places each server with store/placement, creates
   its ports through store/ports (global IPAM), writes the server intent and
   enqueues its work. The caller commits and wakes the engine.

A network's `availability_zone_hints` are the sites it may reach: a server in a zone
outside them is 400 (as Nova refuses a volume of another zone), one without a zone is
placed among the sites all its hinted networks allow. Empty hints: anywhere.

With `max_count` > 1 the servers are named `<name>-1`, `<name>-2`, ... as Nova
does, and each is placed on its own (so they spread over the sites unless an
availability zone pins them). Quota permitting fewer than `max_count` but at
least `min_count` servers, that many are created.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute.common import flavor_copy, flavor_visible, parse_bool, ref_id
from isthmus.api.compute.validation import (
    invalid_field,
    positive_count,
    validate_access_ip,
    validate_metadata,
)
from isthmus.api.context import RequestContext
from isthmus.engine.queue import enqueue
from isthmus.errors import BadRequest, Conflict, OverQuota
from isthmus.model import ipam
from isthmus.model.placement import Candidate, choose_site
from isthmus.store import ports, quotas, repo
from isthmus.store.placement import place
from isthmus.store.tables import Resource, Site

MAX_USER_DATA = 65535
GIB = 1024**3


@dataclass
class Nic:
    """One requested NIC: a new port on `network` (optionally at `fixed_ip`), or
    an existing `port`."""

    network: Resource
    port: Resource | None = None
    fixed_ip: str | None = None


@dataclass
class BootRequest:
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


# -- lookups --------------------------------------------------------------------------------


def image_visible(ctx: RequestContext, image: Resource) -> bool:
    if ctx.is_admin or image.project_id in (None, ctx.project_id):
        return True
    visibility = image.spec.get("visibility", "private")
    if visibility in ("public", "community"):
        return True
    members = image.spec.get("members") or []
    return visibility == "shared" and any(
        (m.get("member_id") if isinstance(m, dict) else m) == ctx.project_id for m in members
    )


def find_keypair(session: Session, user_id: str, name: str) -> Resource | None:
    rows = session.scalars(
        select(Resource).where(
            Resource.kind == "keypair", Resource.name == name, Resource.deleting.is_(False)
        )
    )
    return next((k for k in rows if k.spec.get("user_id") == user_id), None)


def network_visible(ctx: RequestContext, network: Resource) -> bool:
    return (
        ctx.is_admin
        or network.project_id in (ctx.project_id, None)
        or bool(network.spec.get("shared"))
    )


def _network(session: Session, ctx: RequestContext, network_id: str) -> Resource:
    network = session.get(Resource, network_id)
    if (
        network is None
        or network.kind != "network"
        or network.deleting
        or not network_visible(ctx, network)
    ):
        raise BadRequest(f"Network {network_id} could not be found.")
    if not ports.subnets_of(session, network.id):
        raise BadRequest(f"Network {network.id} requires a subnet in order to boot instances on.")
    return network


def _default_network(session: Session, ctx: RequestContext) -> list[Nic]:
    """Nova without `networks`: the one network the project can use, else none."""
    candidates = [
        n
        for n in session.scalars(
            select(Resource)
            .where(Resource.kind == "network", Resource.deleting.is_(False))
            .order_by(Resource.created_at, Resource.id)
        )
        if (n.project_id == ctx.project_id or n.spec.get("shared"))
        and not (n.spec.get("external") or n.spec.get("router:external"))
    ]
    if len(candidates) > 1:
        raise Conflict("Multiple possible networks found, use a Network ID to be more specific.")
    return [Nic(_network(session, ctx, candidates[0].id))] if candidates else []


def _fixed_ip(session: Session, network: Resource, value: Any) -> str:
    try:
        address = ipam.parse_address(str(value))
    except BadRequest:
        raise invalid_field("fixed_ip", value, f"{value!r} is not a valid IP address.") from None
    for subnet in ports.subnets_of(session, network.id):
        if address in ipam.parse_cidr(subnet.spec["cidr"]):
            if str(address) in ports.taken_addresses(session, subnet.id) or str(
                address
            ) == subnet.spec.get("gateway_ip"):
                raise BadRequest(
                    f"Fixed IP address {address} is already in use on network {network.id}."
                )
            return str(address)
    cidrs = ", ".join(s.spec["cidr"] for s in ports.subnets_of(session, network.id))
    raise BadRequest(
        f"Fixed IP {address} is not in a subnet of network {network.id} (subnets: {cidrs})."
    )


def _port(session: Session, ctx: RequestContext, port_id: str) -> Nic:
    port = session.get(Resource, port_id)
    if (
        port is None
        or port.kind != "port"
        or port.deleting
        or (not ctx.is_admin and port.project_id != ctx.project_id)
    ):
        raise BadRequest(f"Port id {port_id} could not be found.")
    if port.device_id:
        raise Conflict(f"Port {port_id} is still in use.")
    if not port.spec.get("fixed_ips"):
        raise BadRequest(f"Port {port_id} requires a FixedIP in order to be used.")
    network = session.get(Resource, port.parent_id or "")
    if network is None or network.deleting:
        raise BadRequest(f"Network of port {port_id} could not be found.")
    return Nic(network, port=port)


def _nics(session: Session, ctx: RequestContext, networks: Any) -> list[Nic]:
    if networks is None or networks == "auto" or networks == []:
        # absent or empty (what the CLI sends without --network): Nova's default
        return _default_network(session, ctx)
    if networks == "none":
        return []
    if not isinstance(networks, list):
        raise invalid_field("networks", networks, "networks must be a list of objects.")
    nics: list[Nic] = []
    seen_ports: set[str] = set()
    seen_ips: set[str] = set()
    for entry in networks:
        if not isinstance(entry, dict):
            raise invalid_field("networks", networks, "each network must be an object.")
        if entry.get("port"):
            port_id = str(entry["port"])
            if port_id in seen_ports:
                raise BadRequest(f"Port {port_id} is requested more than once.")
            seen_ports.add(port_id)
            nics.append(_port(session, ctx, port_id))
            continue
        if not entry.get("uuid"):
            raise invalid_field("networks", networks, "each network needs a 'uuid' or a 'port'.")
        network = _network(session, ctx, str(entry["uuid"]))
        fixed_ip = None
        if entry.get("fixed_ip"):
            fixed_ip = _fixed_ip(session, network, entry["fixed_ip"])
            if fixed_ip in seen_ips:
                raise BadRequest(f"Fixed IP address {fixed_ip} is requested more than once.")
            seen_ips.add(fixed_ip)
        nics.append(Nic(network, fixed_ip=fixed_ip))
    return nics


def _security_groups(
    session: Session, ctx: RequestContext, requested: Any
) -> tuple[list[str], list[str]]:
    """(ids, names) of the requested groups (by name or id), or of `default`."""
    groups = list(
        session.scalars(
            select(Resource).where(
                Resource.kind == "security_group",
                Resource.project_id == ctx.project_id,
                Resource.deleting.is_(False),
            )
        )
    )
    if requested is None:
        default = [g for g in groups if g.name == "default"]
        return [g.id for g in default[:1]], [g.name for g in default[:1]]
    if not isinstance(requested, list):
        raise invalid_field("security_groups", requested, "security_groups must be a list.")
    ids: list[str] = []
    names: list[str] = []
    for entry in requested:
        ref = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        if not ref:
            raise invalid_field("security_groups", requested, "each entry needs a 'name'.")
        matches = [g for g in groups if g.id == ref] or [g for g in groups if g.name == ref]
        if not matches:
            raise BadRequest(f"Security group {ref} not found for project {ctx.project_id}.")
        if len(matches) > 1:
            raise Conflict(
                f"Multiple security groups found matching '{ref}'. Use an ID to be more specific."
            )
        if matches[0].id not in ids:
            ids.append(matches[0].id)
            names.append(matches[0].name)
    return ids, names


def _image(session: Session, ctx: RequestContext, server: dict[str, Any]) -> Resource | None:
    image_ref = server.get("imageRef")
    mappings = server.get("block_device_mapping_v2")
    if server.get("block_device_mapping"):
        raise BadRequest("block_device_mapping (v1) is not supported; use imageRef.")
    if mappings is not None:
        if not isinstance(mappings, list) or not all(isinstance(m, dict) for m in mappings):
            raise invalid_field("block_device_mapping_v2", mappings, "must be a list of objects.")
        for mapping in mappings:
            if mapping.get("destination_type") == "volume" or mapping.get("source_type") in (
                "volume",
                "snapshot",
            ):
                raise BadRequest(
                    "Booting from or with a volume is not supported by Isthmus; boot from an"
                    " image and attach volumes once the server is ACTIVE."
                )
            boot_index = mapping.get("boot_index")
            if str(boot_index) == "0" and mapping.get("source_type") == "image" and not image_ref:
                image_ref = mapping.get("uuid")
    if not image_ref:
        raise BadRequest("Missing imageRef attribute")
    image_id = ref_id(image_ref)
    image = session.get(Resource, image_id)
    if image is None or image.kind != "image" or image.deleting or not image_visible(ctx, image):
        raise BadRequest(f"Can not find requested image {image_id}.")
    if image.status != "active":
        raise BadRequest(f"Image {image_id} is not active.")
    return image


def _check_image_fits(image: Resource, flavor: Resource) -> None:
    disk = int(flavor.spec.get("disk", 0)) * GIB
    size = int(image.spec.get("size") or 0)
    min_disk = int(image.spec.get("min_disk") or 0) * GIB
    min_ram = int(image.spec.get("min_ram") or 0)
    if disk and size > disk:
        raise BadRequest(
            f"Flavor's disk is too small for requested image. Flavor disk is {disk} bytes,"
            f" image is {size} bytes."
        )
    if disk and min_disk > disk:
        raise BadRequest(
            "Flavor's disk is smaller than the minimum size specified in image metadata."
            f" Flavor disk is {disk} bytes, minimum size is {min_disk} bytes."
        )
    if min_ram > int(flavor.spec.get("ram", 0)):
        raise BadRequest("Flavor's memory is too small for requested image.")


def _availability_zone(session: Session, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise invalid_field("availability_zone", value, "must be a string.")
    zone = value.split(":", 1)[0] or None  # Nova's "az:host:node" form
    if zone:
        sites = list(session.scalars(select(Site)))
        # validates the zone only (raises 400 naming the known zones)
        choose_site([Candidate(s.name, s.enabled, s.health, {}, {}) for s in sites], {}, zone)
    return zone


def _zones_allowed(nics: list[Nic], zone: str | None) -> list[str] | None:
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


# -- step 1 ---------------------------------------------------------------------------------


def parse_boot_request(session: Session, ctx: RequestContext, body: Any) -> BootRequest:
    """Every check of a server create; reads only."""
    if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
        raise BadRequest(
            "Invalid input for field/attribute server. 'server' is a required property."
        )
    server = body["server"]
    name = server.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise invalid_field("name", name, "'name' is a required string of 1 to 255 characters.")
    flavor_ref = server.get("flavorRef")
    if flavor_ref in (None, ""):
        raise invalid_field("flavorRef", flavor_ref, "'flavorRef' is a required property.")
    flavor = session.get(Resource, ref_id(flavor_ref))
    if (
        flavor is None
        or flavor.kind != "flavor"
        or flavor.deleting
        or not flavor_visible(ctx, flavor)
    ):
        raise BadRequest(
            f"Invalid flavorRef provided: flavor {ref_id(flavor_ref)} could not be found."
        )
    image = _image(session, ctx, server)
    if image is not None:
        _check_image_fits(image, flavor)
    request = BootRequest(
        name=name,
        flavor=flavor,
        image=image,
        availability_zone=_availability_zone(session, server.get("availability_zone")),
    )
    if server.get("key_name") not in (None, ""):
        request.keypair = find_keypair(session, ctx.user_id, str(server["key_name"]))
        if request.keypair is None:
            raise BadRequest(
                f"Invalid key_name provided: key pair {server['key_name']} of user"
                f" {ctx.user_id} could not be found."
            )
    request.metadata = validate_metadata(server.get("metadata", {}))
    user_data = server.get("user_data")
    if user_data not in (None, ""):
        if not isinstance(user_data, str) or len(user_data) > MAX_USER_DATA:
            raise BadRequest("User data needs to be valid base 64 of at most 65535 characters.")
        try:
            base64.b64decode("".join(user_data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("User data needs to be valid base 64.") from None
        request.user_data = user_data
    request.min_count = positive_count(server, "min_count", 1)
    request.max_count = positive_count(server, "max_count", request.min_count)
    if request.min_count > request.max_count:
        raise BadRequest("min_count must be <= max_count")
    request.nics = _nics(session, ctx, server.get("networks"))
    if request.max_count > 1 and any(n.port is not None for n in request.nics):
        raise BadRequest(
            "Unable to launch multiple instances with a single configured port ID. Please"
            " launch your instance one by one with different ports."
        )
    if request.max_count > 1 and any(n.fixed_ip for n in request.nics):
        raise BadRequest(
            "Unable to launch multiple instances with a single configured fixed IP. Please"
            " launch your instance one by one with different fixed IPs."
        )
    request.zones_allowed = _zones_allowed(request.nics, request.availability_zone)
    request.group_ids, request.group_names = _security_groups(
        session, ctx, server.get("security_groups")
    )
    if server.get("personality"):
        raise BadRequest("Personality files are not supported by Isthmus; use user_data.")
    admin_pass = server.get("adminPass")
    if admin_pass is not None and not isinstance(admin_pass, str):
        raise invalid_field("adminPass", admin_pass, "adminPass must be a string.")
    request.admin_pass = admin_pass or secrets.token_urlsafe(9)
    disk_config = server.get("OS-DCF:diskConfig", "MANUAL")
    if disk_config not in ("AUTO", "MANUAL"):
        raise invalid_field("OS-DCF:diskConfig", disk_config, "must be 'AUTO' or 'MANUAL'.")
    request.disk_config = disk_config
    if server.get("config_drive") not in (None, ""):
        request.config_drive = parse_bool("config_drive", server["config_drive"])
    request.access_ipv4 = validate_access_ip("accessIPv4", server.get("accessIPv4"), 4)
    request.access_ipv6 = validate_access_ip("accessIPv6", server.get("accessIPv6"), 6)
    if server.get("return_reservation_id") is not None:
        request.return_reservation_id = parse_bool(
            "return_reservation_id", server["return_reservation_id"]
        )
    return request


# -- step 2 ---------------------------------------------------------------------------------


def _allowed_count(session: Session, project_id: str, request: BootRequest) -> int:
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


def _nth_name(name: str, index: int) -> str:
    """`name-<n>` of the n-th server of a multiple create, cut to fit 255 characters
    (a 255-character name would otherwise not fit the name column)."""
    suffix = f"-{index + 1}"
    return f"{name[: 255 - len(suffix)]}{suffix}"


def boot(session: Session, ctx: RequestContext, request: BootRequest) -> list[Resource]:
    """Write the servers (and their ports) of a checked request; returns them."""
    project_id = ctx.project_id
    count = _allowed_count(session, project_id, request)
    flavor = request.flavor.spec
    need = {
        "vcpus": int(flavor.get("vcpus", 0)),
        "ram_mb": int(flavor.get("ram", 0)),
        "disk_gb": int(flavor.get("disk", 0)),
    }
    reservation_id = f"r-{secrets.token_hex(4)}"
    servers = []
    for index in range(count):
        site = place(session, need, request.availability_zone, among=request.zones_allowed)
        server_id = repo.new_id()
        for nic_index, nic in enumerate(request.nics):
            _attach_nic(session, project_id, request, nic, nic_index, server_id, site)
        keypair = request.keypair
        server = repo.add(
            session,
            "server",
            project_id=project_id,
            name=request.name if count == 1 else _nth_name(request.name, index),
            status="BUILD",
            site=site,
            resource_id=server_id,
            spec={
                **need,
                "flavor": flavor_copy(request.flavor),
                "image_id": request.image.id if request.image is not None else None,
                "key_name": keypair.name if keypair is not None else None,
                "public_key": keypair.spec.get("public_key") if keypair is not None else None,
                "metadata": dict(request.metadata),
                "user_data": request.user_data,
                "power_on": True,
                "reboot_count": 0,
                "security_groups": list(request.group_names),
                "availability_zone": request.availability_zone,
                "user_id": ctx.user_id,
                "disk_config": request.disk_config,
                "config_drive": request.config_drive,
                "access_ipv4": request.access_ipv4,
                "access_ipv6": request.access_ipv6,
                "reservation_id": reservation_id,
                "launch_index": index,
            },
        )
        enqueue(session, server.id, "server", site)
        servers.append(server)
    return servers


def _attach_nic(
    session: Session,
    project_id: str,
    request: BootRequest,
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
        security_groups=list(request.group_ids),
        device_id=server_id,
        device_owner=f"compute:{site}",
        site=site,
        extra={"nic_index": nic_index, "delete_with_server": True},
    )
