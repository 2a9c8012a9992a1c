"""Image v2 members: sharing a `shared` image with other projects.

POST/GET /v2/images/{id}/members, GET/PUT/DELETE /v2/images/{id}/members/{member},
and their schemas. The owner adds and removes members, a member accepts or rejects
(or puts back to pending) its own membership; the rules are
intent/image_members.py's, this module parses the bodies and answers as Glance.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response

from isthmus.api.context import RequestContext, get_context
from isthmus.api.image.images import service_of, visible
from isthmus.api.image.schemas import member_schema, members_schema
from isthmus.errors import BadRequest
from isthmus.intent import image_members

router = APIRouter(prefix="/image")


def member_body(image_id: str, member: dict[str, Any]) -> dict[str, Any]:
    return {
        "created_at": member["created_at"],
        "image_id": image_id,
        "member_id": member["member_id"],
        "schema": "/v2/schemas/member",
        "status": member["status"],
        "updated_at": member["updated_at"],
    }


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object.")
    return body


@router.get("/v2/schemas/member")
def schema_member() -> dict[str, Any]:
    return member_schema()


@router.get("/v2/schemas/members")
def schema_members() -> dict[str, Any]:
    return members_schema()


@router.post("/v2/images/{image_id}/members")
def add_member(
    request: Request,
    image_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    member_id = _object(body).get("member")
    if member_id is None:
        raise BadRequest("Member to be added not specified")
    ctx.require_member("add_member")
    with service_of(request).db.session() as session:
        image = visible(session, ctx, image_id)
        member = image_members.add_member(session, ctx, image, member_id)
        return member_body(image_id, member)


@router.get("/v2/images/{image_id}/members")
def list_members(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        image = visible(session, ctx, image_id)
        members = image_members.visible_members(ctx, image)
    return {
        "members": [member_body(image_id, m) for m in members],
        "schema": "/v2/schemas/members",
    }


@router.get("/v2/images/{image_id}/members/{member_id}")
def show_member(
    request: Request, image_id: str, member_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        image = visible(session, ctx, image_id)
        return member_body(image_id, image_members.get_member(ctx, image, member_id))


@router.put("/v2/images/{image_id}/members/{member_id}")
def update_member(
    request: Request,
    image_id: str,
    member_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    status = _object(body).get("status")
    if status is None:
        raise BadRequest("Status not specified")
    with service_of(request).db.session() as session:
        image = visible(session, ctx, image_id)
        member = image_members.set_status(session, ctx, image, member_id, status)
        return member_body(image_id, member)


@router.delete("/v2/images/{image_id}/members/{member_id}", status_code=204)
def delete_member(
    request: Request, image_id: str, member_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("delete_member")
    with service_of(request).db.session() as session:
        image = visible(session, ctx, image_id)
        image_members.remove_member(session, ctx, image, member_id)
    return Response(status_code=204)
