"""Nova flavor writes below the API (api/compute/extras.py parses the bodies,
checks the admin policy, looks the flavor up and renders the answers).

A flavor is catalog intent (kind "flavor", no project, no site): nothing is
enqueued; a server copies its flavor at boot (intent/servers.flavor_copy). What
needs the store is decided here once: a new flavor's id and name are free (409),
an extra spec removed must be there (404), tenant access only on a private flavor
(409) and neither added twice (409) nor removed when absent (404).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import Conflict, NotFound
from isthmus.store import repo
from isthmus.store.tables import Resource


def add_flavor(session: Session, flavor_id: str, name: str, spec: dict[str, Any]) -> Resource:
    """A new flavor, unless its id or (among live flavors) its name is taken."""
    if session.get(Resource, flavor_id) is not None:
        raise Conflict(f"Flavor with ID {flavor_id} already exists.")
    same_name = session.scalar(
        select(Resource.id).where(
            Resource.kind == "flavor", Resource.name == name, Resource.deleting.is_(False)
        )
    )
    if same_name is not None:
        raise Conflict(f"Flavor with name {name} already exists.")
    return repo.add(
        session,
        "flavor",
        project_id=None,
        name=name,
        status="ACTIVE",
        resource_id=flavor_id,
        spec=spec,
    )


def delete_flavor(session: Session, flavor: Resource) -> None:
    repo.mark_deleting(session, flavor)


def update_extra_specs(session: Session, flavor: Resource, update: dict[str, str | None]) -> None:
    """Set the extra specs `update` gives a value and remove those it gives None
    (404 when such a key is not there)."""
    specs = dict(flavor.spec.get("extra_specs") or {})
    for key, value in update.items():
        if value is None:
            if key not in specs:
                raise NotFound(f"Flavor {flavor.id} has no extra specs with key {key}.")
            specs.pop(key)
        else:
            specs[key] = value
    repo.change(session, flavor, spec={"extra_specs": specs})


def change_access(session: Session, flavor: Resource, tenant: str, *, add: bool) -> None:
    """Give `tenant` access to a private flavor (`add`) or take it away."""
    if flavor.spec.get("is_public", True):
        raise Conflict("Can not add access to a public flavor.")
    projects = list(flavor.spec.get("projects") or [])
    if add:
        if tenant in projects:
            raise Conflict(
                f"Flavor access already exists for flavor {flavor.id} and project {tenant}"
                " combination."
            )
        projects.append(tenant)
    else:
        if tenant not in projects:
            raise NotFound(f"Flavor access not found for {flavor.id} / {tenant} combination.")
        projects.remove(tenant)
    repo.change(session, flavor, spec={"projects": projects})


def set_description(session: Session, flavor: Resource, description: str | None) -> None:
    """A flavor's description (Nova's flavor update, 2.55: the one field it changes)."""
    repo.change(session, flavor, spec={"description": description})
