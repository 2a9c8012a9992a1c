"""Glance image members: sharing an image between projects.

An image's members are kept on its intent, `spec["members"]`: a list of
`{"member_id", "status", "created_at", "updated_at"}`, in the order they were
added. The Compute create path reads the same list (a member project may boot
from a shared image whatever its membership status, as Glance lets a member use
an image by id); only the functions here write it, under a lock on the image row
so two member changes cannot lose one another.

Glance's rules, decided here once:
- only a `shared` image has members (403 otherwise, for every member call);
- the owner (or an admin) adds and removes members; a member starts `pending`,
  is there once (409), and an image has at most `MAX_MEMBERS` (413);
- only the member itself (or an admin) sets its status: accepted, rejected or
  pending (400 for anything else, 403 for the owner);
- an image is listed for a member project when its membership has the status the
  listing asks for (`listed_for`, default accepted; `all` any);
- who sees which membership: the owner and admins all of them, a member its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, Forbidden, NotFound, OverQuota
from isthmus.intent import Caller
from isthmus.store import repo
from isthmus.store.tables import Resource

MEMBER_STATUSES = ("accepted", "rejected", "pending")
LISTING_STATUSES = (*MEMBER_STATUSES, "all")
MAX_MEMBERS = 128


def members_of(image: Resource) -> list[dict[str, Any]]:
    return [dict(m) for m in image.spec.get("members") or [] if isinstance(m, dict)]


def membership(image: Resource, project_id: str) -> dict[str, Any] | None:
    """The membership of `project_id` in a shared image, or None."""
    if image.spec.get("visibility") != "shared":
        return None
    for member in members_of(image):
        if member.get("member_id") == project_id:
            return member
    return None


def listed_for(image: Resource, project_id: str, member_status: str) -> bool:
    """A shared image appears in `project_id`'s image list for its membership."""
    member = membership(image, project_id)
    return member is not None and member_status in ("all", member["status"])


def usable_by(caller: Caller, image: Resource) -> bool:
    """Whether `caller` may use `image` by id (boot a server or make a volume from
    it): an admin, the owner, a public or community image, or a shared one the
    caller's project is a member of (whatever its membership status, as Glance lets
    a member use an image by id)."""
    if caller.is_admin or image.project_id in (None, caller.project_id):
        return True
    visibility = image.spec.get("visibility", "private")
    if visibility in ("public", "community"):
        return True
    members = image.spec.get("members") or []
    return visibility == "shared" and any(
        (m.get("member_id") if isinstance(m, dict) else m) == caller.project_id for m in members
    )


def check_member_status(value: Any) -> str:
    """A `member_status` list filter value (400 otherwise)."""
    if value not in LISTING_STATUSES:
        raise BadRequest(f"Invalid status value: {value}")
    return str(value)


def _require_shared(image: Resource) -> None:
    if image.spec.get("visibility") != "shared":
        raise Forbidden("Only shared images have members.")


def _owner_or_admin(caller: Caller, image: Resource) -> None:
    if not caller.is_admin and image.project_id != caller.project_id:
        raise Forbidden(f"You are not permitted to modify the members of image {image.id}.")


def _locked(session: Session, image: Resource) -> Resource:
    """The image row again, locked until the transaction ends (PostgreSQL)."""
    session.refresh(image, with_for_update=True)
    return image


def visible_members(caller: Caller, image: Resource) -> list[dict[str, Any]]:
    """The memberships the caller may see (403 when the image is not shared)."""
    _require_shared(image)
    members = members_of(image)
    if caller.is_admin or image.project_id == caller.project_id:
        return members
    return [m for m in members if m.get("member_id") == caller.project_id]


def get_member(caller: Caller, image: Resource, member_id: str) -> dict[str, Any]:
    for member in visible_members(caller, image):
        if member["member_id"] == member_id:
            return member
    raise NotFound(f"{member_id} is not a member of image {image.id}.")


def add_member(session: Session, caller: Caller, image: Resource, member_id: Any) -> dict[str, Any]:
    """Share `image` with project `member_id` (status pending)."""
    if not isinstance(member_id, str) or not member_id or len(member_id) > 255:
        raise BadRequest("Member to be added not specified: 'member' must be a project id.")
    _require_shared(image)
    _owner_or_admin(caller, image)
    image = _locked(session, image)
    members = members_of(image)
    if any(m["member_id"] == member_id for m in members):
        raise Conflict(f"Member {member_id} already exists on image {image.id}.")
    if len(members) >= MAX_MEMBERS:
        raise OverQuota(
            "The limit has been exceeded on the number of allowed image members for this image."
            f" Attempted: {len(members) + 1}, Maximum: {MAX_MEMBERS}"
        )
    now = repo.isoformat(repo.utcnow())
    member = {"member_id": member_id, "status": "pending", "created_at": now, "updated_at": now}
    repo.change(session, image, spec={"members": [*members, member]})
    return member


def set_status(
    session: Session, caller: Caller, image: Resource, member_id: str, status: Any
) -> dict[str, Any]:
    """The member itself accepts, rejects or puts back to pending."""
    if status not in MEMBER_STATUSES:
        raise BadRequest(f"Invalid status: {status}. Valid values: {', '.join(MEMBER_STATUSES)}.")
    get_member(caller, image, member_id)  # 403 unless shared, 404 unless seen
    if not caller.is_admin and caller.project_id != member_id:
        raise Forbidden("You are not permitted to modify 'status' on this image member.")
    image = _locked(session, image)
    members = members_of(image)
    for member in members:
        if member["member_id"] == member_id:
            if member["status"] != status:
                member.update(status=status, updated_at=repo.isoformat(repo.utcnow()))
                repo.change(session, image, spec={"members": members})
            return member
    raise NotFound(f"{member_id} is not a member of image {image.id}.")


def remove_member(session: Session, caller: Caller, image: Resource, member_id: str) -> None:
    """The owner (or an admin) stops sharing the image with `member_id`."""
    get_member(caller, image, member_id)
    _owner_or_admin(caller, image)
    image = _locked(session, image)
    members = members_of(image)
    kept = [m for m in members if m["member_id"] != member_id]
    if len(kept) == len(members):
        raise NotFound(f"{member_id} is not a member of image {image.id}.")
    repo.change(session, image, spec={"members": kept})
