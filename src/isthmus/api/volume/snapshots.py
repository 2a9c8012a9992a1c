"""Block Storage v3 snapshots (mounted by api/volume/volumes.py under both v3 prefixes).

A snapshot is a `Resource` of kind "snapshot" whose `parent_id` is its volume and
whose site is the volume's site; it is created "creating" and the engine makes it
"available" in that site. A volume with snapshots cannot be deleted (Cinder's
400), and a snapshot that live volumes were created from cannot be deleted either
(those volumes need it in their site).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.listing import page_of
from isthmus.api.volume import microversions as mv
from isthmus.api.volume.common import (
    entity,
    flag,
    list_answer,
    list_query,
    metadata,
    service_of,
    text,
)
from isthmus.api.volume.views import snapshot_body
from isthmus.errors import BadRequest
from isthmus.intent import volumes as intent_volumes
from isthmus.store import repo
from isthmus.store.tables import Resource

SORT_KEYS = ("created_at", "updated_at", "name", "id", "size", "status", "volume_id")
STATUSES = ("creating", "available", "deleting", "error", "error_deleting")

v3 = APIRouter(route_class=mv.VolumeRoute)


def _get(
    session: Session, ctx: RequestContext, snapshot_id: str, deleting: bool = False
) -> Resource:
    return repo.get(
        session,
        "snapshot",
        snapshot_id,
        project_id=ctx.visible_project(),
        include_deleting=deleting,
    )


@v3.post("/snapshots", status_code=202)
def create_snapshot(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_member("volume:create_snapshot")
    ref = entity(body, "snapshot")
    volume_id = text(ref, "volume_id")
    if not volume_id:
        raise BadRequest("Invalid input received: volume_id is required to create a snapshot.")
    name = text(ref, "name") or ""
    description = text(ref, "description")
    meta = metadata(ref.get("metadata"))
    force = flag(ref.get("force", False), "force")
    if mv.at_least(request, mv.SNAPSHOT_IN_USE):
        if "force" in ref and not force:
            raise BadRequest(
                "Since microversion 3.66 the 'force' flag is invalid for this request. For"
                " backward compatibility, however, when the 'force' flag is passed with a"
                " value evaluating to True, it is silently ignored."
            )
        force = True  # from 3.66 an in-use volume is snapshotted without force
    service = service_of(request)
    with service.db.session() as session:
        volume = repo.get(session, "volume", volume_id, project_id=ctx.visible_project())
        snapshot = intent_volumes.create_snapshot(
            session,
            ctx,
            volume,
            name=name,
            force=force,
            description=description,
            metadata=meta,
        )
        answer = snapshot_body(request, snapshot, extended=False)
    service.wake()
    return {"snapshot": answer}


def _summary(body: dict[str, Any]) -> dict[str, Any]:
    """The non-detail list item: the body without the extensions' attributes."""
    return {k: v for k, v in body.items() if not k.startswith("os-extended-snapshot-attributes")}


def _list(request: Request, ctx: RequestContext, detail: bool) -> dict[str, Any]:
    page = page_of(request, SORT_KEYS)
    query = list_query(request, ctx, "snapshot")
    if request.query_params.get("volume_id"):
        query = query.where(Resource.parent_id == request.query_params["volume_id"])
    with service_of(request).db.read() as session:
        pairs = [(row, snapshot_body(request, row)) for row in session.scalars(query)]
        return list_answer(request, "snapshots", pairs, page, None if detail else _summary)


@v3.get("/snapshots")
def list_snapshots(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return _list(request, ctx, detail=False)


@v3.get("/snapshots/detail")
def list_snapshots_detail(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return _list(request, ctx, detail=True)


@v3.get("/snapshots/{snapshot_id}")
def show_snapshot(
    request: Request, snapshot_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        return {"snapshot": snapshot_body(request, _get(session, ctx, snapshot_id, True))}


@v3.put("/snapshots/{snapshot_id}")
def update_snapshot(
    request: Request,
    snapshot_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_member("volume:update_snapshot")
    ref = entity(body, "snapshot")
    fields: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if "name" in ref:
        fields["name"] = text(ref, "name") or ""
    if "description" in ref:
        spec["description"] = text(ref, "description")
    if not fields and not spec:
        raise BadRequest("Invalid input received: name or description is required.")
    service = service_of(request)
    with service.db.session() as session:
        snapshot = _get(session, ctx, snapshot_id)
        intent_volumes.update(session, snapshot, fields=fields, spec=spec)
        answer = snapshot_body(request, snapshot, extended=False)
    service.wake()
    return {"snapshot": answer}


@v3.delete("/snapshots/{snapshot_id}", status_code=202, response_class=Response)
def delete_snapshot(
    request: Request, snapshot_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("volume:delete_snapshot")
    service = service_of(request)
    with service.db.session() as session:
        intent_volumes.delete_snapshot(session, _get(session, ctx, snapshot_id), force=False)
    service.wake()
    return Response(status_code=202)


@v3.post("/snapshots/{snapshot_id}/action", status_code=202)
def snapshot_action(
    request: Request,
    snapshot_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> Response:
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Invalid request body: exactly one action is expected.")
    action, args = next(iter(body.items()))
    if action not in ("os-reset_status", "os-force_delete"):
        raise BadRequest(
            f"There is no such action: {action}. Supported: os-force_delete, os-reset_status."
        )
    ctx.require_admin(f"volume_extension:snapshot_admin_actions:{action[3:]}")
    status = args.get("status") if isinstance(args, dict) else None
    if action == "os-reset_status" and status not in STATUSES:
        raise BadRequest(f"Invalid input received: status must be one of {', '.join(STATUSES)}.")
    service = service_of(request)
    with service.db.session() as session:
        snapshot = _get(session, ctx, snapshot_id)
        if action == "os-force_delete":
            intent_volumes.delete_snapshot(session, snapshot, force=True)
        else:
            intent_volumes.reset_status(snapshot, str(status))  # one of STATUSES, checked above
    service.wake()
    return Response(status_code=202)


# -- snapshot metadata ----------------------------------------------------------------------------


@v3.get("/snapshots/{snapshot_id}/metadata")
def show_snapshot_metadata(
    request: Request, snapshot_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        return {"metadata": dict(_get(session, ctx, snapshot_id).spec.get("metadata") or {})}


def _set_metadata(
    request: Request, ctx: RequestContext, snapshot_id: str, body: Any, replace: bool
) -> dict[str, Any]:
    ctx.require_member("volume:update_snapshot_metadata")
    values = metadata(body.get("metadata") if isinstance(body, dict) else None)
    with service_of(request).db.session() as session:
        merged = intent_volumes.set_metadata(
            session, _get(session, ctx, snapshot_id), values, replace=replace
        )
    return {"metadata": merged}


@v3.post("/snapshots/{snapshot_id}/metadata")
def add_snapshot_metadata(
    request: Request,
    snapshot_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    return _set_metadata(request, ctx, snapshot_id, body, replace=False)


@v3.put("/snapshots/{snapshot_id}/metadata")
def replace_snapshot_metadata(
    request: Request,
    snapshot_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    return _set_metadata(request, ctx, snapshot_id, body, replace=True)


@v3.delete("/snapshots/{snapshot_id}/metadata/{key}", status_code=200, response_class=Response)
def delete_snapshot_metadata_item(
    request: Request, snapshot_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("volume:delete_snapshot_metadata")
    with service_of(request).db.session() as session:
        intent_volumes.delete_metadata_item(session, _get(session, ctx, snapshot_id), key)
    return Response(status_code=200)
