"""Block Storage v3 volume actions (POST /volumes/{id}/action) and the extensions
list (mounted by api/volume/volumes.py under both v3 prefixes).

Actions: os-extend (an in-use volume from 3.42), os-reset_status and
os-force_delete (admins), os-set_bootable (200, as Cinder), and the attach
family Nova used before Cinder's attachments API: os-reserve, os-unreserve,
os-begin_detaching, os-roll_detaching, os-attach, os-detach,
os-initialize_connection (200 with connection info) and os-terminate_connection
(intent/volume_attach.py holds their rules); os-set_image_metadata,
os-unset_image_metadata and os-show_image_metadata (200) on a volume's
volume_image_metadata. The extensions list names what
Isthmus serves of Cinder's extensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.volume import microversions as mv
from isthmus.api.volume.common import flag, metadata, positive_int, service_of
from isthmus.errors import BadRequest
from isthmus.intent import volume_attach
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

v3 = APIRouter(route_class=mv.VolumeRoute)

Handler = Callable[[Session, RequestContext, Resource, Any, Request], dict[str, Any] | None]


def _args(args: Any, action: str) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise BadRequest(f"Invalid input received: the body of {action} must be an object.")
    return args


def _extend(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    if not isinstance(args, dict) or "new_size" not in args:
        raise BadRequest("Invalid input received: os-extend needs new_size.")
    new_size = positive_int(args["new_size"], "new_size")
    in_use = mv.at_least(request, mv.EXTEND_IN_USE)
    intent_volumes.extend_volume(session, ctx, volume, new_size, in_use=in_use)


def _reset_status(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    ctx.require_admin("volume_extension:volume_admin_actions:reset_status")
    status = args.get("status") if isinstance(args, dict) else None
    if status not in RESETTABLE:
        raise BadRequest(f"Invalid input received: status must be one of {', '.join(RESETTABLE)}.")
    intent_volumes.reset_status(volume, status)


def _force_delete(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    ctx.require_admin("volume_extension:volume_admin_actions:force_delete")
    intent_volumes.delete_volume(session, volume, force=True, cascade=False)


def _set_bootable(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    if not isinstance(args, dict) or "bootable" not in args:
        raise BadRequest("Invalid input received: os-set_bootable needs bootable.")
    intent_volumes.set_bootable(session, volume, flag(args["bootable"], "bootable"))


def _reserve(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    volume_attach.reserve(volume)


def _unreserve(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    volume_attach.unreserve(volume)


def _begin_detaching(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    volume_attach.begin_detaching(volume)


def _roll_detaching(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    volume_attach.roll_detaching(volume)


def _attach(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    ref = _args(args, "os-attach")
    if ref.get("host_name") and not ref.get("instance_uuid"):
        raise BadRequest(
            "Invalid request to attach volume to an invalid target: Isthmus attaches volumes"
            " to servers (instance_uuid), not to hosts."
        )
    volume_attach.attach(
        session, ctx, volume, ref.get("instance_uuid"), ref.get("mountpoint"), ref.get("mode")
    )


def _detach(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    volume_attach.detach(session, volume)


def _initialize_connection(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> dict[str, Any]:
    ref = _args(args, "os-initialize_connection")
    if not isinstance(ref.get("connector"), dict):
        raise BadRequest("Invalid request body: os-initialize_connection needs a connector.")
    return {"connection_info": volume_attach.connection_info(volume)}


def _terminate_connection(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    ref = _args(args, "os-terminate_connection")
    if not isinstance(ref.get("connector"), dict):
        raise BadRequest("Invalid request body: os-terminate_connection needs a connector.")


def _set_image_metadata(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> dict[str, Any]:
    values = metadata(_args(args, "os-set_image_metadata").get("metadata"))
    return {"metadata": intent_volumes.set_image_metadata(session, volume, values)}


def _unset_image_metadata(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> None:
    key = _args(args, "os-unset_image_metadata").get("key")
    if not isinstance(key, str) or not key:
        raise BadRequest("Invalid input received: os-unset_image_metadata needs a key.")
    intent_volumes.unset_image_metadata(session, volume, key)


def _show_image_metadata(
    session: Session, ctx: RequestContext, volume: Resource, args: Any, request: Request
) -> dict[str, Any]:
    return {"metadata": dict(volume.spec.get("volume_image_metadata") or {})}


HANDLERS: dict[str, Handler] = {
    "os-extend": _extend,
    "os-reset_status": _reset_status,
    "os-force_delete": _force_delete,
    "os-set_bootable": _set_bootable,
    "os-reserve": _reserve,
    "os-unreserve": _unreserve,
    "os-begin_detaching": _begin_detaching,
    "os-roll_detaching": _roll_detaching,
    "os-attach": _attach,
    "os-detach": _detach,
    "os-initialize_connection": _initialize_connection,
    "os-terminate_connection": _terminate_connection,
    "os-set_image_metadata": _set_image_metadata,
    "os-unset_image_metadata": _unset_image_metadata,
    "os-show_image_metadata": _show_image_metadata,
}
OK_ACTIONS = (  # 200, the others 202
    "os-set_bootable",
    "os-initialize_connection",
    "os-set_image_metadata",
    "os-unset_image_metadata",
    "os-show_image_metadata",
)


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
    handler = HANDLERS.get(action)
    if handler is None:
        raise BadRequest(
            f"There is no such action: {action}. Supported: {', '.join(sorted(HANDLERS))}."
        )
    service = service_of(request)
    with service.db.session() as session:
        volume = repo.get(session, "volume", volume_id, project_id=ctx.visible_project())
        answer = handler(session, ctx, volume, args, request)
    service.wake()
    if answer is not None:
        return JSONResponse(answer, status_code=200)
    return Response(status_code=200 if action in OK_ACTIONS else 202)


# -- extensions ---------------------------------------------------------------------------------

EXTENSIONS = (
    ("AdminActions", "os-admin-actions", "Enable admin actions."),
    ("AvailabilityZones", "os-availability-zone", "Describe Availability Zones."),
    ("ExtendedSnapshotAttributes", "os-extended-snapshot-attributes", "Extended attributes."),
    ("Quotas", "os-quota-sets", "Quota management support."),
    ("TypesManage", "os-types-manage", "Types manage support."),
    ("TypesExtraSpecs", "os-types-extra-specs", "Type extra specs support."),
    ("VolumeActions", "os-volume-actions", "Enable volume actions."),
    ("VolumeHostAttribute", "os-vol-host-attr", "Expose host as an attribute of a volume."),
    ("VolumeImageMetadata", "os-vol-image-meta", "Show image metadata associated with the volume."),
    ("VolumeMigStatusAttribute", "os-vol-mig-status-attr", "Expose migration_status."),
    ("VolumeTenantAttribute", "os-vol-tenant-attr", "Expose the internal project_id."),
    ("VolumeTypeAccess", "os-volume-type-access", "Volume type access support."),
)


@v3.get("/extensions")
def list_extensions(ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return {
        "extensions": [
            {
                "alias": alias,
                "name": name,
                "description": description,
                "namespace": f"https://docs.openstack.org/volume/ext/{alias}/api/v1",
                "updated": "2016-02-08T12:20:21+00:00",
                "links": [],
            }
            for name, alias, description in EXTENSIONS
        ]
    }
