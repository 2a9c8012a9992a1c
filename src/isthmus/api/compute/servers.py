"""Compute v2.1 (Nova), part one: version discovery and servers (list, show,
create, update, delete, start/stop/reboot, metadata, ips, interfaces).

The writes are the intent layer's: create and delete intent/servers.py, update,
start/stop/reboot and metadata (with the state checks) intent/server_actions.py;
the actions (POST /servers/{id}/action) are parsed in actions.py.
The other compute modules: create (server create: parsing and checks), listing
(server list), views (the server body and Nova's states), extras (flavors,
availability zones), keypairs, limits (limits, quota sets), volumes (volume
attachments) and common (microversions, links, paging).

Microversions 2.1 to 2.96 (common.py negotiates; server_fields.py the request
fields and views.py the body each one changes).

Every handler follows docs/HACKING.md: a write validates, writes intent and
enqueues work in one transaction and then wakes the engine; a read only reads.
A server of another project is 404 for a non-admin, on every endpoint.

The server body is Nova's of the request's microversion (strict clients such as
Tempest reject unknown keys): the site a server is placed in is its
`OS-EXT-AZ:availability_zone` (and the admin's `OS-EXT-SRV-ATTR:host`). The one
Isthmus extension field, `isthmus:pending_reason`, appears only while the engine
waits to realise a change in the site (a site down, a retry), never on a server
that is settled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.compute import server_fields
from isthmus.api.compute.common import (
    MAX_VERSION,
    MIN_VERSION,
    api_url,
    compute_router,
    links,
    request_version,
    require_object,
    version_string,
)
from isthmus.api.compute.create import parse_boot_request
from isthmus.api.compute.listing import list_servers_page
from isthmus.api.compute.validation import validate_access_ip, validate_metadata
from isthmus.api.compute.views import ServerViews, interface
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import server_actions, server_lifecycle
from isthmus.intent import servers as intent_servers
from isthmus.store import repo
from isthmus.store.tables import Resource

router = compute_router()


# -- versions --------------------------------------------------------------------------------


def _version_doc(request: Request, full: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "v2.1",
        "status": "CURRENT",
        "version": version_string(MAX_VERSION),
        "min_version": version_string(MIN_VERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{api_url(request)}/"}],
    }
    if full:
        doc["links"].append(
            {
                "rel": "describedby",
                "type": "text/html",
                "href": "https://docs.openstack.org/api-ref/compute/",
            }
        )
        doc["media-types"] = [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ]
    return doc


@router.get("")
@router.get("/")
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [_version_doc(request, full=False)]}


@router.get("/v2.1")
@router.get("/v2.1/")
def version(request: Request) -> dict[str, Any]:
    return {"version": _version_doc(request, full=True)}


# -- helpers -----------------------------------------------------------------------------------


def _service(request: Request) -> Any:
    return request.app.state.service


def get_server(
    session: Session, ctx: RequestContext, server_id: str, include_deleting: bool = True
) -> Resource:
    """The server if the caller may see it (a deleting one too); Nova's 404
    "Instance X could not be found." otherwise."""
    try:
        return repo.get(
            session,
            "server",
            server_id,
            project_id=ctx.visible_project(),
            include_deleting=include_deleting,
        )
    except NotFound:
        raise NotFound(f"Instance {server_id} could not be found.") from None


def _show(request: Request, ctx: RequestContext, session: Session, server: Resource) -> Any:
    return {"server": ServerViews(session, [server]).detail(request, ctx, server)}


@router.get("/v2.1/servers")
def list_servers(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return list_servers_page(request, ctx, detail=False)


@router.get("/v2.1/servers/detail")
def list_servers_detail(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return list_servers_page(request, ctx, detail=True)


# -- create, show, update, delete ------------------------------------------------------------


@router.post("/v2.1/servers", status_code=202)
def create_server(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> JSONResponse:
    ctx.require_member("os_compute_api:servers:create")
    service = _service(request)
    with service.db.session() as session:
        version = request_version(request)
        if isinstance(body.get("server"), dict):
            server_fields.check_create(body["server"], version)
        placed = server_fields.with_requested_host(session, ctx, body)
        boot_request = parse_boot_request(session, ctx, placed)
        boot_request.extra_spec = server_fields.create_spec(body["server"], version)
        servers = intent_servers.boot(session, ctx, boot_request)
        first = servers[0]
        reservation_id = first.spec["reservation_id"]
    service.wake()
    if boot_request.return_reservation_id:
        return JSONResponse({"reservation_id": reservation_id}, status_code=202)
    answer = {
        "server": {
            "id": first.id,
            "links": links(request, "servers", first.id),
            "adminPass": boot_request.admin_pass,
            "OS-DCF:diskConfig": boot_request.disk_config,
            "security_groups": [{"name": n} for n in boot_request.group_names],
        }
    }
    location = f"{base_url_of(request)}/compute/v2.1/servers/{first.id}"
    return JSONResponse(answer, status_code=202, headers={"Location": location})


@router.get("/v2.1/servers/{server_id}")
def show_server(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        return _show(request, ctx, session, get_server(session, ctx, server_id))


@router.put("/v2.1/servers/{server_id}")
def update_server(
    request: Request,
    server_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_member("os_compute_api:servers:update")
    update = require_object(body, "server")
    version = request_version(request)
    allowed = server_fields.update_fields(version)
    unknown = sorted(set(update) - allowed)
    if unknown:
        raise BadRequest(
            f"Invalid input for field/attribute server. Additional properties are not allowed"
            f" ({', '.join(repr(k) for k in unknown)} unexpected); allowed: {sorted(allowed)}."
        )
    fields: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if "name" in update:
        name = update["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest(f"Invalid input for field/attribute name. Value: {name}.")
        fields["name"] = name
    if "accessIPv4" in update:
        spec["access_ipv4"] = validate_access_ip("accessIPv4", update["accessIPv4"], 4)
    if "accessIPv6" in update:
        spec["access_ipv6"] = validate_access_ip("accessIPv6", update["accessIPv6"], 6)
    if "OS-DCF:diskConfig" in update:
        if update["OS-DCF:diskConfig"] not in ("AUTO", "MANUAL"):
            raise BadRequest("OS-DCF:diskConfig must be 'AUTO' or 'MANUAL'.")
        spec["disk_config"] = update["OS-DCF:diskConfig"]
    spec.update(server_fields.update_spec(update, version))
    service = _service(request)
    with service.db.session() as session:
        server = get_server(session, ctx, server_id)
        server_actions.update_server(session, server, fields=fields, spec=spec)
        # from 2.75 the update answers the whole server, as show does
        full = version >= (2, 75)
        answer = {"server": ServerViews(session, [server]).detail(request, ctx, server, full)}
    service.wake()
    return answer


@router.delete("/v2.1/servers/{server_id}", status_code=204)
def delete_server(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("os_compute_api:servers:delete")
    service = _service(request)
    with service.db.session() as session:
        server = get_server(session, ctx, server_id)
        server_lifecycle.check_lock(server, ctx)
        if not server.deleting:
            server_lifecycle.release_resize(session, server)
            intent_servers.delete_server(session, server)
    service.wake()
    return Response(status_code=204)


# -- metadata ------------------------------------------------------------------------------------


def _change_metadata(
    request: Request,
    ctx: RequestContext,
    server_id: str,
    action: str,
    compute: Callable[[dict[str, str]], dict[str, str]],
) -> dict[str, str]:
    """Apply `compute(current) -> new` to a server's metadata; returns the new one."""
    service = _service(request)
    with service.db.session() as session:
        server = get_server(session, ctx, server_id)
        server_lifecycle.check_lock(server, ctx)
        metadata = server_actions.change_metadata(
            session, server, action, lambda current: validate_metadata(compute(current))
        )
    service.wake()
    return metadata


