"""Compute v2.1 server actions: POST /servers/{id}/action, parsed here and written
by intent/server_actions.py (start, stop, reboot) and intent/server_lifecycle.py
(the others), in Nova's error order:

1. the body is an object with exactly one key, else 400 "Malformed request
   body"; an action Nova does not have is 400 "There is no such action: X"
   (Nova's dispatcher answers both before it looks at the server);
2. the action's own body is checked as Nova's schema checks it (400);
3. the server: 404 "Instance X could not be found." when it does not exist or
   belongs to another project (a non-admin);
4. the lock (409 "Instance X is locked" for a non-admin), then the vm_state and
   task_state the action allows (409 "Cannot 'pause' instance X while it is in
   vm_state stopped").

Answers: 202 without a body, except rescue (200 with its adminPass), rebuild (202
with the server), confirmResize
(204), os-getConsoleOutput (200 with the output) and createImage (202 with the
image's Location; from 2.45 {"image_id": id}: the image is `saving` until the
server's site has made it, then `active`).

os-getConsoleOutput is the one action that asks the server's site while the
request waits (as Nova asks its compute host): the driver's `console_output`
(sites/base.py); a server not in a site yet, or a site that cannot answer, is
409 "Instance X is not ready".
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import Body, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.compute.common import compute_router, get_flavor, ref_id, request_version
from isthmus.api.compute.create import image_visible
from isthmus.api.compute.validation import validate_access_ip, validate_metadata
from isthmus.api.compute.views import ServerViews
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, Conflict, NotFound, SiteError
from isthmus.intent import server_actions, server_lifecycle
from isthmus.store import repo
from isthmus.store.tables import Resource

router = compute_router()

# actions whose body is null (or an empty object, as Tempest's client sends)
NULL_BODY = (
    "os-start",
    "os-stop",
    "pause",
    "unpause",
    "suspend",
    "resume",
    "unlock",
    "unrescue",
    "shelve",
    "shelveOffload",
    "confirmResize",
    "revertResize",
    "forceDelete",
    "restore",
)
ACTIONS = (
    *NULL_BODY,
    "reboot",
    "lock",
    "unshelve",
    "rebuild",
    "resize",
    "os-getConsoleOutput",
    "createImage",
    "rescue",
)
REBUILD_FIELDS = {
    "imageRef",
    "name",
    "adminPass",
    "metadata",
    "accessIPv4",
    "accessIPv6",
    "OS-DCF:diskConfig",
    "preserve_ephemeral",
}


def find_server(session: Session, ctx: RequestContext, server_id: str) -> Resource:
    """The server the caller may see (a deleting one too), else Nova's 404."""
    try:
        return repo.get(
            session,
            "server",
            server_id,
            project_id=ctx.visible_project(),
            include_deleting=True,
        )
    except NotFound:
        raise NotFound(f"Instance {server_id} could not be found.") from None


# -- body checks (step 2) ----------------------------------------------------------------------


def _invalid(action: str, value: Any, reason: str) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute {action}. Value: {value}. {reason}")


def _null(action: str, value: Any) -> None:
    """null, or an empty object (what Tempest's client sends: {"pause": {}})."""
    if value is not None and value != {}:
        raise _invalid(action, value, f"{value!r} is not of type 'null'")


