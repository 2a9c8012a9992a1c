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

Microversions: 2.70 shows the attachment's device `tag` (always null: a tagged
attach is refused as by a Nova whose driver cannot tag, 400, from 2.49 where the
request may carry one); 2.79 shows `delete_on_termination` (the volume's, false
for an attached volume) and takes it on attach (only false: Isthmus does not yet
delete an attached volume with its server); 2.89 shows `attachment_id` and
`bdm_uuid` instead of `id` on list and show.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Request, Response

from isthmus.api.compute.common import compute_router, request_version, require_object
from isthmus.api.compute.servers import get_server
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import server_actions
from isthmus.store.tables import Resource

router = compute_router()


def _service(request: Request) -> Any:
    return request.app.state.service


def _attachment_uuid(what: str, server_id: str, volume: Resource) -> str:
    """A stable id of this attachment of `volume` to the server (2.89's
    attachment_id and bdm_uuid), unless the volume's spec keeps one."""
    kept = volume.spec.get(what)
    if kept:
        return str(kept)
    attached_at = volume.spec.get("attached_at") or ""
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"isthmus:{what}:{server_id}:{volume.id}:{attached_at}")
    )


def _attachment(
    request: Request, server_id: str, volume: Resource, listed: bool = True
) -> dict[str, Any]:
    """One volume attachment at the request's microversion (`listed`: list or
    show; the attach answer keeps `id` at 2.89)."""
    version = request_version(request)
    body: dict[str, Any] = {
        "id": volume.id,
        "serverId": server_id,
        "volumeId": volume.id,
        "device": volume.spec.get("device"),
    }
    if version >= (2, 70):
        body["tag"] = None
    if version >= (2, 79):
        body["delete_on_termination"] = bool(volume.spec.get("delete_on_termination"))
    if version >= (2, 89) and listed:
        del body["id"]
        body["attachment_id"] = _attachment_uuid("attachment_id", server_id, volume)
        body["bdm_uuid"] = _attachment_uuid("bdm_uuid", server_id, volume)
    return body


@router.get("/v2.1/servers/{server_id}/os-volume_attachments")
def list_attachments(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        return {
            "volumeAttachments": [
                _attachment(request, server.id, v)
                for v in server_actions.attached(session, server.id)
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
                return {"volumeAttachment": _attachment(request, server.id, volume)}
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
    _check_attach_fields(ref, request_version(request))
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
        answer = {"volumeAttachment": _attachment(request, server.id, volume, listed=False)}
    service.wake()
    return answer


def _check_attach_fields(ref: dict[str, Any], version: tuple[int, int]) -> None:
    """The attach fields later microversions bring: `tag` (2.49), refused as a
    Nova whose driver cannot tag refuses it; `delete_on_termination` (2.79), a
    boolean, of which Isthmus takes only false."""
    unexpected = [
        key
        for key, since in (("tag", (2, 49)), ("delete_on_termination", (2, 79)))
        if key in ref and version < since
    ]
    if unexpected:
        raise BadRequest(
            "Invalid input for field/attribute volumeAttachment. Additional properties are not"
            f" allowed ({', '.join(repr(k) for k in unexpected)} unexpected)"
        )
    if ref.get("tag") is not None:
        raise BadRequest("Tagged volume attachment is not supported for this server instance.")
    if "delete_on_termination" in ref:
        value = ref["delete_on_termination"]
        if not isinstance(value, bool):
            raise BadRequest(
                "Invalid input for field/attribute delete_on_termination. Value:"
                f" {value}. {value!r} is not of type 'boolean'"
            )
        if value:
            raise BadRequest(
                "Isthmus does not delete an attached volume with its server:"
                " delete_on_termination must be false."
            )


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
