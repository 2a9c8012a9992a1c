"""Compute server tags (microversion 2.26): /servers/{id}/tags and
/servers/{id}/tags/{tag}, written by intent/server_lifecycle.py (tags are kept
in the server's spec; the server body shows them from 2.26, views.py).

Nova's order: below 2.26 these paths do not exist (404); then the server (404
"Instance X could not be found."), then the body or tag (400: a tag is 1 to 60
characters without ',' or '/', at most 50 of them). Answers: list and replace
200 with the tags; delete all 204; one tag: check 204 (404 when absent), add
201 with its Location (204 when it was there), delete 204 (404 when absent).
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.compute.actions import find_server
from isthmus.api.compute.common import compute_router, request_version
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import server_lifecycle
from isthmus.store.tables import Resource

router = compute_router()

MAX_TAG_LENGTH = 60


def check_tag(tag: Any) -> str:
    """One tag as Nova's schema wants it, else 400."""
    if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG_LENGTH or "," in tag or "/" in tag:
        raise BadRequest(
            f"Invalid input for field/attribute tags. Value: {tag}. A tag is 1 to"
            f" {MAX_TAG_LENGTH} characters without ',' or '/'."
        )
    return tag


def _server(request: Request, session: Session, ctx: RequestContext, server_id: str) -> Resource:
    """404 below 2.26 (no such resource), then the server or Nova's 404."""
    if request_version(request) < (2, 26):
        raise NotFound("The resource could not be found.")
    return find_server(session, ctx, server_id)


@router.get("/v2.1/servers/{server_id}/tags")
def list_tags(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        server = _server(request, session, ctx, server_id)
        return {"tags": server_lifecycle.tags_of(server)}


@router.put("/v2.1/servers/{server_id}/tags")
def replace_tags(
    request: Request,
    server_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_member("os_compute_api:os-server-tags:update_all")
    service = request.app.state.service
    with service.db.session() as session:
        server = _server(request, session, ctx, server_id)
        if (
            not isinstance(body, dict)
            or set(body) != {"tags"}
            or not isinstance(body["tags"], list)
        ):
            raise BadRequest(
                "Invalid input for field/attribute tags. 'tags' is a required property and"
                " must be a list."
            )
        tags = [check_tag(t) for t in body["tags"]]
        result = server_lifecycle.set_tags(session, ctx, server, tags)
    service.wake()
    return {"tags": result}


@router.delete("/v2.1/servers/{server_id}/tags", status_code=204)
def delete_tags(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("os_compute_api:os-server-tags:delete_all")
    service = request.app.state.service
    with service.db.session() as session:
        server = _server(request, session, ctx, server_id)
        server_lifecycle.remove_tag(session, ctx, server, None)
    service.wake()
    return Response(status_code=204)


@router.get("/v2.1/servers/{server_id}/tags/{tag}", status_code=204)
def check_tag_exists(
    request: Request, server_id: str, tag: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with request.app.state.service.db.read() as session:
        server = _server(request, session, ctx, server_id)
        if tag not in server_lifecycle.tags_of(server):
            raise NotFound(f"Tag {tag} could not be found.")
    return Response(status_code=204)


@router.put("/v2.1/servers/{server_id}/tags/{tag}")
def add_tag(
    request: Request, server_id: str, tag: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("os_compute_api:os-server-tags:update")
    service = request.app.state.service
    with service.db.session() as session:
        server = _server(request, session, ctx, server_id)
        added = server_lifecycle.add_tag(session, ctx, server, check_tag(tag))
    service.wake()
    if not added:
        return Response(status_code=204)
    location = f"{base_url_of(request)}/compute/v2.1/servers/{server_id}/tags/{tag}"
    return Response(status_code=201, headers={"Location": location})


@router.delete("/v2.1/servers/{server_id}/tags/{tag}", status_code=204)
def delete_tag(
    request: Request, server_id: str, tag: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("os_compute_api:os-server-tags:delete")
    service = request.app.state.service
    with service.db.session() as session:
        server = _server(request, session, ctx, server_id)
        server_lifecycle.remove_tag(session, ctx, server, tag)
    service.wake()
    return Response(status_code=204)
