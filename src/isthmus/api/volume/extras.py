"""Block Storage v3: volume types, availability zones, limits and quota sets
(mounted by api/volume/volumes.py under both v3 prefixes).

Volume types are `Resource` rows of kind "volume_type" (no project, no site);
the default one, "__DEFAULT__", is seeded by the service bootstrap. Only admins
create, change and delete types (the writes and their checks are
intent/volume_types.py's); members see the public ones. Availability zones
are the sites. Quotas are the global per-project ones of store/quotas.py
(volumes, gigabytes, snapshots); backups and groups are not offered (limit 0).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.volume import microversions as mv
from isthmus.api.volume.common import (
    default_type,
    entity,
    find_type,
    flag,
    live_types,
    service_of,
    text,
    zones,
)
from isthmus.errors import BadRequest, Forbidden, NotFound
from isthmus.intent import volume_types as intent_volume_types
from isthmus.store import quotas
from isthmus.store.tables import Project, Resource

VOLUME_QUOTAS = ("volumes", "gigabytes", "snapshots")
UNOFFERED_QUOTAS = {"backups": 0, "backup_gigabytes": 0, "groups": 0, "per_volume_gigabytes": -1}

v3 = APIRouter(route_class=mv.VolumeRoute)


# -- volume types -------------------------------------------------------------------------------


def type_body(volume_type: Resource) -> dict[str, Any]:
    public = bool(volume_type.spec.get("is_public", True))
    return {
        "id": volume_type.id,
        "name": volume_type.name,
        "description": volume_type.spec.get("description"),
        "is_public": public,
        "os-volume-type-access:is_public": public,
        "extra_specs": dict(volume_type.spec.get("extra_specs") or {}),
        "qos_specs_id": None,
    }


def _visible_type(session: Session, ctx: RequestContext, type_id: str) -> Resource:
    found = default_type(session) if type_id == "default" else find_type(session, type_id)
    if found is None or not (ctx.is_admin or found.spec.get("is_public", True)):
        raise NotFound(f"Volume type {type_id} could not be found.")
    return found


def _extra_specs(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
        for k, v in value.items()
    ):
        raise BadRequest("Invalid input received: extra_specs must map strings to strings.")
    return dict(value)


def _is_public(ref: dict[str, Any], default: bool) -> bool:
    for key in ("os-volume-type-access:is_public", "is_public"):
        if key in ref:
            return flag(ref[key], key)
    return default


@v3.get("/types")
def list_types(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        types = [t for t in live_types(session) if ctx.is_admin or t.spec.get("is_public", True)]
        return {"volume_types": [type_body(t) for t in types]}


@v3.get("/types/{type_id}")
def show_type(
    request: Request, type_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        return {"volume_type": type_body(_visible_type(session, ctx, type_id))}


@v3.post("/types")
def create_type(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("volume_extension:types_manage")
    ref = entity(body, "volume_type")
    name = (text(ref, "name") or "").strip()
    if not name:
        raise BadRequest("Invalid input received: a volume type needs a name.")
    spec = {
        "description": text(ref, "description"),
        "is_public": _is_public(ref, True),
        "extra_specs": _extra_specs(ref.get("extra_specs")),
    }
    with service_of(request).db.session() as session:
        created = intent_volume_types.add_type(session, name, spec)
        return {"volume_type": type_body(created)}


@v3.put("/types/{type_id}")
def update_type(
    request: Request,
    type_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("volume_extension:types_manage")
    ref = entity(body, "volume_type")
    with service_of(request).db.session() as session:
        volume_type = _visible_type(session, ctx, type_id)
        fields: dict[str, Any] = {}
        if ref.get("name") is not None:
            name = (text(ref, "name") or "").strip()
            if not name:
                raise BadRequest("Invalid input received: a volume type name cannot be empty.")
            intent_volume_types.check_rename(session, volume_type, name)
            fields["name"] = name
        spec: dict[str, Any] = {
            "is_public": _is_public(ref, volume_type.spec.get("is_public", True))
        }
        if "description" in ref:
            spec["description"] = text(ref, "description")
        intent_volume_types.update_type(session, volume_type, fields=fields, spec=spec)
        return {"volume_type": type_body(volume_type)}


@v3.delete("/types/{type_id}", status_code=202, response_class=Response)
def delete_type(
    request: Request, type_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("volume_extension:types_manage")
    with service_of(request).db.session() as session:
        intent_volume_types.delete_type(session, _visible_type(session, ctx, type_id))
    return Response(status_code=202)


@v3.get("/types/{type_id}/extra_specs")
def show_extra_specs(
    request: Request, type_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        return {"extra_specs": type_body(_visible_type(session, ctx, type_id))["extra_specs"]}


@v3.post("/types/{type_id}/extra_specs")
def add_extra_specs(
    request: Request,
    type_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("volume_extension:types_extra_specs:create")
    values = _extra_specs(body.get("extra_specs") if isinstance(body, dict) else None)
    with service_of(request).db.session() as session:
        merged = intent_volume_types.merge_extra_specs(
            session, _visible_type(session, ctx, type_id), values
        )
    return {"extra_specs": merged}


@v3.delete("/types/{type_id}/extra_specs/{key}", status_code=202, response_class=Response)
def delete_extra_spec(
    request: Request, type_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("volume_extension:types_extra_specs:delete")
    with service_of(request).db.session() as session:
        volume_type = _visible_type(session, ctx, type_id)
        intent_volume_types.delete_extra_spec(session, volume_type, key, type_id)
    return Response(status_code=202)


# -- availability zones and limits ------------------------------------------------------------


@v3.get("/os-availability-zone")
def availability_zones(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with service_of(request).db.read() as session:
        return {"availabilityZoneInfo": zones(session)}


def _project_for(ctx: RequestContext, project_id: str | None) -> str:
    """The project asked about: one's own, or any for admin."""
    if project_id and project_id != ctx.project_id:
        if not ctx.is_admin:
            raise Forbidden(f"Policy does not allow access to project {project_id}.")
        return project_id
    return ctx.project_id


