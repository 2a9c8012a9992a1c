"""Image v2 (Glance), the subset clients use: version discovery, images (create,
list with filters and paging, show, JSON-patch update, delete, deactivate and
reactivate), image data upload and download, tags and the JSON schemas. Members
are api/image/members.py's, the interoperable import api/image/imports.py's.

Images are global: an image is a `Resource` of kind "image" whose `project_id` is
its owner (None for the seeded public image). Its data lives in one file,
`<data_dir>/images/<id>`; uploading streams into it (computing md5 `checksum`,
sha512 `os_hash_value` and `size`) and never calls a site. The engine copies the
data to a site only when a server there boots from the image
(engine/reconcilers._plan_image). Deleting tombstones the row; the data file goes
when the row is purged (store/repo.purge), i.e. once no site holds a copy. The
writes and the rules of an image's data (queued -> saving -> active) are
intent/images.py's.

Who sees what: admin sees every image; a member sees public images and its own
project's (and community ones when it asks for `visibility=community` or `all`),
and a shared image it is a member of (by id whatever its membership status; in
lists when its membership has the `member_status` asked, accepted by default:
intent/image_members.py). Members may not publicize images (403). A deactivated
image's data is not downloaded but by an admin (403).

Where an image's data is, per site ("store"), shows as Glance shows it: `stores`,
and after an import `os_glance_importing_to_stores` and `os_glance_failed_import`
(intent/image_imports.store_states); a copy under way also shows
`isthmus:copy_progress` ("site-b: 45% (120.0 of 266.7 MiB)").
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from isthmus.api import listing
from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.image.schemas import (
    BASE,
    PATCH_CONTENT_TYPES,
    apply_patch,
    image_schema,
    images_schema,
    new_image,
)
from isthmus.errors import BadRequest, Forbidden, NotFound, OverQuota
from isthmus.intent import image_members
from isthmus.intent import images as intent_images
from isthmus.intent.image_imports import IMPORT_METHODS, StoreState, store_states, stores
from isthmus.store import repo
from isthmus.store.tables import Resource

router = APIRouter(prefix="/image")

# newest first: v2.6 interoperable import, v2.7 os_hidden and the os_hash_* fields, v2.8
# multiple stores (/v2/info/stores), v2.9 copy-image, v2.10 delete from one store
VERSIONS = ("2.10", "2.9", "2.8", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")
SORT_KEYS = (
    "created_at",
    "updated_at",
    "name",
    "id",
    "status",
    "size",
    "visibility",
    "owner",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
)
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
CHUNK = 1024 * 1024


def service_of(request: Request) -> Any:
    return request.app.state.service


# -- version discovery -------------------------------------------------------------------------


@router.get("", include_in_schema=False)
@router.get("/")
@router.get("/versions")
@router.get("/v2", include_in_schema=False)
@router.get("/v2/")
def versions(request: Request) -> dict[str, Any]:
    href = f"{base_url_of(request)}/image/v2/"
    return {
        "versions": [
            {
                "id": f"v{version}",
                "status": "CURRENT" if index == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for index, version in enumerate(VERSIONS)
        ]
    }


@router.get("/v2/schemas/image")
def schema_image() -> dict[str, Any]:
    return image_schema()


@router.get("/v2/schemas/images")
def schema_images() -> dict[str, Any]:
    return images_schema()


# -- bodies and access ----------------------------------------------------------------------------


def image_body(image: Resource, stores: StoreState | None = None) -> dict[str, Any]:
    spec = image.spec
    size = spec.get("size")
    virtual_size = spec.get("virtual_size")
    if "virtual_size" not in spec and spec.get("disk_format") == "raw":
        virtual_size = size
    body: dict[str, Any] = {
        "id": image.id,
        "name": image.name or None,
        "status": image.status,
        "visibility": spec.get("visibility", "shared"),
        "protected": bool(spec.get("protected", False)),
        "os_hidden": bool(spec.get("os_hidden", False)),
        "checksum": spec.get("checksum"),
        "os_hash_algo": spec.get("os_hash_algo"),
        "os_hash_value": spec.get("os_hash_value"),
        "size": size,
        "virtual_size": virtual_size,
        "min_disk": int(spec.get("min_disk") or 0),
        "min_ram": int(spec.get("min_ram") or 0),
        "disk_format": spec.get("disk_format"),
        "container_format": spec.get("container_format"),
        "owner": image.project_id,
        "created_at": repo.isoformat(image.created_at),
        "updated_at": repo.isoformat(image.updated_at),
        "tags": list(spec.get("tags") or []),
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    }
    for key, value in (spec.get("properties") or {}).items():
        body.setdefault(key, value)
    if stores is not None:
        _show_stores(body, stores, bool(spec.get("stores")))
    return body


def _show_stores(body: dict[str, Any], state: StoreState, imported: bool) -> None:
    if state.present:
        body["stores"] = ",".join(state.present)
    if imported:
        body["os_glance_importing_to_stores"] = ",".join(state.importing)
        body["os_glance_failed_import"] = ",".join(state.failed)
    if state.copies:
        body["isthmus:copy_progress"] = ", ".join(
            f"{site}: {copy.text()}" for site, copy in state.copies.items()
        )


def rendered(session: Session, image: Resource) -> dict[str, Any]:
    """An image's body with where its data is."""
    return image_body(image, store_states(session, [image])[image.id])


