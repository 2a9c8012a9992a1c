"""Boot from volume: the root disk of a server created with Nova's
block_device_mapping_v2 (boot_index 0, destination_type volume).

`check_root` (reads only) resolves the mapping's source the way Nova does
(400s: a volume that is missing or not available, a missing snapshot or image, an
image or blank volume without a size) and says which site the server must go to:
the site of an existing volume or of the snapshot (a volume attaches only in its
own zone), else wherever placement puts it. `add_root` then, once the server is
placed, takes the volume or makes a new one in the server's site (from the image,
the snapshot or blank, through intent/volumes.create_volume, quotas included) and
attaches it as /dev/vda: the volume's `device_id` is the server and its spec
says `root_of` (the site attaches it when it makes the server, from the server's
`root_volume_id`; model/specs.py), `boot_index` 0 and `delete_on_termination`,
which intent/servers.delete_server honours (`release_root`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from isthmus.errors import BadRequest
from isthmus.intent import Caller, image_members, volume_types
from isthmus.intent import volumes as intent_volumes
from isthmus.store import repo
from isthmus.store.tables import Resource

ROOT_DEVICE = "/dev/vda"
SOURCE_TYPES = ("image", "volume", "snapshot", "blank")


@dataclass
class RootDisk:
    """A checked boot_index 0 mapping with a volume destination."""

    source_type: str  # image, volume, snapshot or blank
    source: Resource | None  # the image, volume or snapshot (None: blank)
    size: int  # GB of a new volume (the existing volume's size for `volume`)
    delete_on_termination: bool
    site: str | None  # the site the server must go to (None: any)
    volume_type: Resource | None = None


def check_root(
    session: Session,
    caller: Caller,
    *,
    source_type: str,
    uuid: str | None,
    volume_size: int | None,
    delete_on_termination: bool,
    count: int,
    volume_type: str | None = None,
) -> RootDisk:
    """The root disk a create asks for, checked as Nova checks it (400s)."""
    visible = caller.visible_project()
    vtype = None
    if volume_type:
        vtype = volume_types.find_type(session, volume_type)
        if vtype is None:
            raise BadRequest(f"Volume type {volume_type} could not be found.")
    if source_type == "volume":
        volume = _get(session, "volume", uuid, visible)
        if volume is None:
            raise BadRequest(f"Block Device Mapping is Invalid: failed to get volume {uuid}.")
        if volume.status != "available" or volume.device_id:
            raise BadRequest(
                f"Invalid volume: volume {uuid} status must be 'available', it is"
                f" '{volume.status}'."
            )
        if count > 1:
            raise BadRequest("Cannot attach one or more volumes to multiple instances")
        return RootDisk(
            "volume", volume, int(volume.spec.get("size", 1)), delete_on_termination, volume.site
        )
    if source_type == "snapshot":
        snapshot = _get(session, "snapshot", uuid, visible)
        if snapshot is None:
            raise BadRequest(f"Block Device Mapping is Invalid: failed to get snapshot {uuid}.")
        if snapshot.status != "available":
            raise BadRequest(
                f"Block Device Mapping is Invalid: snapshot {uuid} is {snapshot.status}."
            )
        size = max(volume_size or 0, int(snapshot.spec.get("size", 1)))
        return RootDisk("snapshot", snapshot, size, delete_on_termination, snapshot.site, vtype)
    if not volume_size:
        what = "Images" if source_type == "image" else "Blank volumes"
        raise BadRequest(
            f"Block Device Mapping is Invalid: {what} with destination_type 'volume' need to"
            " have a non-zero size specified."
        )
    if source_type == "image":
        image = session.get(Resource, uuid) if uuid else None
        if (
            image is None
            or image.kind != "image"
            or image.deleting
            or not image_members.usable_by(caller, image)
        ):
            raise BadRequest(f"Image {uuid} could not be found.")
        if image.status != "active":
            raise BadRequest(f"Image {uuid} is not active.")
        intent_volumes.source_image(session, caller, image.id, volume_size)  # fits the size
        return RootDisk("image", image, volume_size, delete_on_termination, None, vtype)
    return RootDisk("blank", None, volume_size, delete_on_termination, None, vtype)


def add_root(session: Session, caller: Caller, server: Resource, root: RootDisk) -> Resource:
    """Take or make the root volume of `server` (placed) in its site, attached as
    /dev/vda; the server's spec names it (`root_volume_id`)."""
    if root.source_type == "volume" and root.source is not None:
        volume = root.source
    else:
        volume_type = root.volume_type or _type_of(session, root)
        volume = intent_volumes.create_volume(
            session,
            caller,
            name="",
            size=root.size,
            volume_type=volume_type,
            snapshot=root.source if root.source_type == "snapshot" else None,
            zone=server.site,
            description=None,
            metadata={},
            image=root.source if root.source_type == "image" else None,
        )
    repo.change(
        session,
        volume,
        sites=[volume.site] if volume.site else [],
        device_id=server.id,
        status="creating" if volume.status == "creating" else "attaching",
        spec={
            "device": ROOT_DEVICE,
            "attached_at": repo.isoformat(repo.utcnow()),
            "root_of": server.id,
            "boot_index": 0,
            "delete_on_termination": root.delete_on_termination,
        },
    )
    repo.change(session, server, spec={"root_volume_id": volume.id})
    return volume


def release_root(session: Session, volume: Resource) -> bool:
    """A server that boots from `volume` is deleted: delete the volume too when its
    mapping said delete_on_termination (True), else leave it to be detached as
    any other attached volume (False)."""
    if not volume.spec.get("root_of") or not volume.spec.get("delete_on_termination"):
        return False
    repo.mark_deleting(session, volume)
    return True


def _type_of(session: Session, root: RootDisk) -> Resource:
    if root.source is not None and root.source.spec.get("volume_type_id"):
        found = volume_types.find_type(session, root.source.spec["volume_type_id"])
        if found is not None:
            return found
    default = volume_types.find_type(session, volume_types.DEFAULT_VOLUME_TYPE)
    if default is None:
        raise BadRequest("Default volume type can not be found.")
    return default


def _get(session: Session, kind: str, uuid: str | None, project: str | None) -> Resource | None:
    found = session.get(Resource, uuid) if uuid else None
    if found is None or found.kind != kind or found.deleting:
        return None
    if project is not None and found.project_id != project:
        return None
    return found
