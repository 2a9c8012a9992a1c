"""Nova's block_device_mapping_v2 on server create, as far as Isthmus boots from it.

`root_mapping` reads the mappings (Nova's schema 400s: a list of objects,
source_type image/volume/snapshot/blank, destination_type local/volume, integer
boot_index and volume_size, boolean delete_on_termination) and returns the
boot_index 0 mapping when it has a volume destination (boot from volume); an
image with a local destination is the plain image boot (api/compute/create.py
reads its uuid as imageRef; other local disks are ignored, as before). Volumes
beyond the root at create are refused with a 400 saying so: attach them once the
server is ACTIVE. `check_root` asks intent/boot_volumes.py about the source and pins the
server to the source's zone (Nova's 400 when the request names another one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from isthmus.api.compute.common import parse_bool
from isthmus.api.compute.validation import invalid_field
from isthmus.api.context import RequestContext
from isthmus.errors import BadRequest
from isthmus.intent import boot_volumes
from isthmus.intent.servers import BootRequest

FIELD = "block_device_mapping_v2"
DESTINATIONS = ("local", "volume")


@dataclass(frozen=True)
class RootMapping:
    source_type: str
    uuid: str | None
    volume_size: int | None
    delete_on_termination: bool
    volume_type: str | None


def _int(value: Any, name: str, index: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
    ):
        raise invalid_field(f"{FIELD}[{index}].{name}", value, f"{value!r} is not an integer.")
    return int(value)


def root_mapping(server: dict[str, Any]) -> RootMapping | None:
    """The boot-from-volume root of a create body, or None (an image boot)."""
    mappings = server.get(FIELD)
    if server.get("block_device_mapping"):
        raise BadRequest("block_device_mapping (v1) is not supported; use block_device_mapping_v2.")
    if mappings is None:
        return None
    if not isinstance(mappings, list) or not all(isinstance(m, dict) for m in mappings):
        raise invalid_field(FIELD, mappings, "must be a list of objects.")
    root: RootMapping | None = None
    for index, mapping in enumerate(mappings):
        source = mapping.get("source_type")
        if source not in boot_volumes.SOURCE_TYPES:
            raise invalid_field(
                f"{FIELD}[{index}].source_type",
                source,
                f"{source!r} is not one of {list(boot_volumes.SOURCE_TYPES)}",
            )
        destination = mapping.get("destination_type", "volume" if source != "image" else "local")
        if destination not in DESTINATIONS:
            raise invalid_field(
                f"{FIELD}[{index}].destination_type",
                destination,
                f"{destination!r} is not one of {list(DESTINATIONS)}",
            )
        boot_index = _int(mapping.get("boot_index"), "boot_index", index)
        size = _int(mapping.get("volume_size"), "volume_size", index)
        if size is not None and size < 0:
            raise invalid_field(f"{FIELD}[{index}].volume_size", size, "must be >= 0.")
        delete = parse_bool(
            "delete_on_termination", mapping.get("delete_on_termination", False) or False
        )
        uuid = mapping.get("uuid")
        if source != "blank" and (not isinstance(uuid, str) or not uuid):
            raise BadRequest(
                f"Block Device Mapping is Invalid: missing uuid for a {source} source."
            )
        if boot_index == 0 and destination == "volume":
            if root is not None:
                raise BadRequest(
                    "Boot sequence for the instance and image/block device mapping combination"
                    " is not valid."
                )
            root = RootMapping(source, uuid, size, delete, mapping.get("volume_type"))
        elif destination == "volume" or source in ("volume", "snapshot"):
            raise BadRequest(
                "Isthmus boots from one root disk (boot_index 0): block devices beyond it"
                " (extra volumes, local disks) are not supported at create; attach volumes"
                " once the server is ACTIVE."
            )
    return root


def check_root(
    session: Session, ctx: RequestContext, mapping: RootMapping, request: BootRequest
) -> None:
    """Resolve the root's source (intent/boot_volumes.py) and pin the server to its
    zone; sets `request.root` and, where the source has a site, its zone."""
    root = boot_volumes.check_root(
        session,
        ctx,
        source_type=mapping.source_type,
        uuid=mapping.uuid,
        volume_size=mapping.volume_size,
        delete_on_termination=mapping.delete_on_termination,
        count=request.max_count,
        volume_type=mapping.volume_type,
    )
    if root.site:
        if request.availability_zone and request.availability_zone != root.site:
            raise BadRequest(
                "Server and volumes are not in the same availability zone. Server is in:"
                f" {request.availability_zone}. Volumes are in: {root.site}"
            )
        request.availability_zone = root.site
    request.root = root
