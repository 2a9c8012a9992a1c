"""Cinder's attach actions on a volume (the flow Nova used before the attachments
API): os-reserve, os-unreserve, os-begin_detaching, os-roll_detaching, os-attach
and os-detach, with Cinder's statuses and 400s.

Reserving and the detaching marks only change the volume's status (nothing for a
site to do; the site keeps reporting what it has, which does not flow back while
it is unchanged). os-attach to a server is the same write as Nova's volume attach
(intent/server_actions.attach_volume: the server's zone, a free device; the
engine attaches it in the site, then the volume is in-use); os-detach is Nova's
detach. An attachment to a host rather than a server is not offered (400).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, NotFound
from isthmus.intent import Caller, server_actions
from isthmus.store import repo
from isthmus.store.tables import Resource

ATTACH_MODES = ("rw", "ro")


def reserve(volume: Resource) -> None:
    """available -> attaching (Cinder's reserve before an attach)."""
    if volume.status != "available" or volume.device_id:
        raise BadRequest(
            "Invalid volume: Volume status must be available to reserve, but the status is"
            f" {volume.status}."
        )
    _set_status(volume, "attaching")


def unreserve(volume: Resource) -> None:
    """attaching (reserved, no attachment yet) -> available; otherwise nothing."""
    if volume.status == "attaching" and not volume.device_id:
        _set_status(volume, "available")


def begin_detaching(volume: Resource) -> None:
    """in-use -> detaching (Nova marks a volume it is about to detach)."""
    if volume.status != "in-use" or not volume.device_id:
        raise BadRequest(
            "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and"
            " attach_status must be 'attached' to detach."
        )
    _set_status(volume, "detaching")


def roll_detaching(volume: Resource) -> None:
    """detaching (marked, still attached) -> in-use; otherwise nothing."""
    if volume.status == "detaching" and volume.device_id:
        _set_status(volume, "in-use")


def attach(
    session: Session, caller: Caller, volume: Resource, server_id: Any, mountpoint: Any, mode: Any
) -> None:
    """Attach `volume` (available, or reserved by os-reserve) to the server
    `server_id` at `mountpoint`, as Nova's volume attach does."""
    if mode is not None and mode not in ATTACH_MODES:
        raise BadRequest(
            "Invalid request to attach volume with an invalid mode. Attaching mode should be"
            " 'rw' or 'ro'"
        )
    if not isinstance(server_id, str) or not server_id:
        raise BadRequest(
            "Invalid request to attach volume to an invalid target: Isthmus attaches volumes"
            " to servers (instance_uuid), not to hosts."
        )
    server = session.get(Resource, server_id)
    if (
        server is None
        or server.kind != "server"
        or server.deleting
        or (caller.visible_project() not in (None, server.project_id))
    ):
        raise NotFound(f"Instance {server_id} could not be found.")
    if volume.status == "attaching" and not volume.device_id:
        volume.status = "available"  # reserved for this attach (same transaction)
    if volume.status != "available" or volume.device_id:
        raise BadRequest(
            "Invalid volume: Volume status must be available or attaching to attach, but"
            f" the status is {volume.status}."
        )
    server_actions.attach_volume(
        session, server, volume.id, mountpoint, project_id=caller.visible_project()
    )
    if mode == "ro":
        repo.change(session, volume, spec={"attach_mode": "ro"})


def detach(session: Session, volume: Resource) -> None:
    """Detach `volume` from its server (Nova's detach)."""
    server = session.get(Resource, volume.device_id) if volume.device_id else None
    if server is None:
        raise BadRequest("Invalid volume: Volume must be attached in order to detach.")
    if volume.status == "detaching":
        volume.status = "in-use"  # marked by os-begin_detaching for this detach
    server_actions.detach_volume(session, server, volume.id)


def connection_info(volume: Resource) -> dict[str, Any]:
    """What os-initialize_connection answers: the volume lives in its site and is
    connected there by the site itself (no initiator on the caller's side)."""
    if volume.status not in ("available", "attaching", "in-use", "reserved"):
        raise BadRequest(
            "Invalid volume: Volume status must be available, attaching or in-use to"
            f" initialize a connection, but it is {volume.status}."
        )
    return {
        "driver_volume_type": "isthmus",
        "data": {
            "volume_id": volume.id,
            "availability_zone": volume.site,
            "access_mode": volume.spec.get("attach_mode") or "rw",
            "encrypted": False,
            "discard": False,
        },
    }


def _set_status(volume: Resource, status: str) -> None:
    volume.status = status
    volume.updated_at = repo.utcnow()
