"""Volume and snapshot create below the API (api/volume/volumes.py and
snapshots.py parse the Cinder bodies and render the answers).

A volume goes to one site (its availability zone): the site of the snapshot it is
made from, else the one store/placement.volume_site chooses (the volume rule sits
next to the server rule in model/placement.py; volumes claim no capacity). Each
create checks quotas (413), adds the intent as "creating" and enqueues its work in
the caller's transaction; the engine makes it in the site. Extend checks the
volume's state and the gigabytes quota; deletes check what depends on the volume or
snapshot (Cinder's 400s) and tombstone it (`repo.mark_deleting`). Updates, the
admin's status reset, bootable and metadata changes of a volume or snapshot are
written here too (`update`, `reset_status`, `set_bootable`, `set_metadata`,
`delete_metadata_item`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, NotFound
from isthmus.intent import Caller, image_members
from isthmus.store import quotas, repo
from isthmus.store.placement import volume_site
from isthmus.store.tables import Resource
from isthmus.store.work import enqueue

GIB = 1024**3
# statuses a volume may be deleted in without force (Cinder's)
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")


def source_snapshot(
    session: Session,
    caller: Caller,
    snapshot_id: str,
    size: int | None,
    zone: str | None,
) -> tuple[Resource, int]:
    """The snapshot a new volume is made from and the volume's size (the
    snapshot's unless a size is asked for): 404 unless visible, 400 unless it is
    available, the size is at least the snapshot's and the zone is its site."""
    snapshot = repo.get(session, "snapshot", snapshot_id, project_id=caller.visible_project())
    if snapshot.status != "available":
        raise BadRequest(
            "Invalid snapshot: Originating snapshot status must be one of 'available'"
            f" values (is {snapshot.status})."
        )
    snapshot_size = int(snapshot.spec.get("size", 1))
    size = snapshot_size if size is None else size
    if size < snapshot_size:
        raise BadRequest(
            f"Invalid input received: Volume size '{size}'GB cannot be smaller than the"
            f" snapshot size {snapshot_size}GB. They must be >= original snapshot size."
        )
    if zone and zone != snapshot.site:
        raise BadRequest(
            "Invalid input received: Volume must be in the same availability zone as"
            f" the snapshot ({snapshot.site})."
        )
    return snapshot, size


def source_volume(
    session: Session,
    caller: Caller,
    volume_id: str,
    size: int | None,
    zone: str | None,
) -> tuple[Resource, int]:
    """The volume a new one is cloned from and the clone's size (the source's
    unless a size is asked for): 404 unless visible, 400 unless it is available or
    in use, the size is at least the source's and the zone is its site."""
    source = repo.get(session, "volume", volume_id, project_id=caller.visible_project())
    if source.status not in ("available", "in-use"):
        raise BadRequest(
            "Invalid volume: Source volume status must be available or in-use to be"
            f" cloned (is {source.status})."
        )
    source_size = int(source.spec.get("size", 1))
    size = source_size if size is None else size
    if size < source_size:
        raise BadRequest(
            f"Invalid input received: Volume size '{size}'GB cannot be smaller than original"
            f" volume size {source_size}GB. They must be >= original volume size."
        )
    if zone and zone != source.site:
        raise BadRequest(
            "Invalid input received: Volume must be in the same availability zone as"
            f" the source volume ({source.site})."
        )
    return source, size


