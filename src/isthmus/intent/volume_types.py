"""Cinder volume type writes below the API (api/volume/extras.py parses the
bodies, checks the admin policy, looks the type up and renders the answers).

A volume type is catalog intent (kind "volume_type", no project, no site):
nothing is enqueued; a volume names its type in its spec (`volume_type_id`). The
default type, `DEFAULT_VOLUME_TYPE`, is seeded by the service bootstrap. What
needs the store is decided here once: a type's name is free (409), the default
type is neither renamed nor deleted (400), a type a volume or snapshot uses is
not deleted (400), an extra spec removed must be there (404).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.store import repo
from isthmus.store.tables import Resource

DEFAULT_VOLUME_TYPE = "__DEFAULT__"  # Cinder's default volume type (seeded by isthmus/service.py)


def find_type(session: Session, ref: str) -> Resource | None:
    """A volume type by id or name (None when there is none)."""
    found = session.get(Resource, ref)
    if found is not None and found.kind == "volume_type" and not found.deleting:
        return found
    return session.scalar(
        select(Resource).where(
            Resource.kind == "volume_type", Resource.name == ref, Resource.deleting.is_(False)
        )
    )


def _name_free(session: Session, name: str) -> None:
    if find_type(session, name) is not None:
        raise Conflict(f"Volume Type {name} already exists.")


def add_type(session: Session, name: str, spec: dict[str, Any]) -> Resource:
    """A new volume type, unless one has that name (or id)."""
    _name_free(session, name)
    return repo.add(
        session, "volume_type", project_id=None, name=name, status="available", spec=spec
    )


def check_rename(session: Session, volume_type: Resource, name: str) -> None:
    """400 for renaming the default type, 409 when another type has `name`."""
    if name != volume_type.name:
        if volume_type.name == DEFAULT_VOLUME_TYPE:
            raise BadRequest("The default volume type cannot be renamed.")
        _name_free(session, name)


def update_type(
    session: Session, volume_type: Resource, *, fields: dict[str, Any], spec: dict[str, Any]
) -> None:
    repo.change(session, volume_type, spec=spec, **fields)


def delete_type(session: Session, volume_type: Resource) -> None:
    """Delete a type no volume or snapshot uses; never the default one."""
    if volume_type.name == DEFAULT_VOLUME_TYPE:
        raise BadRequest("Default volume type can not be deleted.")
    in_use = session.scalar(
        select(Resource.id).where(
            Resource.kind.in_(("volume", "snapshot")),
            Resource.spec["volume_type_id"].as_string() == volume_type.id,
        )
    )
    if in_use:
        raise BadRequest(f"Target volume type is still in use (by {in_use}).")
    repo.mark_deleting(session, volume_type)


def merge_extra_specs(
    session: Session, volume_type: Resource, values: dict[str, str]
) -> dict[str, str]:
    """Add or overwrite extra specs; returns them all."""
    merged = {**(volume_type.spec.get("extra_specs") or {}), **values}
    repo.change(session, volume_type, spec={"extra_specs": merged})
    return merged


def delete_extra_spec(session: Session, volume_type: Resource, key: str, type_ref: str) -> None:
    """Remove one extra spec (404 naming the type as the caller did, `type_ref`)."""
    values = dict(volume_type.spec.get("extra_specs") or {})
    if key not in values:
        raise NotFound(f"Volume Type {type_ref} has no extra specs with key {key}.")
    del values[key]
    repo.change(session, volume_type, spec={"extra_specs": values})