@router.get("/v2.1/servers/{server_id}/metadata")
def list_metadata(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        return {"metadata": dict(server.spec.get("metadata") or {})}


@router.put("/v2.1/servers/{server_id}/metadata")
def replace_metadata(
    request: Request,
    server_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    new = validate_metadata(body.get("metadata"))
    return {"metadata": _change_metadata(request, ctx, server_id, "update metadata", lambda _: new)}


@router.post("/v2.1/servers/{server_id}/metadata")
def merge_metadata(
    request: Request,
    server_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    new = validate_metadata(body.get("metadata"))
    merged = _change_metadata(
        request, ctx, server_id, "update metadata", lambda current: {**current, **new}
    )
    return {"metadata": merged}


@router.get("/v2.1/servers/{server_id}/metadata/{key}")
def show_metadata_item(
    request: Request, server_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        metadata = get_server(session, ctx, server_id).spec.get("metadata") or {}
        if key not in metadata:
            raise NotFound("Metadata item was not found")
        return {"meta": {key: metadata[key]}}


@router.put("/v2.1/servers/{server_id}/metadata/{key}")
def set_metadata_item(
    request: Request,
    server_id: str,
    key: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    meta = validate_metadata(body.get("meta"), "meta")
    if len(meta) != 1:
        raise BadRequest("Request body contains too many items")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    _change_metadata(
        request, ctx, server_id, "update metadata", lambda current: {**current, **meta}
    )
    return {"meta": meta}


@router.delete("/v2.1/servers/{server_id}/metadata/{key}", status_code=204)
def delete_metadata_item(
    request: Request, server_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    def without(current: dict[str, str]) -> dict[str, str]:
        if key not in current:
            raise NotFound("Metadata item was not found")
        return {k: v for k, v in current.items() if k != key}

    _change_metadata(request, ctx, server_id, "delete metadata", without)
    return Response(status_code=204)


# -- ips: the server's addresses by network (read-only) -------------------------------------


def _ips(request: Request, ctx: RequestContext, server_id: str) -> dict[str, list[Any]]:
    """Nova's basic address view: {network label: [{version, addr}]}."""
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        addresses = ServerViews(session, [server]).addresses(server)
    return {
        label: [{"version": a["version"], "addr": a["addr"]} for a in entries]
        for label, entries in addresses.items()
    }


@router.get("/v2.1/servers/{server_id}/ips")
def list_ips(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return {"addresses": _ips(request, ctx, server_id)}


@router.get("/v2.1/servers/{server_id}/ips/{network_label}")
def show_ips(
    request: Request, server_id: str, network_label: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    addresses = _ips(request, ctx, server_id)
    if network_label not in addresses:
        raise NotFound("Instance is not a member of specified network")
    return {network_label: addresses[network_label]}


# -- interfaces (read-only) ----------------------------------------------------------------------


@router.get("/v2.1/servers/{server_id}/os-interface")
def list_interfaces(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        ports = ServerViews(session, [server]).ports[server.id]
        return {"interfaceAttachments": [interface(p) for p in ports]}


@router.get("/v2.1/servers/{server_id}/os-interface/{port_id}")
def show_interface(
    request: Request, server_id: str, port_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        server = get_server(session, ctx, server_id)
        for port in ServerViews(session, [server]).ports[server.id]:
            if port.id == port_id:
                return {"interfaceAttachment": interface(port)}
        raise NotFound(f"Port {port_id} is not attached to server {server.id}.")