def source_image(session: Session, caller: Caller, image_id: str, size: int) -> Resource:
    """The image a new volume is made from: 400 unless the caller may use it
    (Cinder answers an unknown image with 400 too), it is active and fits in
    `size` GB (its data and its min_disk)."""
    image = session.get(Resource, image_id)
    if (
        image is None
        or image.kind != "image"
        or image.deleting
        or not image_members.usable_by(caller, image)
    ):
        raise BadRequest("Invalid image identifier or unable to access requested image.")
    if image.status != "active":
        raise BadRequest(f"Invalid input received: Image {image.id} is not active.")
    image_gb = -(-int(image.spec.get("size") or 0) // GIB)
    if image_gb > size:
        raise BadRequest(
            f"Invalid input received: Size of specified image {image_gb}GB is larger than"
            f" volume size {size}GB."
        )
    min_disk = int(image.spec.get("min_disk") or 0)
    if min_disk > size:
        raise BadRequest(
            f"Invalid input received: Volume size {size}GB cannot be smaller than the image"
            f" minDisk size {min_disk}GB."
        )
    return image


def image_metadata(image: Resource) -> dict[str, str]:
    """Cinder's volume_image_metadata of a volume made from `image`: the image's
    identity, formats and minimums and its custom properties, as strings."""
    spec = image.spec
    values: dict[str, Any] = {
        "image_id": image.id,
        "image_name": image.name,
        "checksum": spec.get("checksum"),
        "container_format": spec.get("container_format"),
        "disk_format": spec.get("disk_format"),
        "min_disk": spec.get("min_disk") or 0,
        "min_ram": spec.get("min_ram") or 0,
        "size": spec.get("size"),
        **(spec.get("properties") or {}),
    }
    return {key: str(value) for key, value in values.items() if value is not None}


def create_volume(
    session: Session,
    caller: Caller,
    *,
    name: str,
    size: int,
    volume_type: Resource,
    snapshot: Resource | None,
    zone: str | None,
    description: str | None,
    metadata: dict[str, Any],
    source: Resource | None = None,
    image: Resource | None = None,
) -> Resource:
    """A new volume: site chosen (that of its snapshot or source volume: the data
    is there), quotas checked, intent added, work enqueued. A volume made from an
    image is bootable and carries the image's metadata; the engine copies the
    image into the volume's site first (engine/reconcilers.py)."""
    origin = snapshot or source
    site = origin.site if origin is not None and origin.site else volume_site(session, zone)
    quotas.check(session, caller.project_id, {"volumes": 1, "gigabytes": size})
    extra: dict[str, Any] = {}
    if source is not None:
        extra["source_volid"] = source.id
        extra["bootable"] = bool(source.spec.get("bootable"))
        if source.spec.get("volume_image_metadata"):
            extra["volume_image_metadata"] = dict(source.spec["volume_image_metadata"])
    if snapshot is not None:
        parent = session.get(Resource, snapshot.parent_id) if snapshot.parent_id else None
        if parent is not None and parent.spec.get("bootable"):
            extra["bootable"] = True
            if parent.spec.get("volume_image_metadata"):
                extra["volume_image_metadata"] = dict(parent.spec["volume_image_metadata"])
    if image is not None:
        extra.update(image_id=image.id, bootable=True, volume_image_metadata=image_metadata(image))
    volume = repo.add(
        session,
        "volume",
        project_id=caller.project_id,
        name=name,
        status="creating",
        site=site,
        spec={
            "size": size,
            "volume_type": volume_type.name,
            "volume_type_id": volume_type.id,
            "snapshot_id": snapshot.id if snapshot is not None else None,
            "description": description,
            "metadata": metadata,
            "user_id": caller.user_id,
            **extra,
        },
    )
    enqueue(session, volume.id, "volume", site)
    return volume


def create_snapshot(
    session: Session,
    caller: Caller,
    volume: Resource,
    *,
    name: str,
    force: bool,
    description: str | None,
    metadata: dict[str, Any],
) -> Resource:
    """A new snapshot of `volume` in its site: 400 unless the volume is available
    (or in use, with `force`), quotas checked, intent added, work enqueued."""
    allowed = ("available", "in-use") if force else ("available",)
    if volume.status not in allowed:
        raise BadRequest(
            f"Invalid volume: Volume {volume.id} status must be available, but current"
            f" status is: {volume.status}."
            + (" Use force to snapshot an in-use volume." if volume.status == "in-use" else "")
        )
    quotas.check(session, caller.project_id, {"snapshots": 1})
    snapshot = repo.add(
        session,
        "snapshot",
        project_id=caller.project_id,
        name=name,
        status="creating",
        site=volume.site,
        parent_id=volume.id,
        spec={
            "size": int(volume.spec.get("size", 1)),
            "description": description,
            "metadata": metadata,
            "user_id": caller.user_id,
            "volume_type_id": volume.spec.get("volume_type_id"),
        },
    )
    if volume.site:
        enqueue(session, snapshot.id, "snapshot", volume.site)
    return snapshot


def extend_volume(
    session: Session, caller: Caller, volume: Resource, new_size: int, in_use: bool = False
) -> None:
    """Grow `volume` to `new_size` GB: 400 unless it is available (or, with
    `in_use`, Cinder's 3.42, attached) and grows, 413 above the gigabytes quota;
    the engine extends it in its site."""
    current = int(volume.spec.get("size", 0))
    allowed = ("available", "in-use") if in_use else ("available",)
    if volume.status not in allowed:
        raise BadRequest(
            f"Invalid volume: Volume status must be '{' or '.join(allowed)}' to extend,"
            f" currently {volume.status}."
        )
    if new_size <= current:
        raise BadRequest(
            "Invalid input received: New size for extend must be greater than current size."
            f" (current: {current}, extended: {new_size})."
        )
    quotas.check(session, volume.project_id or caller.project_id, {"gigabytes": new_size - current})
    repo.change(session, volume, status="extending", spec={"size": new_size})


def delete_volume(session: Session, volume: Resource, force: bool, cascade: bool) -> None:
    """Validate, then tombstone `volume` (and with `cascade` its snapshots)."""
    if volume.device_id or (not force and volume.status not in DELETABLE):
        raise BadRequest(
            "Invalid volume: Volume status must be available or error or error_restoring or"
            " error_extending or error_managing and must not be migrating, attached, belong to"
            f" a group, have snapshots or be disassociated from snapshots after volume transfer"
            f" (status {volume.status}{', attached' if volume.device_id else ''})."
        )
    snapshots = list(
        session.scalars(
            select(Resource).where(Resource.kind == "snapshot", Resource.parent_id == volume.id)
        )
    )
    if snapshots and not cascade:
        raise BadRequest(f"Invalid volume: Volume still has {len(snapshots)} dependent snapshots.")
    for snapshot in snapshots:
        if not snapshot.deleting and snapshot.status not in ("available", "error"):
            raise BadRequest(
                f"Invalid volume: Snapshot {snapshot.id} of the volume is {snapshot.status};"
                " it must be available or error to be deleted with the volume."
            )
    for snapshot in snapshots:
        if not snapshot.deleting:
            repo.mark_deleting(session, snapshot)
    repo.mark_deleting(session, volume)


def delete_snapshot(session: Session, snapshot: Resource, force: bool) -> None:
    """Validate, then tombstone `snapshot` (400 while volumes made from it live)."""
    if not force and snapshot.status not in ("available", "error"):
        raise BadRequest(
            "Invalid snapshot: Snapshot status must be available or error and must not be part"
            f" of a group (status {snapshot.status})."
        )
    dependent = session.scalar(
        select(Resource.id).where(
            Resource.kind == "volume",
            Resource.deleting.is_(False),
            Resource.spec["snapshot_id"].as_string() == snapshot.id,
        )
    )
    if dependent:
        raise BadRequest(
            f"Invalid snapshot: Snapshot {snapshot.id} has dependent volumes (e.g. {dependent});"
            " delete them first."
        )
    repo.mark_deleting(session, snapshot)


# -- changes a volume or snapshot shares ---------------------------------------------------------


def update(
    session: Session, resource: Resource, *, fields: dict[str, Any], spec: dict[str, Any]
) -> Resource:
    """Apply a checked update of a volume or snapshot (name, description, metadata)."""
    return repo.change(session, resource, spec=spec, **fields)


def reset_status(resource: Resource, status: str) -> None:
    """An admin says what a volume's or snapshot's status is: only the status
    changes (no new generation, nothing for the site to do)."""
    resource.status = status
    resource.updated_at = repo.utcnow()


def set_bootable(session: Session, volume: Resource, bootable: bool) -> None:
    repo.change(session, volume, spec={"bootable": bootable})


def set_metadata(
    session: Session, resource: Resource, values: dict[str, str], *, replace: bool
) -> dict[str, str]:
    """Merge `values` into a volume's or snapshot's metadata (or replace it);
    returns the new metadata."""
    merged = values if replace else {**(resource.spec.get("metadata") or {}), **values}
    repo.change(session, resource, spec={"metadata": merged})
    return merged


def delete_metadata_item(session: Session, resource: Resource, key: str) -> None:
    """Remove one metadata key (404 when it is not there)."""
    values = dict(resource.spec.get("metadata") or {})
    if key not in values:
        raise NotFound(f"Metadata item {key} was not found.")
    del values[key]
    repo.change(session, resource, spec={"metadata": values})


def set_image_metadata(
    session: Session, volume: Resource, values: dict[str, str]
) -> dict[str, str]:
    """Merge `values` into a volume's volume_image_metadata (Cinder's
    os-set_image_metadata); returns the new image metadata."""
    merged = {**(volume.spec.get("volume_image_metadata") or {}), **values}
    repo.change(session, volume, spec={"volume_image_metadata": merged})
    return merged


def unset_image_metadata(session: Session, volume: Resource, key: str) -> None:
    """Remove one key of a volume's image metadata (404 when it is not there)."""
    values = dict(volume.spec.get("volume_image_metadata") or {})
    if key not in values:
        raise NotFound(f"Glance metadata for volume {volume.id} with key {key} cannot be found.")
    del values[key]
    repo.change(session, volume, spec={"volume_image_metadata": values})
