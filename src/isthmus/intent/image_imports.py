"""Glance's interoperable image import, where each enabled site is a store.

A store is a site (its id is the site's name); the default store is the first
enabled site in name order (`stores`). An image's data stays in Isthmus' own
image directory; "importing it into a store" is asking the engine to keep a copy
of it in that site, as it does when a server there boots from it: the sites are
kept in `spec["stores"]` (engine/reconcilers._plan_image keeps the image present
in each of them) and enqueued in the same transaction, and the copy shows its
progress on its work row (engine/progress.py).

What a store of an image is, read from the store at read time (`store_states`):
- present (`stores`): the site holds a finished copy (a binding whose site reports
  the image active, no error);
- importing (`os_glance_importing_to_stores`): asked for, not there yet, work queued
  or under way (with its progress);
- failed (`os_glance_failed_import`): asked for, not there, and no work left: the
  copy failed for good.

`import_image` makes Glance's checks in Glance's order: the status the method needs
(409), formats set (409), who may (copy-image is an admin's, the others the
owner's: 403), no import already under way (409), the stores (`all_stores` with
`stores`: 400; an unknown store: 409; copy-image into a store that has the image:
400, or nothing to do with `all_stores`). glance-direct then makes the staged data
the image's (`active`, with its size and hashes) before the copies start.
`all_stores_must_succeed` is accepted; a failed copy never takes the image's data
back (it is in Isthmus, not in the site): the site is listed as failed.

`remove_from_store` (DELETE /v2/stores/{store}/{image}, an admin's) takes a site off
the image's stores; its copy leaves the site once no server there boots from it.
Glance's refusal to remove the last store does not apply: the data stays in Isthmus.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, Forbidden, NotFound
from isthmus.intent import Caller
from isthmus.store import repo
from isthmus.store.tables import Binding, Resource, Site, Work
from isthmus.store.work import CopyState, state_of

IMPORT_METHODS = ("glance-direct", "copy-image")


@dataclass(frozen=True)
class StoreState:
    """Where an image's data is, as Glance shows it per store."""

    present: list[str] = field(default_factory=list)
    importing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    copies: dict[str, CopyState] = field(default_factory=dict)  # importing, part way


def stores(session: Session) -> list[str]:
    """The stores (enabled sites), the default one first."""
    return sorted(session.scalars(select(Site.name).where(Site.enabled.is_(True))))


def store_states(session: Session, images: Iterable[Resource]) -> dict[str, StoreState]:
    """`StoreState` of each image, in two queries."""
    wanted = {image.id: list(image.spec.get("stores") or []) for image in images}
    if not wanted:
        return {}
    present: dict[str, set[str]] = {image_id: set() for image_id in wanted}
    for binding in session.scalars(
        select(Binding).where(Binding.kind == "image", Binding.resource_id.in_(wanted))
    ):
        if binding.observed_status == "active" and not binding.last_error:
            present[binding.resource_id].add(binding.site)
    queued: dict[str, dict[str, CopyState | None]] = {image_id: {} for image_id in wanted}
    asked = [image_id for image_id, sites in wanted.items() if sites]
    if asked:
        for row in session.scalars(select(Work).where(Work.resource_id.in_(asked))):
            queued[row.resource_id][row.site] = state_of(row)
    states = {}
    for image_id, sites in wanted.items():
        here = present[image_id]
        importing = [s for s in sites if s not in here and s in queued[image_id]]
        states[image_id] = StoreState(
            present=sorted(here),
            importing=importing,
            failed=[s for s in sites if s not in here and s not in importing],
            copies={s: c for s in importing if (c := queued[image_id][s]) is not None},
        )
    return states


def _targets(session: Session, stores_asked: list[str] | None, all_stores: bool) -> list[str]:
    known = stores(session)
    if all_stores:
        if stores_asked is not None:
            raise BadRequest(
                "All_stores parameter can't be used with x-image-meta-store header or stores"
                " parameter"
            )
        return known
    if not stores_asked:
        return known[:1]
    for store in stores_asked:
        if store not in known:
            raise Conflict(f"Unknown scheme '{store}' found in URI")
    return list(dict.fromkeys(stores_asked))


def import_image(
    session: Session,
    caller: Caller,
    image: Resource,
    method: str,
    stores_asked: list[str] | None,
    all_stores: bool,
) -> list[str]:
    """Start importing `image` into stores; returns the sites asked to copy it."""
    if image.status == "active" and method != "copy-image":
        raise Conflict("Image with status active cannot be target for import")
    if image.status != "active" and method == "copy-image":
        raise Conflict("Only images with status active can be targeted for copying")
    if method == "glance-direct" and (image.status != "uploading" or not image.spec.get("staged")):
        raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
    if not image.spec.get("container_format"):
        raise Conflict("'container_format' needs to be set before import")
    if not image.spec.get("disk_format"):
        raise Conflict("'disk_format' needs to be set before import")
    if method == "copy-image" and not caller.is_admin:
        raise Forbidden("You are not authorized to complete copy_image action.")
    if method != "copy-image" and not caller.is_admin and image.project_id != caller.project_id:
        raise Forbidden(f"You are not permitted to modify image {image.id}.")
    state = store_states(session, [image])[image.id]
    if state.importing:
        raise Conflict(
            f"New operation on image '{image.id}' is not permitted as prior operation is"
            " still in progress"
        )
    targets = _targets(session, stores_asked, all_stores)
    if method == "copy-image":
        if all_stores:
            targets = [s for s in targets if s not in state.present]
        else:
            for store in targets:
                if store in state.present:
                    raise BadRequest(f"Image is already present at store '{store}'")
    if not targets:
        return []
    wanted = list(dict.fromkeys([*(image.spec.get("stores") or []), *targets]))
    fields: dict[str, object] = {}
    spec: dict[str, object] = {"stores": wanted}
    if method == "glance-direct":
        staged = dict(image.spec["staged"])
        virtual = staged["size"] if image.spec.get("disk_format") == "raw" else None
        spec.update(staged, virtual_size=virtual, staged=None)
        fields["status"] = "active"
    repo.change(session, image, sites=targets, spec=spec, **fields)
    return targets


def check_store(session: Session, store: str) -> None:
    """A store named in a URL exists (409, Glance checks it before the image)."""
    if store not in stores(session):
        raise Conflict(f"The selected store {store} is not available on this node.")


def remove_from_store(session: Session, caller: Caller, image: Resource, store: str) -> None:
    """Glance's delete-from-store, once `check_store` passed: 403 not an admin, 409
    not active, 404 not in that store."""
    if not caller.is_admin:
        raise Forbidden("You are not authorized to complete delete_image_location action.")
    if image.status != "active":
        raise Conflict(
            "It's not allowed to remove image data from store if image status is not 'active'"
        )
    wanted = list(image.spec.get("stores") or [])
    if store not in wanted and store not in store_states(session, [image])[image.id].present:
        raise NotFound(f"Image {image.id} is not stored in store {store}.")
    repo.change(session, image, sites=[store], spec={"stores": [s for s in wanted if s != store]})
