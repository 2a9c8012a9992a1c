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
from isthmus.intent import Caller
from isthmus.store import quotas, repo
from isthmus.store.placement import volume_site
from isthmus.store.tables import Resource
from isthmus.store.work import enqueue

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
) -> Resource:
    """A new volume: site chosen, quotas checked, intent added, work enqueued."""
    site = snapshot.site if snapshot is not None and snapshot.site else volume_site(session, zone)
    quotas.check(session, caller.project_id, {"volumes": 1, "gigabytes": size})
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


def extend_volume(session: Session, caller: Caller, volume: Resource, new_size: int) -> None:
    """Grow `volume` to `new_size` GB: 400 unless it is available and grows, 413
    above the gigabytes quota; the engine extends it in its site."""
    current = int(volume.spec.get("size", 0))
    if volume.status != "available":
        raise BadRequest(
            f"Invalid volume: Volume status must be 'available' to extend, currently"
            f" {volume.status}."
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
