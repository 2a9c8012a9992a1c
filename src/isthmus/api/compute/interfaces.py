"""Compute os-interface writes: POST /servers/{id}/os-interface (attach a port,
or a new port on a network) and DELETE /servers/{id}/os-interface/{port_id}
(detach), written by intent/server_interfaces.py; the reads (list, show) are in
servers.py.

Nova's order: the body (400: `interfaceAttachment` an object; not both `net_id`
and `port_id`; `fixed_ips` only with `net_id`, one address), then the server
(404 "Instance X could not be found."), then intent's checks. Attach answers 200
with the interface, detach 202.
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, Depends, Request, Response

from isthmus.api.compute.actions import find_server
from isthmus.api.compute.common import compute_router
from isthmus.api.compute.views import interface
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest
from isthmus.intent import server_interfaces

router = compute_router()

ATTACH_FIELDS = {"port_id", "net_id", "fixed_ips", "tag"}


def _invalid(reason: str) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute interfaceAttachment. {reason}")


def parse_attachment(body: Any) -> tuple[str | None, str | None, str | None]:
    """(port_id, net_id, fixed IP) of an attach body, checked as Nova's schema."""
    if not isinstance(body, dict) or set(body) - {"interfaceAttachment"}:
        raise _invalid("Additional properties are not allowed.")
    attachment = body.get("interfaceAttachment", {})
    if not isinstance(attachment, dict):
        raise _invalid("'interfaceAttachment' must be an object.")
    unknown = sorted(set(attachment) - ATTACH_FIELDS)
    if unknown:
        raise _invalid(f"Additional properties are not allowed ({unknown} unexpected).")
    port_id, net_id = attachment.get("port_id"), attachment.get("net_id")
    for name, value in (("port_id", port_id), ("net_id", net_id)):
        if value is not None and (not isinstance(value, str) or not value):
            raise _invalid(f"{name} must be an id.")
    if port_id and net_id:
        raise BadRequest("Must not input both network_id and port_id")
    fixed_ip: str | None = None
    fixed_ips = attachment.get("fixed_ips")
    if fixed_ips is not None:
        if (
            not isinstance(fixed_ips, list)
            or len(fixed_ips) != 1
            or not isinstance(fixed_ips[0], dict)
            or not isinstance(fixed_ips[0].get("ip_address"), str)
        ):
            raise _invalid("fixed_ips must be a list of one {'ip_address': address}.")
        if not net_id:
            raise BadRequest("Must input network_id when request IP address")
        fixed_ip = fixed_ips[0]["ip_address"]
    return port_id, net_id, fixed_ip


@router.post("/v2.1/servers/{server_id}/os-interface")
def attach_interface(
    request: Request,
    server_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_member("os_compute_api:os-attach-interfaces:create")
    port_id, net_id, fixed_ip = parse_attachment(body)
    service = request.app.state.service
    with service.db.session() as session:
        server = find_server(session, ctx, server_id)
        port = server_interfaces.attach_interface(
            session, ctx, server, port_id=port_id, net_id=net_id, fixed_ip=fixed_ip
        )
        answer = {"interfaceAttachment": interface(port)}
    service.wake()
    return answer


@router.delete("/v2.1/servers/{server_id}/os-interface/{port_id}", status_code=202)
def detach_interface(
    request: Request, server_id: str, port_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("os_compute_api:os-attach-interfaces:delete")
    service = request.app.state.service
    with service.db.session() as session:
        server = find_server(session, ctx, server_id)
        server_interfaces.detach_interface(session, ctx, server, port_id)
    service.wake()
    return Response(status_code=202)
