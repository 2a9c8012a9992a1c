"""Block Storage v3 (Cinder), the subset clients use: version discovery, volumes
(create, list/detail with filters and paging, summary, show, update, metadata,
delete; the actions are api/volume/actions.py's). Snapshots
live in api/volume/snapshots.py; types, availability zones, limits and quota sets
in api/volume/extras.py. Every path is served both with the project id the
catalog publishes (`/volume/v3/<project_id>/...`) and without it (`/volume/v3/...`);
the project id in a URL must be the token's own (`url_project` in api/volume/common.py,
Cinder's 400 "Malformed request url" otherwise).

Microversions 3.0 to 3.70 are negotiated per request (api/volume/microversions.py
lists what each changes here); the version documents name 3.70 as the maximum.
Volumes are made empty, from a snapshot, from another volume (clone) or from an
image (intent/volumes.py checks the source; the site work copies it there).

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

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.listing import page_of
from isthmus.api.volume import actions as volume_actions
from isthmus.api.volume import extras as volume_extras
from isthmus.api.volume import microversions as mv
from isthmus.api.volume import snapshots as volume_snapshots
from isthmus.api.volume.common import (
    MAX_MICROVERSION,
    MIN_MICROVERSION,
    RESOURCE_FILTERS,
    default_type,
    entity,
    find_type,
    flag,
    list_answer,
    list_query,
    metadata,
    positive_int,
    service_of,
    text,
    type_names,
    url_project,
)
from isthmus.api.volume.views import volume_body, volume_summary
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import volumes as intent_volumes
from isthmus.store import repo
from isthmus.store.tables import Resource

SORT_KEYS = ("created_at", "updated_at", "name", "id", "size", "status", "availability_zone")


# the keys of a volume create body Cinder's schema knows (3.53 refuses others)
CREATE_KEYS = frozenset(
    (
        "name",
        "description",
        "display_name",
        "display_description",
        "size",
        "availability_zone",
        "source_volid",
        "snapshot_id",
        "backup_id",
        "group_id",
        "consistencygroup_id",
        "volume_type",
        "metadata",
        "imageRef",
        "multiattach",
    )
)

v3 = APIRouter(route_class=mv.VolumeRoute)


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


def _get(session: Session, ctx: RequestContext, volume_id: str, deleting: bool = False) -> Resource:
    return repo.get(
        session, "volume", volume_id, project_id=ctx.visible_project(), include_deleting=deleting
    )


# -- volumes -----------------------------------------------------------------------------------


def _check_keys(request: Request, body: dict[str, Any], ref: dict[str, Any]) -> None:
    """From 3.53 Cinder's schema refuses keys it does not know."""
    if not mv.at_least(request, mv.SCHEMA_VALIDATION):
        return
    unknown = sorted(set(ref) - CREATE_KEYS) or sorted(
        set(body) - {"volume", "OS-SCH-HNT:scheduler_hints"}
    )
    if unknown:
        raise BadRequest(
            "Invalid input for field/attribute volume. Value: ... Additional properties are"
            f" not allowed ({', '.join(repr(k) for k in unknown)} were unexpected)"
        )


