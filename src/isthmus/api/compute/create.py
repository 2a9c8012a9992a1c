"""Server create (POST /servers), in two steps inside one transaction:

1. `parse_boot_request` reads and checks everything (flavor, image, key pair,
   networks, ports, fixed IPs, security groups, availability zone, metadata,
   user data, counts) and only reads the store; bad input raises 400/404/409
   before anything is written. What a check needs from the store beyond a lookup
   (a network or port a server may use, a fixed IP, the zone and the networks'
   availability_zone_hints) is asked of intent/servers.py.
2. `intent.servers.boot` checks quotas (413), places each server, creates its
   ports, writes the server intent and enqueues its work. The caller commits and
   wakes the engine.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute import block_devices, hints
from isthmus.api.compute.common import flavor_visible, parse_bool, ref_id
from isthmus.api.compute.validation import (
    invalid_field,
    positive_count,
    validate_access_ip,
    validate_metadata,
)
from isthmus.api.context import RequestContext
from isthmus.errors import BadRequest, Conflict
from isthmus.intent import image_members
from isthmus.intent import servers as intent_servers
from isthmus.intent.keypairs import find_keypair
from isthmus.intent.servers import BootRequest, Nic
from isthmus.model import ipam
from isthmus.store.tables import Resource

MAX_USER_DATA = 65535
GIB = 1024**3


# -- lookups --------------------------------------------------------------------------------


def image_visible(ctx: RequestContext, image: Resource) -> bool:
    return image_members.usable_by(ctx, image)  # the one rule, shared with Cinder's imageRef


def _fixed_ip(session: Session, network: Resource, value: Any) -> str:
    try:
        address = ipam.parse_address(str(value))
    except BadRequest:
        raise invalid_field("fixed_ip", value, f"{value!r} is not a valid IP address.") from None
    return intent_servers.check_fixed_ip(session, network, address)


def _nics(session: Session, ctx: RequestContext, networks: Any) -> list[Nic]:
    if networks is None or networks == "auto" or networks == []:
        # absent or empty (what the CLI sends without --network): Nova's default
        return intent_servers.default_nics(session, ctx)
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
            nics.append(intent_servers.boot_port(session, ctx, port_id))
            continue
        if not entry.get("uuid"):
            raise invalid_field("networks", networks, "each network needs a 'uuid' or a 'port'.")
        network = intent_servers.boot_network(session, ctx, str(entry["uuid"]))
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
        for mapping in mappings:  # volumes: block_devices.root_mapping (read first)
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
    return intent_servers.server_zone(session, zone)


# -- step 1 ---------------------------------------------------------------------------------


def parse_boot_request(session: Session, ctx: RequestContext, body: Any) -> BootRequest:
    """Every check of a server create; reads only."""
    if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
        raise BadRequest(
            "Invalid input for field/attribute server. 'server' is a required property."
        )
    server = body["server"]
    hints.check_shape(body)
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
    root = block_devices.root_mapping(server)  # boot from volume: no image
    image = None if root is not None else _image(session, ctx, server)
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
    if root is not None:  # its source pins the zone, checked before the networks' hints
        block_devices.check_root(session, ctx, root, request)
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
    request.zones_allowed = intent_servers.zones_allowed(request.nics, request.availability_zone)
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
    request.placement_hints = hints.placement_hints(session, ctx, body)
    return request
