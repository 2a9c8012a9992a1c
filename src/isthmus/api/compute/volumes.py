"""Compute v2.1 (Nova), part three: volume attachments of a server
(`/servers/{id}/os-volume_attachments`).

A volume (kind `volume`, written by the Volume API) lives in one site, its
availability zone; `device_id` names the server it is attached to. Attaching
sets `device_id`, the `device` path and status `attaching`; detaching clears
them and sets `detaching`. The engine then realises the change in the site and
the volume becomes `in-use` / `available`. As with Nova's
`cross_az_attach = False`, a volume attaches only to a server in its own zone.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute.common import compute_router, require_object
from isthmus.api.compute.servers import check_state, get_server, state_of
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
from isthmus.store import repo
from isthmus.store.tables import Resource

router = compute_router()

DEVICE = re.compile(r"^/dev/[a-z]*d([a-z]+)$")
ATTACH_STATES = ("active", "stopped")


def _service(request: Request) -> Any:
    return request.app.state.service


def _attachment(server_id: str, volume: Resource) -> dict[str, Any]:
    return {
        "id": volume.id,
        "serverId": server_id,
        "volumeId": volume.id,
        "device": volume.spec.get("device"),
    }


def _attached(session: Session, server_id: str) -> list[Resource]:
    return list(
        session.scalars(
            select(Resource)
            .where(
                Resource.kind == "volume",
                Resource.device_id == server_id,
                Resource.deleting.is_(False),
            )
            .order_by(Resource.updated_at, Resource.id)
        )
    )


def _next_device(used: set[str], requested: Any) -> str:
    """The requested device if it is a free /dev/?d? path, else the next free
    /dev/vdX after the root disk vda."""
    if isinstance(requested, str) and requested and DEVICE.match(requested):
        if requested not in used:
            return requested
    for letter in "bcdefghijklmnopqrstuvwxyz":
        device = f"/dev/vd{letter}"
        if device not in used:
            return device
    raise BadRequest("The server has no free device name left for another volume.")


@router.get("/v2.1/servers/{server_id}/os-volume_attachments")
def list_attachments(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        return {
            "volumeAttachments": [_attachment(server.id, v) for v in _attached(session, server.id)]
        }


@router.get("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}")
def show_attachment(
    request: Request, server_id: str, volume_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        for volume in _attached(session, server.id):
            if volume.id == volume_id:
                return {"volumeAttachment": _attachment(server.id, volume)}
        raise NotFound(f"Volume {volume_id} is not attached to server {server.id}.")


@router.post("/v2.1/servers/{server_id}/os-volume_attachments")
def attach_volume(
    request: Request,
    server_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_member("os_compute_api:os-volumes-attachments:create")
    ref = require_object(body, "volumeAttachment")
    volume_id = ref.get("volumeId")
    if not isinstance(volume_id, str) or not volume_id:
        raise BadRequest(
            "Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property."
        )
    service = _service(request)
    with service.db.session() as session:
        server = get_server(session, ctx, server_id)
        check_state(server, state_of(session, server), "attach_volume", ATTACH_STATES)
        volume = session.get(Resource, volume_id)
        if (
            volume is None
            or volume.kind != "volume"
            or volume.deleting
            or (not ctx.is_admin and volume.project_id != ctx.project_id)
        ):
            raise NotFound(f"Volume {volume_id} could not be found.")
        if volume.status != "available" or volume.device_id:
            raise BadRequest(
                f"Invalid volume: volume {volume_id} status must be 'available', it is"
                f" '{volume.status}'."
            )
        if volume.site != server.site:
            raise BadRequest(
                f"Invalid volume: volume {volume_id} is in availability zone {volume.site} and"
                f" server {server.id} in availability zone {server.site}; a volume attaches only"
                " to a server in the same zone."
            )
        used = {"/dev/vda"} | {str(v.spec.get("device")) for v in _attached(session, server.id)}
        device = _next_device(used, ref.get("device"))
        repo.change(
            session,
            volume,
            sites=[volume.site] if volume.site else [],
            device_id=server.id,
            status="attaching",
            spec={"device": device, "attached_at": repo.isoformat(repo.utcnow())},
        )
        answer = {"volumeAttachment": _attachment(server.id, volume)}
    service.wake()
    return answer


@router.delete(
    "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}",
    status_code=202,
    response_class=Response,
)
def detach_volume(
    request: Request, server_id: str, volume_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("os_compute_api:os-volumes-attachments:delete")
    service = _service(request)
    with service.db.session() as session:
        server = get_server(session, ctx, server_id)
        volume = next((v for v in _attached(session, server.id) if v.id == volume_id), None)
        if volume is None:
            raise NotFound(f"Volume {volume_id} is not attached to server {server.id}.")
        check_state(server, state_of(session, server), "detach_volume", ATTACH_STATES)
        repo.change(
            session,
            volume,
            sites=[volume.site] if volume.site else [],
            device_id=None,
            status="detaching",
            spec={"device": None, "attached_at": None},
        )
    service.wake()
    return Response(status_code=202)
