"""Compute v2.1 (Nova), part three: volume attachments of a server
(`/servers/{id}/os-volume_attachments`).

A volume (kind `volume`, written by the Volume API) lives in one site, its
availability zone; `device_id` names the server it is attached to. Attaching
sets `device_id`, the `device` path and status `attaching`; detaching clears
them and sets `detaching`. The engine then realises the change in the site and
the volume becomes `in-use` / `available`. As with Nova's
`cross_az_attach = False`, a volume attaches only to a server in its own zone.
This module parses and answers; the checks and writes are
intent/server_actions.py's (`attach_volume`, `detach_volume`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response

from isthmus.api.compute.common import compute_router, require_object
from isthmus.api.compute.servers import get_server
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import server_actions
from isthmus.store.tables import Resource

router = compute_router()


def _service(request: Request) -> Any:
    return request.app.state.service


def _attachment(server_id: str, volume: Resource) -> dict[str, Any]:
    return {
        "id": volume.id,
        "serverId": server_id,
        "volumeId": volume.id,
        "device": volume.spec.get("device"),
    }


@router.get("/v2.1/servers/{server_id}/os-volume_attachments")
def list_attachments(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        return {
            "volumeAttachments": [
                _attachment(server.id, v) for v in server_actions.attached(session, server.id)
            ]
        }


@router.get("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}")
def show_attachment(
    request: Request, server_id: str, volume_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        for volume in server_actions.attached(session, server.id):
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
        volume = server_actions.attach_volume(
            session,
            server,
            volume_id,
            ref.get("device"),
            project_id=None if ctx.is_admin else ctx.project_id,
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
        server_actions.detach_volume(session, server, volume_id)
    service.wake()
    return Response(status_code=202)
