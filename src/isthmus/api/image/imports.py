"""Image v2 interoperable import: discovery (GET /v2/info/import, /v2/info/stores),
staging (PUT /v2/images/{id}/stage), the import call (POST /v2/images/{id}/import)
with the glance-direct and copy-image methods, and removing an image from one store
(DELETE /v2/stores/{store}/{id}).

Each enabled site is a store (intent/image_imports.py); web-download is not
offered (Isthmus would fetch arbitrary URLs on a user's behalf). Staging streams
the data as an upload does (size and hashes computed on the way) and leaves the
image `uploading`; the import answers 202 and the copies into the sites go on in
the engine, shown on the image (`stores`, `os_glance_importing_to_stores`,
`os_glance_failed_import`, `isthmus:copy_progress`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response

from isthmus.api.context import RequestContext, get_context
from isthmus.api.image.images import owned, service_of, take_image_data, visible
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import image_imports
from isthmus.intent import images as intent_images

router = APIRouter(prefix="/image")


@router.get("/v2/info/import")
def import_info(ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    methods = {
        "description": "Import methods available.",
        "type": "array",
        "value": list(image_imports.IMPORT_METHODS),
    }
    return {"import-methods": methods}


@router.get("/v2/info/stores")
def stores_info(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        names = image_imports.stores(session)
    stores: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        store: dict[str, Any] = {"id": name, "description": f"Isthmus site {name}"}
        if index == 0:
            store["default"] = True
        stores.append(store)
    return {"stores": stores}


# -- staging -----------------------------------------------------------------------------------


def _begin_stage(service: Any, ctx: RequestContext, image_id: str) -> None:
    with service.db.session() as session:
        intent_images.begin_stage(session, owned(session, ctx, image_id))


def _finish_stage(service: Any, image_id: str, part: Path, stats: dict[str, Any]) -> None:
    with service.db.session() as session:
        intent_images.finish_stage(session, image_id, part, service.images_dir / image_id, stats)


def _abort_stage(service: Any, image_id: str) -> None:
    with service.db.session() as session:
        intent_images.abort_stage(session, image_id)


@router.put("/v2/images/{image_id}/stage", status_code=204)
async def stage_image_data(
    request: Request, image_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    await take_image_data(request, ctx, image_id, _begin_stage, _finish_stage, _abort_stage)
    return Response(status_code=204)


# -- import ------------------------------------------------------------------------------------


def _parse_import(body: Any, header_store: str | None) -> tuple[str, list[str] | None, bool]:
    """Method name, stores asked (None: not given) and all_stores, checked as
    Glance's request deserializer does (400)."""
    if not isinstance(body, dict):
        raise BadRequest("Import request requires a 'method' field.")
    method = body.get("method")
    if not isinstance(method, dict):
        raise BadRequest("Import request requires a 'method' field.")
    if "name" not in method:
        raise BadRequest("Import request requires a 'name' field.")
    name = method["name"]
    if name not in image_imports.IMPORT_METHODS:
        raise BadRequest(f"Unknown import method name '{name}'.")
    for flag in ("all_stores_must_succeed", "all_stores"):
        if not isinstance(body.get(flag, False), bool):
            raise BadRequest(f"'{flag}' must be boolean value only")
    stores = body.get("stores")
    if stores is not None:
        if header_store is not None:
            raise BadRequest(
                "Stores parameter and x-image-meta-store header can't be both specified"
            )
        if not isinstance(stores, list) or not all(isinstance(s, str) for s in stores):
            raise BadRequest("'stores' must be a list of store identifiers.")
    elif header_store is not None:
        stores = [header_store]
    return str(name), stores, bool(body.get("all_stores", False))


@router.post("/v2/images/{image_id}/import", status_code=202)
def import_image(
    request: Request,
    image_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> Response:
    method, stores, all_stores = _parse_import(body, request.headers.get("x-image-meta-store"))
    service = service_of(request)
    with service.db.session() as session:
        image = visible(session, ctx, image_id)
        image_imports.import_image(session, ctx, image, method, stores, all_stores)
    service.wake()
    return Response(status_code=202)


@router.delete("/v2/stores/{store_id}/{image_id}", status_code=204)
def delete_from_store(
    request: Request, store_id: str, image_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    service = service_of(request)
    with service.db.session() as session:
        image_imports.check_store(session, store_id)
        try:
            image = visible(session, ctx, image_id)
        except NotFound:
            raise NotFound(f"Failed to find image {image_id}") from None
        image_imports.remove_from_store(session, ctx, image, store_id)
    service.wake()
    return Response(status_code=204)
