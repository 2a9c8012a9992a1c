"""Compute (Nova), admin only: compute services (`/os-services`) and host
aggregates (`/os-aggregates`), one each per site.

Services: each site is one `nova-compute` service whose host and zone are the
site's name; `state` is the site's health (api/compute/hypervisors.state),
`status` its scheduling switch. Disabling a service disables the site (no new
placements; what it holds stays and is reconciled) and keeps Nova's
`disabled_reason`; enabling clears it: intent/sites.set_scheduling, the flag the
Isthmus admin API sets too. Before 2.53 through `PUT /os-services/enable`,
`/disable`, `/disable-log-reason` (host + binary); from 2.53 through
`PUT /os-services/{uuid}`. `forced_down` (2.11) is always false: a site's state
is what its health checks find, so forcing it down is refused (400). Deleting a
service would remove a site, which is the Isthmus admin API's
(`isthmus site remove`): 409.

Aggregates: each site is an aggregate named after it, availability zone = the
site, hosts = [the site], metadata {availability_zone}; `uuid` from 2.41. They
follow the sites, so creating, changing or deleting one, or moving hosts, is 409
(an unknown aggregate 404 first).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from isthmus.api.compute.common import compute_router, parse_bool, request_version
from isthmus.api.compute.hypervisors import (
    find_site,
    legacy_id,
    public_id,
    sites_of,
    state,
    status,
    uuid_id,
)
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.intent import sites as intent_sites
from isthmus.store.tables import Site

router = compute_router()
BINARY = "nova-compute"


def _service(request: Request) -> Any:
    return request.app.state.service


def _time(moment: Any) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") if moment else None


def service_view(version: tuple[int, int], site: Site) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": public_id(version, "service", site.name),
        "binary": BINARY,
        "host": site.name,
        "zone": site.name,
        "status": status(site),
        "state": state(site),
        "updated_at": _time(site.last_seen),
        "disabled_reason": None if site.enabled else site.disabled_reason,
    }
    if version >= (2, 11):
        body["forced_down"] = False
    return body


@router.get("/v2.1/os-services")
def list_services(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:list")
    version = request_version(request)
    host = request.query_params.get("host")
    binary = request.query_params.get("binary")
    with _service(request).db.read() as session:
        sites = [s for s in sites_of(session) if host is None or s.name == host]
        if binary is not None and binary != BINARY:
            sites = []
        return {"services": [service_view(version, s) for s in sites]}


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise BadRequest(
            f"Invalid input for field/attribute disabled_reason. Value: {value}."
            " It must be a string of 1 to 255 characters."
        )
    return value


def _forced_down(value: Any) -> None:
    if parse_bool("forced_down", value):
        raise BadRequest(
            "Isthmus takes a site's state from its health checks; forced_down cannot be set."
        )


@router.put("/v2.1/os-services/{service_ref}")
def update_service(
    request: Request,
    service_ref: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:update")
    version = request_version(request)
    if version >= (2, 53):
        return _update_by_id(request, version, service_ref, body)
    return _legacy_action(request, version, service_ref, body)


def _update_by_id(
    request: Request, version: tuple[int, int], service_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    unknown = sorted(set(body) - {"status", "disabled_reason", "forced_down"})
    if unknown:
        raise BadRequest(
            f"Invalid input for field/attribute request body. Additional properties are not"
            f" allowed ({', '.join(map(repr, unknown))} unexpected)"
        )
    if "status" in body and body["status"] not in ("enabled", "disabled"):
        raise BadRequest(
            f"Invalid input for field/attribute status. Value: {body['status']}."
            " It must be 'enabled' or 'disabled'."
        )
    reason = _reason(body["disabled_reason"]) if "disabled_reason" in body else None
    if reason is not None and body.get("status") != "disabled":
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
    if "forced_down" in body:
        _forced_down(body["forced_down"])
    if not body:
        raise BadRequest(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified."
        )
    with _service(request).db.session() as session:
        site = find_site(sites_of(session), version, "service", service_id)
        if "status" in body:
            site = intent_sites.set_scheduling(
                session, site.name, body["status"] == "enabled", reason
            )
        return {"service": service_view(version, site)}


def _legacy_action(
    request: Request, version: tuple[int, int], action: str, body: dict[str, Any]
) -> dict[str, Any]:
    actions = {"enable", "disable", "disable-log-reason"}
    if version >= (2, 11):
        actions.add("force-down")
    if action not in actions:
        raise NotFound(f"Unknown action {action}")
    host, binary = body.get("host"), body.get("binary")
    if not isinstance(host, str) or not isinstance(binary, str):
        raise BadRequest("Invalid input: 'host' and 'binary' are required strings.")
    reason = _reason(body.get("disabled_reason")) if action == "disable-log-reason" else None
    if action == "force-down":
        if "forced_down" not in body:
            raise BadRequest("'forced_down' is a required property")
        _forced_down(body["forced_down"])
    with _service(request).db.session() as session:
        site = session.get(Site, host)
        if site is None or binary != BINARY:
            raise NotFound(f"Service binary {binary} on host {host} could not be found.")
        answer: dict[str, Any] = {"host": host, "binary": binary}
        if action == "force-down":
            answer["forced_down"] = False
            return {"service": answer}
        site = intent_sites.set_scheduling(session, host, action == "enable", reason)
        answer["status"] = status(site)
        if action == "disable-log-reason":
            answer["disabled_reason"] = site.disabled_reason
        return {"service": answer}


@router.delete("/v2.1/os-services/{service_id}", status_code=204)
def delete_service(
    request: Request, service_id: str, ctx: RequestContext = Depends(get_context)
) -> None:
    ctx.require_admin("os_compute_api:os-services:delete")
    version = request_version(request)
    with _service(request).db.read() as session:
        name = find_site(sites_of(session), version, "service", service_id).name
    raise Conflict(
        f"The compute service of site {name} is the site itself; remove the site through"
        " the Isthmus admin API (isthmus site remove)."
    )


# -- aggregates -----------------------------------------------------------------------------------


def aggregate_view(version: tuple[int, int], site: Site) -> dict[str, Any]:
    created = _time(site.created_at)
    body: dict[str, Any] = {
        "id": legacy_id("aggregate", site.name),
        "name": site.name,
        "availability_zone": site.name,
        "hosts": [site.name],
        "metadata": {"availability_zone": site.name},
        "created_at": created,
        "updated_at": None,
        "deleted_at": None,
        "deleted": False,
    }
    if version >= (2, 41):
        body["uuid"] = uuid_id("aggregate", site.name)
    return body


def _aggregate(request: Request, aggregate_id: str) -> dict[str, Any]:
    """The aggregate (its view) whose id is `aggregate_id`; 404 when none."""
    with _service(request).db.read() as session:
        for site in sites_of(session):
            if str(legacy_id("aggregate", site.name)) == aggregate_id:
                return aggregate_view(request_version(request), site)
    raise NotFound(f"Aggregate {aggregate_id} could not be found.")


READ_ONLY = (
    "Isthmus keeps one aggregate per site (named after it, its availability zone the"
    " site); aggregates follow the sites and cannot be created, changed or deleted."
)


@router.get("/v2.1/os-aggregates")
def list_aggregates(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-aggregates:index")
    version = request_version(request)
    with _service(request).db.read() as session:
        return {"aggregates": [aggregate_view(version, s) for s in sites_of(session)]}


@router.get("/v2.1/os-aggregates/{aggregate_id}")
def show_aggregate(
    request: Request, aggregate_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-aggregates:show")
    return {"aggregate": _aggregate(request, aggregate_id)}


@router.post("/v2.1/os-aggregates")
def create_aggregate(request: Request, ctx: RequestContext = Depends(get_context)) -> None:
    ctx.require_admin("os_compute_api:os-aggregates:create")
    raise Conflict(READ_ONLY)


@router.put("/v2.1/os-aggregates/{aggregate_id}")
@router.delete("/v2.1/os-aggregates/{aggregate_id}")
@router.post("/v2.1/os-aggregates/{aggregate_id}/action")
def change_aggregate(
    request: Request, aggregate_id: str, ctx: RequestContext = Depends(get_context)
) -> None:
    ctx.require_admin("os_compute_api:os-aggregates:update")
    _aggregate(request, aggregate_id)
    raise Conflict(READ_ONLY)
