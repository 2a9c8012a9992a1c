"""Glance image writes below the API (api/image/images.py parses the bodies and
JSON patches, decides who may change an image and renders the answers).

An image is intent with no site: nothing is enqueued at create; the engine copies
its data to a site when a server there boots from it. Its data's life is decided
here once: `begin_upload` (only from queued, 409; disk and container formats set
first, 400) makes it `saving`; `finish_upload` moves the received file into place
and makes it `active` with its size and hashes (409 when the image was deleted or
changed meanwhile); `abort_upload` puts a failed upload back to `queued`.
Staging (interoperable import, intent/image_imports.py takes it on from there):
`begin_stage` (only from queued, 409) makes it `uploading`; `finish_stage` keeps the
received file as the image's data and its size and hashes under `spec["staged"]`
(still `uploading`: the import makes it `active`); `abort_stage` puts a failed
staging back to `queued`. Also: a new image's id is free (409), a protected image
is not deleted (403), a tag removed must be there (404), only an active image is
deactivated and only a deactivated one reactivated (403, as Glance; doing it twice
is a no-op).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, Forbidden, NotFound
from isthmus.store import repo
from isthmus.store.tables import Resource


def add_image(
    session: Session,
    *,
    image_id: str | None,
    owner: str | None,
    name: str,
    spec: dict[str, Any],
) -> Resource:
    """A new `queued` image without data (409 when `image_id` is taken)."""
    if image_id and session.get(Resource, image_id) is not None:
        raise Conflict(f"Image with identifier {image_id} already exists!")
    return repo.add(
        session,
        "image",
        project_id=owner,
        name=name,
        status="queued",
        spec={
            **spec,
            "size": None,
            "checksum": None,
            "os_hash_algo": None,
            "os_hash_value": None,
            "data_path": None,
        },
        resource_id=image_id,
    )


def change(session: Session, image: Resource, **fields: Any) -> None:
    """Apply a checked change (name, spec) to an image."""
    repo.change(session, image, **fields)


def delete_image(session: Session, image: Resource) -> None:
    if image.spec.get("protected"):
        raise Forbidden(f"Image {image.id} is protected and cannot be deleted.")
    repo.mark_deleting(session, image)


def delete_tag(session: Session, image: Resource, tag: str) -> None:
    tags = list(image.spec.get("tags") or [])
    if tag not in tags:
        raise NotFound(f"Tag {tag} not found on image {image.id}.")
    repo.change(session, image, spec={"tags": [t for t in tags if t != tag]})


def begin_upload(session: Session, image: Resource) -> None:
    if image.status != "queued":
        raise Conflict(f"Image status transition from {image.status} to saving is not allowed")
    if not image.spec.get("disk_format") or not image.spec.get("container_format"):
        raise BadRequest(
            "Properties disk_format, container_format must be set prior to saving data."
        )
    repo.change(session, image, status="saving")


def finish_upload(
    session: Session, image_id: str, part: Path, target: Path, stats: dict[str, Any]
) -> None:
    """The data received in `part` becomes the image's (`target`)."""
    image = session.get(Resource, image_id)
    if image is None or image.deleting or image.status != "saving":
        raise Conflict(f"Image {image_id} was deleted or changed during the upload.")
    part.replace(target)
    virtual_size = stats["size"] if image.spec.get("disk_format") == "raw" else None
    repo.change(
        session,
        image,
        status="active",
        spec={**stats, "virtual_size": virtual_size, "data_path": str(target)},
    )


def abort_upload(session: Session, image_id: str) -> None:
    image = session.get(Resource, image_id)
    if image is not None and not image.deleting and image.status == "saving":
        repo.change(session, image, status="queued")


def begin_stage(session: Session, image: Resource) -> None:
    if image.status != "queued":
        raise Conflict(f"Image status transition from {image.status} to uploading is not allowed")
    repo.change(session, image, status="uploading")


def finish_stage(
    session: Session, image_id: str, part: Path, target: Path, stats: dict[str, Any]
) -> None:
    """The data received in `part` is staged as the image's (`target`)."""
    image = session.get(Resource, image_id)
    if image is None or image.deleting or image.status != "uploading" or image.spec.get("staged"):
        raise Conflict(f"Image {image_id} was deleted or changed during the upload.")
    part.replace(target)
    repo.change(session, image, spec={"staged": stats, "data_path": str(target)})


def abort_stage(session: Session, image_id: str) -> None:
    image = session.get(Resource, image_id)
    if (
        image is not None
        and not image.deleting
        and image.status == "uploading"
        and not image.spec.get("staged")
    ):
        repo.change(session, image, status="queued")


def deactivate(session: Session, image: Resource) -> None:
    if image.status == "deactivated":
        return
    if image.status != "active":
        raise Forbidden(f"Not allowed to deactivate image in status '{image.status}'")
    repo.change(session, image, status="deactivated")


def reactivate(session: Session, image: Resource) -> None:
    if image.status == "active":
        return
    if image.status != "deactivated":
        raise Forbidden(f"Not allowed to reactivate image in status '{image.status}'")
    repo.change(session, image, status="active")