@v3.get("/limits")
def limits(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    project = _project_for(ctx, request.query_params.get("project_id"))
    with service_of(request).db.read() as session:
        hard = quotas.limits(session, project)
        used = {name: quotas.usage(session, project, name) for name in VOLUME_QUOTAS}
    absolute = {
        "maxTotalVolumes": hard["volumes"],
        "maxTotalVolumeGigabytes": hard["gigabytes"],
        "maxTotalSnapshots": hard["snapshots"],
        "maxTotalBackups": 0,
        "maxTotalBackupGigabytes": 0,
        "totalVolumesUsed": used["volumes"],
        "totalGigabytesUsed": used["gigabytes"],
        "totalSnapshotsUsed": used["snapshots"],
        "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0,
    }
    return {"limits": {"rate": [], "absolute": absolute}}


# -- quota sets ----------------------------------------------------------------------------------


def _quota_set(session: Session, project: str, usage: bool, defaults: bool) -> dict[str, Any]:
    hard = dict(quotas.DEFAULTS) if defaults else quotas.limits(session, project)
    body: dict[str, Any] = {"id": project}
    for name in VOLUME_QUOTAS:
        if usage:
            in_use = quotas.usage(session, project, name)
            body[name] = {"limit": hard[name], "in_use": in_use, "reserved": 0, "allocated": 0}
        else:
            body[name] = hard[name]
    for name, value in UNOFFERED_QUOTAS.items():
        body[name] = (
            {"limit": value, "in_use": 0, "reserved": 0, "allocated": 0} if usage else value
        )
    return body


@v3.get("/os-quota-sets/{tenant_id}")
def show_quota_set(
    request: Request, tenant_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    project = _project_for(ctx, tenant_id)
    usage = flag(request.query_params.get("usage", "false"), "usage")
    with service_of(request).db.read() as session:
        return {"quota_set": _quota_set(session, project, usage, defaults=False)}


@v3.get("/os-quota-sets/{tenant_id}/defaults")
def show_quota_defaults(
    request: Request, tenant_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    project = _project_for(ctx, tenant_id)
    with service_of(request).db.read() as session:
        return {"quota_set": _quota_set(session, project, usage=False, defaults=True)}


@v3.put("/os-quota-sets/{tenant_id}")
def update_quota_set(
    request: Request,
    tenant_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("volume_extension:quotas:update")
    ref = entity(body, "quota_set")
    values = {k: v for k, v in ref.items() if k not in ("id", "tenant_id")}
    unknown = set(values) - set(VOLUME_QUOTAS)
    if unknown:
        raise BadRequest(
            f"Bad key(s) {', '.join(sorted(unknown))} in quota set; Isthmus offers"
            f" {', '.join(VOLUME_QUOTAS)}."
        )
    for name, value in values.items():
        if isinstance(value, str) and value.lstrip("-").isdigit():
            values[name] = int(value)
    with service_of(request).db.session() as session:
        if session.get(Project, tenant_id) is None:
            raise NotFound(f"Project {tenant_id} could not be found.")
        quotas.set_limits(session, tenant_id, values)
        answer = _quota_set(session, tenant_id, usage=False, defaults=False)
    answer.pop("id")
    return {"quota_set": answer}


@v3.delete("/os-quota-sets/{tenant_id}", status_code=200, response_class=Response)
def reset_quota_set(
    request: Request, tenant_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("volume_extension:quotas:delete")
    with service_of(request).db.session() as session:
        quotas.reset_limits(session, tenant_id, VOLUME_QUOTAS)
    return Response(status_code=200)