def can_see(ctx: RequestContext, image: Resource) -> bool:
    return (
        ctx.is_admin
        or image.project_id == ctx.project_id
        or image.spec.get("visibility") in ("public", "community")
        or image_members.membership(image, ctx.project_id) is not None
    )


def visible(session: Session, ctx: RequestContext, image_id: str) -> Resource:
    image = repo.get(session, "image", image_id)
    if not can_see(ctx, image):
        raise NotFound(f"Image {image_id} could not be found.")
    return image


def owned(session: Session, ctx: RequestContext, image_id: str) -> Resource:
    """An image the caller may change: its own project's, or any for admin."""
    ctx.require_member("modify_image")
    image = visible(session, ctx, image_id)
    if not ctx.is_admin and image.project_id != ctx.project_id:
        raise Forbidden(f"You are not permitted to modify image {image_id}.")
    return image


# -- images ------------------------------------------------------------------------------------


@router.post("/v2/images", status_code=201)
def create_image(
    request: Request,
    response: Response,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_member("add_image")
    values = new_image(body, ctx.is_admin, ctx.project_id)
    with service_of(request).db.session() as session:
        spec = {key: values[key] for key in BASE if key != "name"}
        spec.update(properties=values["properties"], owner=values["owner"])
        image = intent_images.add_image(
            session,
            image_id=values["id"],
            owner=values["owner"],
            name=values["name"] or "",
            spec=spec,
        )
        answer = image_body(image)
        store_ids = stores(session)
    response.headers["Location"] = f"{base_url_of(request)}/image/v2/images/{answer['id']}"
    # as Glance: what the new image can be imported with, and into (openstacksdk reads it)
    response.headers["OpenStack-image-import-methods"] = ",".join(IMPORT_METHODS)
    response.headers["OpenStack-image-store-ids"] = ",".join(store_ids)
    return answer


ImageCheck = Callable[[dict[str, Any]], bool]


def _field_is(key: str, wanted: Any) -> ImageCheck:
    return lambda b: bool(b[key] == wanted)


def _has_tag(tag: str) -> ImageCheck:
    return lambda b: tag in b["tags"]


def _size_within(bound: int, low: bool) -> ImageCheck:
    return lambda b: b["size"] is not None and (b["size"] >= bound if low else b["size"] <= bound)


def _filtered(
    request: Request, ctx: RequestContext, pairs: list[tuple[Resource, dict[str, Any]]]
) -> list[tuple[Resource, dict[str, Any]]]:
    """The (row, body) pairs the caller sees that match the list filters."""
    params = request.query_params
    visibility = params.get("visibility")
    if visibility and visibility not in ("public", "private", "shared", "community", "all"):
        raise BadRequest(f"Invalid visibility value: {visibility}")
    member_status = image_members.check_member_status(params.get("member_status", "accepted"))

    def seen(pair: tuple[Resource, dict[str, Any]]) -> bool:
        row, body = pair
        mine = ctx.is_admin or body["owner"] == ctx.project_id
        member = image_members.listed_for(row, ctx.project_id, member_status)
        if not visibility:
            return mine or member or body["visibility"] == "public"
        if visibility == "all":
            return mine or member or body["visibility"] in ("public", "community")
        if visibility == "shared":
            return body["visibility"] == "shared" and (mine or member)
        return body["visibility"] == visibility and (mine or visibility in ("public", "community"))

    pairs = [pair for pair in pairs if seen(pair)]
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for key in ("name", "status", "owner", "disk_format", "container_format"):
        if params.get(key):
            checks.append(_field_is(key, params[key]))
    for key in ("protected", "os_hidden"):
        if params.get(key):
            wanted = params[key].lower() == "true"
            checks.append(_field_is(key, wanted))
    if not params.get("os_hidden"):
        checks.append(lambda b: not b["os_hidden"])
    for tag in params.getlist("tag"):
        checks.append(_has_tag(tag))
    for key in ("size_min", "size_max"):
        if params.get(key):
            if not params[key].isdigit():
                raise BadRequest(f"Invalid {key}: must be an integer.")
            bound = int(params[key])
            low = key == "size_min"
            checks.append(_size_within(bound, low))
    return [pair for pair in pairs if all(check(pair[1]) for check in checks)]


@router.get("/v2/images")
def list_images(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    page = listing.page_of(request, SORT_KEYS, DEFAULT_LIMIT, MAX_LIMIT)
    with service_of(request).db.read() as session:
        rows = list(
            session.scalars(
                select(Resource).where(Resource.kind == "image", Resource.deleting.is_(False))
            )
        )
        states = store_states(session, rows)
        pairs = _filtered(request, ctx, [(row, image_body(row, states[row.id])) for row in rows])
        page_pairs, more = listing.paginate(
            pairs,
            page,
            listing.by_body,
            listing.pair_id,
            lambda marker: BadRequest(f"Invalid marker. Image {marker} could not be found."),
        )
    shown = [body for _, body in page_pairs]
    answer: dict[str, Any] = {
        "images": shown,
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }
    if more and shown:
        query = request.url.include_query_params(marker=shown[-1]["id"], limit=page.limit).query
        answer["next"] = f"/v2/images?{query}"
    return answer


@router.get("/v2/images/{image_id}")
def show_image(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        return rendered(session, visible(session, ctx, image_id))


async def json_patch(request: Request) -> Any:
    """The JSON-patch body of PATCH /v2/images/{id} (its own media type)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in PATCH_CONTENT_TYPES:
        raise BadRequest(
            f"Unsupported Content-Type {content_type or 'none'!r}: send a JSON patch as"
            f" {PATCH_CONTENT_TYPES[0]}."
        )
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise BadRequest(f"Malformed JSON in request body: {exc}") from exc


@router.patch("/v2/images/{image_id}")
def update_image(
    request: Request,
    image_id: str,
    ctx: RequestContext = Depends(get_context),
    ops: Any = Depends(json_patch),
) -> dict[str, Any]:
    with service_of(request).db.session() as session:
        image = owned(session, ctx, image_id)
        current = {key: image.spec.get(key) for key in BASE if key != "name"}
        current["name"] = image.name or None
        current["properties"] = dict(image.spec.get("properties") or {})
        updated = apply_patch(current, ops, ctx.is_admin, image.status)
        name = updated.pop("name")
        if updated != current or name != (image.name or None):
            intent_images.change(session, image, name=name or "", spec=updated)
        return rendered(session, image)


@router.delete("/v2/images/{image_id}", status_code=204)
def delete_image(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    service = service_of(request)
    with service.db.session() as session:
        intent_images.delete_image(session, owned(session, ctx, image_id))
    service.wake()
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/actions/deactivate", status_code=204)
def deactivate_image(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with service_of(request).db.session() as session:
        intent_images.deactivate(session, owned(session, ctx, image_id))
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/actions/reactivate", status_code=204)
def reactivate_image(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with service_of(request).db.session() as session:
        intent_images.reactivate(session, owned(session, ctx, image_id))
    return Response(status_code=204)


# -- tags --------------------------------------------------------------------------------------


@router.put("/v2/images/{image_id}/tags/{tag}", status_code=204)
def add_tag(
    request: Request, image_id: str, tag: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with service_of(request).db.session() as session:
        image = owned(session, ctx, image_id)
        tags = list(image.spec.get("tags") or [])
        if tag not in tags:
            updated = apply_patch(
                {"tags": tags, "properties": {}},
                [{"op": "replace", "path": "/tags", "value": [*tags, tag]}],
                ctx.is_admin,
                image.status,
            )
            intent_images.change(session, image, spec={"tags": updated["tags"]})
    return Response(status_code=204)


@router.delete("/v2/images/{image_id}/tags/{tag}", status_code=204)
def delete_tag(
    request: Request, image_id: str, tag: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with service_of(request).db.session() as session:
        intent_images.delete_tag(session, owned(session, ctx, image_id), tag)
    return Response(status_code=204)


# -- image data --------------------------------------------------------------------------------


def _begin_upload(service: Any, ctx: RequestContext, image_id: str) -> None:
    with service.db.session() as session:
        intent_images.begin_upload(session, owned(session, ctx, image_id))


def _finish_upload(service: Any, image_id: str, part: Path, stats: dict[str, Any]) -> None:
    with service.db.session() as session:
        intent_images.finish_upload(session, image_id, part, service.images_dir / image_id, stats)


def _abort_upload(service: Any, image_id: str) -> None:
    with service.db.session() as session:
        intent_images.abort_upload(session, image_id)


def _absorb(out: BinaryIO, chunk: bytes, hashes: tuple[Any, Any]) -> None:
    out.write(chunk)
    for digest in hashes:
        digest.update(chunk)


async def receive_data(request: Request, part: Path, cap: int) -> dict[str, Any]:
    """Stream the request body into `part`; size and hashes of what came."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha512 = hashlib.sha512()
    size = 0
    with part.open("wb") as out:
        async for chunk in request.stream():
            if not chunk:
                continue
            size += len(chunk)
            if size > cap:
                raise OverQuota(f"Image data exceeds the maximum image size of {cap} bytes.")
            await run_in_threadpool(_absorb, out, chunk, (md5, sha512))
    return {
        "size": size,
        "checksum": md5.hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": sha512.hexdigest(),
    }


@router.put("/v2/images/{image_id}/file", status_code=204)
async def upload_image_data(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    await take_image_data(request, ctx, image_id, _begin_upload, _finish_upload, _abort_upload)
    return Response(status_code=204)


async def take_image_data(
    request: Request,
    ctx: RequestContext,
    image_id: str,
    begin: Callable[[Any, RequestContext, str], None],
    finish: Callable[[Any, str, Path, dict[str, Any]], None],
    abort: Callable[[Any, str], None],
) -> None:
    """An image's data from the request body, for an upload or a stage: refused up
    front when its declared size is over the cap, `begin` (checks and the image's new
    status), streamed into a part file, `finish` with its size and hashes; on any
    failure the part file goes and `abort` puts the image back."""
    service = service_of(request)
    cap = int(service.config.max_image_size)
    for header in ("x-openstack-image-size", "content-length"):
        declared = request.headers.get(header, "")
        if declared.isdigit() and int(declared) > cap:
            raise OverQuota(f"Image data exceeds the maximum image size of {cap} bytes.")
    await run_in_threadpool(begin, service, ctx, image_id)
    part = service.images_dir / f".{image_id}.{uuid.uuid4().hex}.part"
    try:
        stats = await receive_data(request, part, cap)
        await run_in_threadpool(finish, service, image_id, part, stats)
    except BaseException:
        part.unlink(missing_ok=True)
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(abort, service, image_id)
        raise


@router.get(
    "/v2/images/{image_id}/file",
    response_class=Response,
    responses={
        200: {
            "description": "The image data.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "The image has no data (yet)."},
    },
)
def download_image_data(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with service_of(request).db.read() as session:
        image = visible(session, ctx, image_id)
        status, spec = image.status, dict(image.spec)
    if status == "deactivated" and not ctx.is_admin:
        raise Forbidden(
            "The requested image has been deactivated. Image data download is prohibited."
        )
    if status not in ("active", "deactivated") or not spec.get("data_path"):
        return Response(status_code=204)
    path = Path(spec["data_path"])
    if not path.is_file():
        raise NotFound(f"The data of image {image_id} could not be found.")
    headers = {"Content-MD5": spec["checksum"]} if spec.get("checksum") else {}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)
