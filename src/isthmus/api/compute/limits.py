"""Compute v2.1 (Nova): absolute limits (`/limits`) and quota sets
(`/os-quota-sets`), over the global quotas of store/quotas.py.

Usage is counted across all sites from intent, so limits hold whatever each
site's own quota says; over-quota answers are 413 everywhere. A member reads its
own project's limits and quota set (another project's is 403); updating and
reverting quota sets is admin-only. The Nova quotas Isthmus does not enforce
(metadata_items is enforced on servers, the rest are fixed) show their fixed
values and cannot be changed.

Microversions drop fields (`REMOVED_LIMITS`, `REMOVED_QUOTAS`): 2.36 the network
proxies' (security groups and rules, floating and fixed IPs, networks), 2.39
maxImageMeta, 2.57 the personality files' (maxPersonality*, injected_file*); an
update naming a dropped quota is then 400 as any unknown key.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response

from isthmus.api.compute.common import (
    compute_router,
    parse_bool,
    parse_int,
    request_version,
    require_object,
)
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest
from isthmus.store import quotas

router = compute_router()

# quota set fields of Nova 2.1 backed by Isthmus quotas, and the fixed rest
QUOTA_FIELDS = {
    "instances": "instances",
    "cores": "cores",
    "ram": "ram",
    "key_pairs": "key_pairs",
    "floating_ips": "floatingips",
    "security_groups": "security_groups",
    "security_group_rules": "security_group_rules",
    "server_groups": "server_groups",
    "server_group_members": "server_group_members",
}
FIXED_QUOTAS = {
    "metadata_items": 128,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
    "fixed_ips": -1,
}


# (since, names): what limits and quota sets no longer show from a microversion on
REMOVED_LIMITS = (
    (
        (2, 36),
        (
            "maxSecurityGroups",
            "maxSecurityGroupRules",
            "maxTotalFloatingIps",
            "totalSecurityGroupsUsed",
            "totalFloatingIpsUsed",
        ),
    ),
    ((2, 39), ("maxImageMeta",)),
    ((2, 57), ("maxPersonality", "maxPersonalitySize")),
)
REMOVED_QUOTAS = (
    ((2, 36), ("fixed_ips", "floating_ips", "security_groups", "security_group_rules", "networks")),
    ((2, 57), ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")),
)


def _removed(version: tuple[int, int], removed: Any) -> set[str]:
    """The field names `removed` drops at `version`."""
    return {name for since, names in removed if version >= since for name in names}


def _without(body: dict[str, Any], gone: set[str]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in gone} if gone else body


def _target_project(ctx: RequestContext, project_id: str | None, what: str) -> str:
    if project_id and project_id != ctx.project_id:
        ctx.require_admin(what)
        return project_id
    return ctx.project_id


@router.get("/v2.1/limits")
def show_limits(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    project = _target_project(
        ctx, request.query_params.get("tenant_id"), "os_compute_api:limits:other_project"
    )
    with request.app.state.service.db.read() as session:
        limit = quotas.limits(session, project)

        def used(name: str) -> int:
            return quotas.usage(session, project, name)

        absolute = {
            "maxTotalInstances": limit["instances"],
            "maxTotalCores": limit["cores"],
            "maxTotalRAMSize": limit["ram"],
            "maxTotalKeypairs": limit["key_pairs"],
            "maxServerMeta": FIXED_QUOTAS["metadata_items"],
            "maxImageMeta": FIXED_QUOTAS["metadata_items"],
            "maxPersonality": FIXED_QUOTAS["injected_files"],
            "maxPersonalitySize": FIXED_QUOTAS["injected_file_content_bytes"],
            "maxSecurityGroups": limit["security_groups"],
            "maxSecurityGroupRules": limit["security_group_rules"],
            "maxTotalFloatingIps": limit["floatingips"],
            "maxServerGroups": limit["server_groups"],
            "maxServerGroupMembers": limit["server_group_members"],
            "totalInstancesUsed": used("instances"),
            "totalCoresUsed": used("cores"),
            "totalRAMUsed": used("ram"),
            "totalSecurityGroupsUsed": used("security_groups"),
            "totalFloatingIpsUsed": used("floatingips"),
            "totalServerGroupsUsed": used("server_groups"),
        }
    gone = _removed(request_version(request), REMOVED_LIMITS)
    return {"limits": {"rate": [], "absolute": _without(absolute, gone)}}


def _quota_set(request: Request, limit: dict[str, int], project_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": project_id} if project_id else {}
    body.update({name: limit[ours] for name, ours in QUOTA_FIELDS.items()})
    body.update(FIXED_QUOTAS)
    return _without(body, _removed(request_version(request), REMOVED_QUOTAS))


@router.get("/v2.1/os-quota-sets/{project_id}")
def show_quota_set(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    project = _target_project(ctx, project_id, "os_compute_api:os-quota-sets:show")
    with request.app.state.service.db.read() as session:
        return {"quota_set": _quota_set(request, quotas.limits(session, project), project)}


@router.get("/v2.1/os-quota-sets/{project_id}/detail")
def show_quota_set_detail(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    project = _target_project(ctx, project_id, "os_compute_api:os-quota-sets:detail")
    with request.app.state.service.db.read() as session:
        limit = quotas.limits(session, project)
        body: dict[str, Any] = {"id": project}
        for name, ours in QUOTA_FIELDS.items():
            body[name] = {
                "limit": limit[ours],
                "in_use": quotas.usage(session, project, ours),
                "reserved": 0,
            }
        for name, value in FIXED_QUOTAS.items():
            body[name] = {"limit": value, "in_use": 0, "reserved": 0}
        return {"quota_set": _without(body, _removed(request_version(request), REMOVED_QUOTAS))}


@router.get("/v2.1/os-quota-sets/{project_id}/defaults")
def show_quota_defaults(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return {"quota_set": _quota_set(request, dict(quotas.DEFAULTS), project_id)}


@router.put("/v2.1/os-quota-sets/{project_id}")
def update_quota_set(
    request: Request,
    project_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-quota-sets:update")
    ref = dict(require_object(body, "quota_set"))
    force = parse_bool("force", ref.pop("force", False))
    values: dict[str, int] = {}
    gone = _removed(request_version(request), REMOVED_QUOTAS)
    for name, value in ref.items():
        if name in FIXED_QUOTAS and name not in gone:
            if parse_int(name, value, -1) != FIXED_QUOTAS[name]:
                raise BadRequest(f"Quota {name} is fixed at {FIXED_QUOTAS[name]} in Isthmus.")
            continue
        if name not in QUOTA_FIELDS or name in gone:
            raise BadRequest(
                f"Invalid input for field/attribute quota_set. Additional properties are not"
                f" allowed ('{name}' was unexpected)"
            )
        values[QUOTA_FIELDS[name]] = parse_int(name, value, -1)
    with request.app.state.service.db.session() as session:
        if not force:
            for ours, value in values.items():
                in_use = quotas.usage(session, project_id, ours)
                if value != -1 and value < in_use:
                    raise BadRequest(
                        f"Quota limit {value} for {ours} must be greater than or equal to"
                        f" already used and reserved {in_use}."
                    )
        limit = quotas.set_limits(session, project_id, values)
        return {"quota_set": _quota_set(request, limit, None)}


@router.delete("/v2.1/os-quota-sets/{project_id}", status_code=202, response_class=Response)
def revert_quota_set(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("os_compute_api:os-quota-sets:delete")
    with request.app.state.service.db.session() as session:
        quotas.reset_limits(session, project_id)
    return Response(status_code=202)