def _reboot_type(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
        raise BadRequest(
            f"Invalid input for field/attribute reboot. Value: {value}. 'type' must be"
            " 'SOFT' or 'HARD'."
        )
    return kind.upper()


def _lock_reason(value: Any, version: tuple[int, int]) -> str | None:
    """null (or {}), or from 2.73 {"locked_reason": up to 255 characters}."""
    if value is None or value == {}:
        return None
    if version < (2, 73) or not isinstance(value, dict) or set(value) - {"locked_reason"}:
        raise _invalid("lock", value, "Additional properties are not allowed.")
    reason = value.get("locked_reason")
    if reason is not None and (not isinstance(reason, str) or not 1 <= len(reason) <= 255):
        raise _invalid("locked_reason", reason, "It must be a string of 1 to 255 characters.")
    return reason


def _unshelve_zone(value: Any, version: tuple[int, int]) -> str | None:
    """null (or {}), or from 2.77 {"availability_zone": name}."""
    if value is None or value == {}:
        return None
    if version < (2, 77) or not isinstance(value, dict) or set(value) - {"availability_zone"}:
        raise _invalid("unshelve", value, "Additional properties are not allowed.")
    zone = value.get("availability_zone")
    if zone is not None and (not isinstance(zone, str) or not 1 <= len(zone) <= 255):
        raise _invalid("availability_zone", zone, "It must be a string of 1 to 255 characters.")
    return zone


def _console_length(value: Any) -> int | None:
    """{"length": N} (an integer or digit string, -1 or absent: the whole log)."""
    if value is None:
        value = {}
    if not isinstance(value, dict) or set(value) - {"length"}:
        raise _invalid("os-getConsoleOutput", value, "Additional properties are not allowed.")
    length = value.get("length")
    if length is None:
        return None
    text = str(length).strip()
    if isinstance(length, bool) or isinstance(length, float) or not text.lstrip("-").isdigit():
        raise _invalid("length", length, "It must be an integer.")
    number = int(text)
    if number < -1:
        raise _invalid("length", length, "It must be -1 or more.")
    return None if number == -1 else number


def _rebuild_body(value: Any) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    """(image id, column fields, spec keys, adminPass) of a rebuild body."""
    if not isinstance(value, dict) or not isinstance(value.get("imageRef"), str):
        raise _invalid("rebuild", value, "'imageRef' is a required property.")
    unknown = sorted(set(value) - REBUILD_FIELDS)
    if unknown:
        raise _invalid(
            "rebuild", value, f"Additional properties are not allowed ({unknown} unexpected)."
        )
    fields: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if "name" in value:
        name = value["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise _invalid("name", name, "It must be 1 to 255 characters.")
        fields["name"] = name
    if "metadata" in value:
        spec["metadata"] = validate_metadata(value["metadata"])
    if "accessIPv4" in value:
        spec["access_ipv4"] = validate_access_ip("accessIPv4", value["accessIPv4"], 4)
    if "accessIPv6" in value:
        spec["access_ipv6"] = validate_access_ip("accessIPv6", value["accessIPv6"], 6)
    if "OS-DCF:diskConfig" in value:
        if value["OS-DCF:diskConfig"] not in ("AUTO", "MANUAL"):
            raise _invalid("OS-DCF:diskConfig", value["OS-DCF:diskConfig"], "AUTO or MANUAL.")
        spec["disk_config"] = value["OS-DCF:diskConfig"]
    if "adminPass" in value and not isinstance(value["adminPass"], str):
        raise _invalid("adminPass", value["adminPass"], "It must be a string.")
    image = ref_id(value["imageRef"])
    if not image:
        raise _invalid("imageRef", value["imageRef"], "It must be an image id.")
    return image, fields, spec, value.get("adminPass")


def _resize_flavor(value: Any) -> str:
    if not isinstance(value, dict) or value.get("flavorRef") in (None, ""):
        raise _invalid("resize", value, "'flavorRef' is a required property.")
    unknown = sorted(set(value) - {"flavorRef", "OS-DCF:diskConfig"})
    if unknown:
        raise _invalid(
            "resize", value, f"Additional properties are not allowed ({unknown} unexpected)."
        )
    return ref_id(value["flavorRef"])


def _rescue_request(value: Any) -> str:
    """The rescue's admin password (given, or made as Nova makes one)."""
    if value is None or value == {}:
        return secrets.token_urlsafe(9)
    if not isinstance(value, dict) or set(value) - {"adminPass", "rescue_image_ref"}:
        raise _invalid("rescue", value, "Additional properties are not allowed.")
    password = value.get("adminPass")
    if password is not None and not isinstance(password, str):
        raise _invalid("adminPass", password, "It must be a string.")
    return password or secrets.token_urlsafe(9)


def _image_request(value: Any) -> tuple[str, dict[str, str]]:
    """(name, metadata) of a createImage body."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise _invalid("createImage", value, "'name' is a required property.")
    unknown = sorted(set(value) - {"name", "metadata"})
    if unknown:
        raise _invalid(
            "createImage", value, f"Additional properties are not allowed ({unknown} unexpected)."
        )
    name = value["name"]
    if not name.strip() or len(name) > 255:
        raise _invalid("name", name, "It must be 1 to 255 characters.")
    return name, validate_metadata(value.get("metadata", {}))


def parse(action: str, value: Any, version: tuple[int, int]) -> Any:
    """Step 2: the action's argument, checked (400 otherwise)."""
    if action in NULL_BODY:
        _null(action, value)
        return None
    parsers: dict[str, Callable[[Any], Any]] = {
        "reboot": _reboot_type,
        "lock": lambda v: _lock_reason(v, version),
        "unshelve": lambda v: _unshelve_zone(v, version),
        "os-getConsoleOutput": _console_length,
        "rebuild": _rebuild_body,
        "resize": _resize_flavor,
        "createImage": _image_request,
        "rescue": _rescue_request,
    }
    return parsers[action](value)


# -- the action ----------------------------------------------------------------------------------


def _image(session: Session, ctx: RequestContext, image_id: str) -> Resource:
    """An active image the caller may boot (400 otherwise, as Nova's rebuild)."""
    image = session.get(Resource, image_id)
    if image is None or image.kind != "image" or image.deleting or not image_visible(ctx, image):
        raise BadRequest(f"Image {image_id} could not be found.")
    if image.status != "active":
        raise BadRequest(f"Image {image_id} is not active.")
    return image


def _act(session: Session, ctx: RequestContext, server: Resource, action: str, arg: Any) -> Any:
    """Steps 4 and the write; what the action answers beyond its status, if anything."""
    lifecycle = server_lifecycle
    simple: dict[str, Callable[[Session, RequestContext, Resource], None]] = {
        "pause": lifecycle.pause,
        "unpause": lifecycle.unpause,
        "suspend": lifecycle.suspend,
        "resume": lifecycle.resume,
        "unlock": lifecycle.unlock,
        "unrescue": lifecycle.unrescue,
        "shelve": lifecycle.shelve,
        "shelveOffload": lifecycle.shelve_offload,
        "confirmResize": lifecycle.confirm_resize,
        "revertResize": lifecycle.revert_resize,
        "forceDelete": lifecycle.force_delete,
        "restore": lifecycle.restore,
    }
    if action in simple:
        simple[action](session, ctx, server)
    elif action == "rescue":
        lifecycle.rescue(session, ctx, server)
    elif action == "lock":
        lifecycle.lock(session, ctx, server, arg)
    elif action == "unshelve":
        lifecycle.unshelve(session, ctx, server, arg)
    elif action == "rebuild":
        image_id, fields, spec, _ = arg
        lifecycle.check_lock(server, ctx)
        lifecycle.rebuild(
            session, ctx, server, _image(session, ctx, image_id), fields=fields, spec=spec
        )
    elif action == "resize":
        flavor = get_flavor(session, ctx, arg)
        lifecycle.resize(session, ctx, server, flavor)
    elif action in ("os-start", "os-stop", "reboot"):
        lifecycle.check_lock(server, ctx)
        if action == "os-start":
            server_actions.start_server(session, server)
        elif action == "os-stop":
            server_actions.stop_server(session, server)
        else:
            server_actions.reboot_server(session, server, arg)
    return None


def _console_output(request: Request, ctx: RequestContext, server_id: str, length: Any) -> str:
    service = request.app.state.service
    with service.db.read() as session:
        server = find_server(session, ctx, server_id)
        state = server_actions.state_of(session, server)
        if server.deleting:
            raise Conflict(
                f"Cannot 'get_console_output' instance {server.id} while it is in"
                " task_state deleting"
            )
        site = server.site if state.vm_state not in ("building", "shelved_offloaded") else None
    if not site:
        raise Conflict(f"Instance {server_id} is not ready")
    try:
        return str(service.sites.get(site).console_output(server_id, length))
    except SiteError:
        raise Conflict(f"Instance {server_id} is not ready") from None


def _create_image(
    request: Request, ctx: RequestContext, server_id: str, name: str, metadata: dict[str, str]
) -> Response:
    """202 with the image's Location; from 2.45 with {"image_id": id} instead."""
    service = request.app.state.service
    with service.db.session() as session:
        server = find_server(session, ctx, server_id)
        image = server_lifecycle.create_image(
            session, ctx, server, name=name, metadata=metadata, images_dir=service.images_dir
        )
        image_id = image.id
    service.wake()
    if request_version(request) >= (2, 45):
        return JSONResponse({"image_id": image_id}, status_code=202)
    location = f"{base_url_of(request)}/image/v2/images/{image_id}"
    return Response(status_code=202, headers={"Location": location})


@router.post("/v2.1/servers/{server_id}/action")
def server_action(
    request: Request,
    server_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> Response:
    ctx.require_member("os_compute_api:servers:action")
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Malformed request body")
    action, value = next(iter(body.items()))
    if action not in ACTIONS:
        raise BadRequest(f"There is no such action: {action}")
    arg = parse(action, value, request_version(request))
    if action == "os-getConsoleOutput":
        output = _console_output(request, ctx, server_id, arg)
        return JSONResponse({"output": output}, status_code=200)
    service = request.app.state.service
    if action == "createImage":
        return _create_image(request, ctx, server_id, *arg)
    with service.db.session() as session:
        server = find_server(session, ctx, server_id)
        _act(session, ctx, server, action, arg)
        answer: dict[str, Any] | None = None
        if action == "rebuild":  # the whole server from 2.75, as update answers
            full = request_version(request) >= (2, 75)
            detail = ServerViews(session, [server]).detail(request, ctx, server, full)
            if arg[3] is not None:
                detail["adminPass"] = arg[3]
            answer = {"server": detail}
    service.wake()
    if action == "rescue":
        return JSONResponse({"adminPass": arg}, status_code=200)
    if answer is not None:
        return JSONResponse(answer, status_code=202)
    return Response(status_code=204 if action == "confirmResize" else 202)