def _sources(ref: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(snapshot_id, source_volid, imageRef) of a create: at most one (Cinder's 400);
    a backup is not a source Isthmus has."""
    if ref.get("backup_id"):
        raise BadRequest("Creating a volume from a backup (backup_id) is not supported.")
    snapshot_id = text(ref, "snapshot_id")
    source_volid = text(ref, "source_volid")
    image_ref = text(ref, "imageRef")
    if len([s for s in (snapshot_id, source_volid, image_ref) if s]) > 1:
        raise BadRequest(
            "Invalid input received: May specify only one of snapshot, imageRef or source volume."
        )
    if image_ref:
        image_ref = image_ref.rstrip("/").rsplit("/", 1)[-1]  # an id or an image URL
    return snapshot_id, source_volid, image_ref


@v3.post("/volumes", status_code=202)
def create_volume(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_member("volume:create")
    ref = entity(body, "volume")
    _check_keys(request, body, ref)
    if ref.get("multiattach") not in (None, False, "false", "False"):
        raise BadRequest("Invalid input received: multiattach volumes are not supported.")
    name = text(ref, "name") or text(ref, "display_name") or ""
    description = text(ref, "description") or text(ref, "display_description")
    meta = metadata(ref.get("metadata"))
    size = None if ref.get("size") is None else positive_int(ref["size"], "size")
    zone = text(ref, "availability_zone")
    snapshot_id, source_volid, image_id = _sources(ref)
    if size is None and not (snapshot_id or source_volid):
        raise BadRequest("Invalid input received: size is required to create a volume.")
    service = service_of(request)
    with service.db.session() as session:
        snapshot = source = image = None
        if snapshot_id:
            snapshot, size = intent_volumes.source_snapshot(session, ctx, snapshot_id, size, zone)
        elif source_volid:
            source, size = intent_volumes.source_volume(session, ctx, source_volid, size, zone)
        if size is None:  # unreachable: a size comes with the request or the source
            raise BadRequest("Invalid input received: size is required to create a volume.")
        if image_id:
            image = intent_volumes.source_image(session, ctx, image_id, size)
        type_ref = text(ref, "volume_type")
        origin = snapshot or source
        if type_ref:
            volume_type = find_type(session, type_ref)
            if volume_type is None:
                raise BadRequest(f"Volume type with name or id {type_ref} could not be found.")
        elif origin is not None and origin.spec.get("volume_type_id"):
            volume_type = find_type(session, origin.spec["volume_type_id"]) or default_type(session)
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
            source=source,
            image=image,
        )
        answer = volume_body(
            request, volume, ctx.is_admin, {volume_type.id: volume_type.name}, extended=False
        )
    service.wake()
    return {"volume": answer}


def _list(request: Request, ctx: RequestContext, detail: bool) -> dict[str, Any]:
    page = page_of(request, SORT_KEYS)
    with service_of(request).db.read() as session:
        types = type_names(session)
        rows = session.scalars(list_query(request, ctx, "volume"))
        pairs = [(row, volume_body(request, row, ctx.is_admin, types)) for row in rows]
        return list_answer(request, "volumes", pairs, page, None if detail else volume_summary)


@v3.get("/volumes")
def list_volumes(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return _list(request, ctx, detail=False)


@v3.get("/volumes/detail")
def list_volumes_detail(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return _list(request, ctx, detail=True)


@v3.get("/volumes/summary")
def volumes_summary(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    """Count and size of the volumes a list would show (3.12), their metadata (3.36)."""
    if not mv.at_least(request, mv.VOLUME_SUMMARY):
        raise NotFound("Volume summary is served from microversion 3.12.")
    with service_of(request).db.read() as session:
        types = type_names(session)
        rows = session.scalars(list_query(request, ctx, "volume"))
        pairs = [(row, volume_body(request, row, ctx.is_admin, types)) for row in rows]
        shown = list_answer(request, "volumes", pairs, page_of(request, SORT_KEYS), None)
    volumes = shown["volumes"]
    summary: dict[str, Any] = {
        "total_count": len(volumes),
        "total_size": sum(v["size"] for v in volumes),
    }
    if mv.at_least(request, mv.SUMMARY_METADATA):
        merged: dict[str, list[str]] = {}
        for volume in volumes:
            for key, value in volume["metadata"].items():
                if value not in merged.setdefault(key, []):
                    merged[key].append(value)
        summary["metadata"] = merged
    return {"volume-summary": summary}


@v3.get("/resource_filters")
def resource_filters(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    """The filters each list takes (3.33); `resource=` names one."""
    if not mv.at_least(request, (3, 33)):
        raise NotFound("Resource filters are served from microversion 3.33.")
    wanted = request.query_params.get("resource")
    return {
        "resource_filters": [
            {"resource": kind, "filters": list(filters)}
            for kind, filters in RESOURCE_FILTERS.items()
            if wanted in (None, kind)
        ]
    }


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

router = APIRouter(prefix="/volume", route_class=mv.VolumeRoute)
router.add_api_route("", versions, methods=["GET"], include_in_schema=False)
router.add_api_route("/", versions, methods=["GET"])
router.add_api_route("/v3", versions, methods=["GET"], include_in_schema=False)
router.add_api_route("/v3/", versions, methods=["GET"])
# project-less first: their literals win; the project id, where given, is checked once here
for _prefix, _checks in (("/v3", []), ("/v3/{project_id}", [Depends(url_project)])):
    router.include_router(v3, prefix=_prefix, dependencies=_checks)
    router.include_router(volume_actions.v3, prefix=_prefix, dependencies=_checks)
    router.include_router(volume_snapshots.v3, prefix=_prefix, dependencies=_checks)
    router.include_router(volume_extras.v3, prefix=_prefix, dependencies=_checks)
router.add_api_route("/v3/{project_id}", versions, methods=["GET"], include_in_schema=False)
router.add_api_route("/v3/{project_id}/", versions, methods=["GET"], include_in_schema=False)
