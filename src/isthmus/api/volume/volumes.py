"""Block Storage v3 (Cinder), the subset clients use: version discovery, volumes
(create, list/detail with filters and paging, show, update, metadata, delete,
actions os-extend / os-reset_status / os-force_delete / os-set_bootable). Snapshots
live in api/volume/snapshots.py; types, availability zones, limits and quota sets
in api/volume/extras.py. Every path is served both with the project id the
catalog publishes (`/volume/v3/<project_id>/...`) and without it (`/volume/v3/...`);
the project id in a URL must be the token's own (`url_project` in api/volume/common.py,
Cinder's 400 "Malformed request url" otherwise).

Only microversion 3.0 is offered (the version documents say so, and every answer
carries `OpenStack-API-Version: volume 3.0`), so clients such as openstacksdk
negotiate it and send 3.0-shaped requests; a higher requested version is served as
3.0.

A volume is a `Resource` of kind "volume" placed in one site (its availability
zone): the handler parses and resolves the volume type, intent/volumes.py chooses
the site, checks quotas, writes the row with status "creating" and enqueues work
for the site; the engine creates it there and sets
the status the site reports ("available", "in-use"). Attachments are written by
the Compute API (`device_id` = server, `spec["device"]`); this API shows them.
Delete tombstones the row (shown as "deleting") until the engine removed the
volume from its site; then it is gone (404).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.listing import page_of
from isthmus.api.volume import extras as volume_extras
from isthmus.api.volume import snapshots as volume_snapshots
from isthmus.api.volume.common import (
    MAX_MICROVERSION,
    MIN_MICROVERSION,
    default_type,
    entity,
    find_type,
    flag,
    list_answer,
    list_query,
    metadata,
    metadata_filter,
    positive_int,
    self_links,
    service_of,
    text,
    type_names,
    url_project,
)
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import volumes as intent_volumes
from isthmus.store import repo
from isthmus.store.tables import Resource

RESETTABLE = (
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "error_managing",
    "managing",
    "attaching",
    "in-use",
    "detaching",
    "maintenance",
    "reserved",
    "extending",
    "error_extending",
)
SORT_KEYS = ("created_at", "updated_at", "name", "id", "size", "status", "availability_zone")


def api_version(response: Response) -> None:
    """Every answer names the one microversion served."""
    response.headers["OpenStack-API-Version"] = f"volume {MAX_MICROVERSION}"
    response.headers["Vary"] = "OpenStack-API-Version"


v3 = APIRouter()


# -- version discovery -------------------------------------------------------------------------


def _version(request: Request) -> dict[str, Any]:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": MAX_MICROVERSION,
        "min_version": MIN_MICROVERSION,
        "updated": "2016-02-08T12:20:21Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": f"{base_url_of(request)}/volume/v3/"},
        ],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    }


def versions(request: Request) -> dict[str, Any]:
    return {"versions": [_version(request)]}


# -- volume bodies ---------------------------------------------------------------------------


def attachments(volume: Resource) -> list[dict[str, Any]]:
    if not volume.device_id:
        return []
    attachment_id = volume.spec.get("attachment_id") or str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"isthmus:attachment:{volume.id}:{volume.device_id}")
    )
    return [
        {
            "id": volume.id,
            "attachment_id": attachment_id,
            "volume_id": volume.id,
            "server_id": volume.device_id,
            "host_name": None,
            "device": volume.spec.get("device"),
            "attached_at": volume.spec.get("attached_at"),
        }
    ]


def volume_body(
    request: Request,
    volume: Resource,
    admin: bool,
    types: dict[str, str],
    extended: bool = True,
) -> dict[str, Any]:
    """Cinder's volume view. `extended` adds the os-vol-* attributes, which Cinder's
    API extensions put on show and list answers only, not on create or update."""
    spec = volume.spec
    type_id = spec.get("volume_type_id")
    body: dict[str, Any] = {
        "id": volume.id,
        "name": volume.name or None,
        "description": spec.get("description"),
        "status": "deleting" if volume.deleting else volume.status,
        "size": int(spec.get("size", 0)),
        "availability_zone": volume.site,
        "created_at": repo.isoformat(volume.created_at),
        "updated_at": repo.isoformat(volume.updated_at),
        "attachments": attachments(volume),
        "bootable": "true" if spec.get("bootable") else "false",
        "encrypted": False,
        "multiattach": False,
        "replication_status": None,
        "consistencygroup_id": None,
        "volume_type": types.get(type_id or "", spec.get("volume_type")),
        "metadata": dict(spec.get("metadata") or {}),
        "snapshot_id": spec.get("snapshot_id"),
        "source_volid": None,
        "user_id": spec.get("user_id"),
        "links": self_links(request, volume.project_id, f"volumes/{volume.id}"),
    }
    if extended:
        body["os-vol-tenant-attr:tenant_id"] = volume.project_id
    if extended and admin:
        body["os-vol-host-attr:host"] = volume.site
        body["os-vol-mig-status-attr:migstat"] = None
        body["os-vol-mig-status-attr:name_id"] = None
    return body


def _get(session: Session, ctx: RequestContext, volume_id: str, deleting: bool = False) -> Resource:
    return repo.get(
        session, "volume", volume_id, project_id=ctx.visible_project(), include_deleting=deleting
    )


def _snapshot_count(session: Session, volume_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Resource)
            .where(Resource.kind == "snapshot", Resource.parent_id == volume_id)
        )
        or 0
    )


# -- volumes -----------------------------------------------------------------------------------


@v3.post("/volumes", status_code=202)
def create_volume(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_member("volume:create")
    ref = entity(body, "volume")
    for unsupported, what in (
        ("source_volid", "from another volume"),
        ("imageRef", "from an image"),
        ("backup_id", "from a backup"),
    ):
        if ref.get(unsupported):
            raise BadRequest(f"Creating a volume {what} ({unsupported}) is not supported.")
    name = text(ref, "name") or ""
    description = text(ref, "description")
    meta = metadata(ref.get("metadata"))
    size = None if ref.get("size") is None else positive_int(ref["size"], "size")
    zone = text(ref, "availability_zone")
    snapshot_id = text(ref, "snapshot_id")
    if size is None and not snapshot_id:
        raise BadRequest("Invalid input received: size is required to create a volume.")
    service = service_of(request)
    with service.db.session() as session:
        snapshot = None
        if snapshot_id:
            snapshot, size = intent_volumes.source_snapshot(session, ctx, snapshot_id, size, zone)
        if size is None:  # unreachable: a size comes with the request or the snapshot
            raise BadRequest("Invalid input received: size is required to create a volume.")
        type_ref = text(ref, "volume_type")
        if type_ref:
            volume_type = find_type(session, type_ref)
            if volume_type is None:
                raise BadRequest(f"Volume type with name or id {type_ref} could not be found.")
        elif snapshot is not None and snapshot.spec.get("volume_type_id"):
            volume_type = find_type(session, snapshot.spec["volume_type_id"]) or default_type(
                session
            )
        else:
            volume_type = default_type(session)
        volume = intent_volumes.create_volume(
            session,
            ctx,
            name=name,
            size=size,
            volume_type=volume_type,
            snapshot=snapshot,
            zone=zone,
            description=description,
            metadata=meta,
        )
        answer = volume_body(
            request, volume, ctx.is_admin, {volume_type.id: volume_type.name}, extended=False
        )
    service.wake()
    return {"volume": answer}


def _summary(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": body["id"], "name": body["name"], "links": body["links"]}


def _list(request: Request, ctx: RequestContext, detail: bool) -> dict[str, Any]:
    page = page_of(request, SORT_KEYS)
    wanted_meta = metadata_filter(request.query_params.get("metadata"))
    with service_of(request).db.read() as session:
        types = type_names(session)
        rows = session.scalars(list_query(request, ctx, "volume"))
        pairs = [(row, volume_body(request, row, ctx.is_admin, types)) for row in rows]
        if wanted_meta:
            pairs = [p for p in pairs if wanted_meta.items() <= p[1]["metadata"].items()]
        return list_answer(request, "volumes", pairs, page, None if detail else _summary)


@v3.get("/volumes")
def list_volumes(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return _list(request, ctx, detail=False)


@v3.get("/volumes/detail")
def list_volumes_detail(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return _list(request, ctx, detail=True)


@v3.get("/volumes/{volume_id}")
def show_volume(
    request: Request, volume_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        volume = _get(session, ctx, volume_id, deleting=True)
        return {"volume": volume_body(request, volume, ctx.is_admin, type_names(session))}


@v3.put("/volumes/{volume_id}")
def update_volume(
    request: Request,
    volume_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_member("volume:update")
    ref = entity(body, "volume")
    fields: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if "name" in ref:
        fields["name"] = text(ref, "name") or ""
    if "description" in ref:
        spec["description"] = text(ref, "description")
    if "metadata" in ref:
        spec["metadata"] = metadata(ref["metadata"])
    if not fields and not spec:
        raise BadRequest("Invalid input received: name, description or metadata is required.")
    service = service_of(request)
    with service.db.session() as session:
        volume = _get(session, ctx, volume_id)
        intent_volumes.update(session, volume, fields=fields, spec=spec)
        answer = volume_body(request, volume, ctx.is_admin, type_names(session), extended=False)
    service.wake()
    return {"volume": answer}


@v3.delete("/volumes/{volume_id}", status_code=202, response_class=Response)
def delete_volume(
    request: Request, volume_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("volume:delete")
    params = request.query_params
    cascade = flag(params.get("cascade", "false"), "cascade")
    force = flag(params.get("force", "false"), "force")
    if force:
        ctx.require_admin("volume:force_delete")
    service = service_of(request)
    with service.db.session() as session:
        intent_volumes.delete_volume(session, _get(session, ctx, volume_id), force, cascade)
    service.wake()
    return Response(status_code=202)


@v3.post("/volumes/{volume_id}/action", status_code=202)
def volume_action(
    request: Request,
    volume_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> Response:
    ctx.require_member("volume:action")
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Invalid request body: exactly one action is expected.")
    action, args = next(iter(body.items()))
    handlers = {
        "os-extend": _extend,
        "os-reset_status": _reset_status,
        "os-force_delete": _force_delete,
        "os-set_bootable": _set_bootable,
    }
    handler = handlers.get(action)
    if handler is None:
        raise BadRequest(
            f"There is no such action: {action}. Supported: {', '.join(sorted(handlers))}."
        )
    service = service_of(request)
    with service.db.session() as session:
        handler(session, ctx, _get(session, ctx, volume_id), args)
    service.wake()
    return Response(status_code=202)


def _extend(session: Session, ctx: RequestContext, volume: Resource, args: Any) -> None:
    if not isinstance(args, dict) or "new_size" not in args:
        raise BadRequest("Invalid input received: os-extend needs new_size.")
    new_size = positive_int(args["new_size"], "new_size")
    intent_volumes.extend_volume(session, ctx, volume, new_size)


def _reset_status(session: Session, ctx: RequestContext, volume: Resource, args: Any) -> None:
    ctx.require_admin("volume_extension:volume_admin_actions:reset_status")
    status = args.get("status") if isinstance(args, dict) else None
    if status not in RESETTABLE:
        raise BadRequest(f"Invalid input received: status must be one of {', '.join(RESETTABLE)}.")
    intent_volumes.reset_status(volume, status)


def _force_delete(session: Session, ctx: RequestContext, volume: Resource, args: Any) -> None:
    ctx.require_admin("volume_extension:volume_admin_actions:force_delete")
    intent_volumes.delete_volume(session, volume, force=True, cascade=False)


def _set_bootable(session: Session, ctx: RequestContext, volume: Resource, args: Any) -> None:
    if not isinstance(args, dict) or "bootable" not in args:
        raise BadRequest("Invalid input received: os-set_bootable needs bootable.")
    intent_volumes.set_bootable(session, volume, flag(args["bootable"], "bootable"))


# -- volume metadata ----------------------------------------------------------------------------


@v3.get("/volumes/{volume_id}/metadata")
def show_metadata(
    request: Request, volume_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        return {"metadata": dict(_get(session, ctx, volume_id).spec.get("metadata") or {})}


def _set_metadata(
    request: Request, ctx: RequestContext, volume_id: str, values: dict[str, str], replace: bool
) -> dict[str, str]:
    ctx.require_member("volume:update_volume_metadata")
    service = service_of(request)
    with service.db.session() as session:
        merged = intent_volumes.set_metadata(
            session, _get(session, ctx, volume_id), values, replace=replace
        )
    return merged


@v3.post("/volumes/{volume_id}/metadata")
def add_metadata(
    request: Request,
    volume_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    values = metadata(body.get("metadata") if isinstance(body, dict) else None)
    return {"metadata": _set_metadata(request, ctx, volume_id, values, replace=False)}


@v3.put("/volumes/{volume_id}/metadata")
def replace_metadata(
    request: Request,
    volume_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    values = metadata(body.get("metadata") if isinstance(body, dict) else None)
    return {"metadata": _set_metadata(request, ctx, volume_id, values, replace=True)}


@v3.get("/volumes/{volume_id}/metadata/{key}")
def show_metadata_item(
    request: Request, volume_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        values = _get(session, ctx, volume_id).spec.get("metadata") or {}
    if key not in values:
        raise NotFound(f"Metadata item {key} was not found.")
    return {"meta": {key: values[key]}}


@v3.put("/volumes/{volume_id}/metadata/{key}")
def set_metadata_item(
    request: Request,
    volume_id: str,
    key: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    item = metadata(body.get("meta") if isinstance(body, dict) else None)
    if list(item) != [key]:
        raise BadRequest("Invalid input received: 'meta' must hold exactly the key of the URL.")
    _set_metadata(request, ctx, volume_id, item, replace=False)
    return {"meta": item}


@v3.delete("/volumes/{volume_id}/metadata/{key}", status_code=200, response_class=Response)
def delete_metadata_item(
    request: Request, volume_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("volume:delete_volume_metadata")
    service = service_of(request)
    with service.db.session() as session:
        intent_volumes.delete_metadata_item(session, _get(session, ctx, volume_id), key)
    return Response(status_code=200)


# -- the router: every v3 path with and without the project id -----------------------------------

router = APIRouter(prefix="/volume", dependencies=[Depends(api_version)])
router.add_api_route("", versions, methods=["GET"], include_in_schema=False)
router.add_api_route("/", versions, methods=["GET"])
router.add_api_route("/v3", versions, methods=["GET"], include_in_schema=False)
router.add_api_route("/v3/", versions, methods=["GET"])
# project-less first: their literals win; the project id, where given, is checked once here
for _prefix, _checks in (("/v3", []), ("/v3/{project_id}", [Depends(url_project)])):
    router.include_router(v3, prefix=_prefix, dependencies=_checks)
    router.include_router(volume_snapshots.v3, prefix=_prefix, dependencies=_checks)
    router.include_router(volume_extras.v3, prefix=_prefix, dependencies=_checks)
router.add_api_route("/v3/{project_id}", versions, methods=["GET"], include_in_schema=False)
router.add_api_route("/v3/{project_id}/", versions, methods=["GET"], include_in_schema=False)
