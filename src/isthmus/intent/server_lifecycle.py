"""Nova's server actions beyond start/stop/reboot, below the Compute API
(api/compute/actions.py parses each body, looks the server up and answers):
pause/unpause, suspend/resume, rescue/unrescue, lock/unlock, rebuild, resize with confirm and
revert, shelve/shelve-offload/unshelve, force-delete/restore, and server tags.

Each action checks, in Nova's order, the server's lock (`check_lock`: 409
"Instance X is locked" for a non-admin) and its vm_state/task_state
(intent/server_actions.check_state, Nova's words), then changes the server's
intent with `repo.change`, which enqueues it in its site. What a site is asked to
do is in the server's spec (model/specs.ServerSpec): `run_state` (active, paused,
suspended) and `power_on`, `rebuild_count`, the flavor's size; the state shown
until the site has done it is intent/server_actions.server_state's.

- shelve offloads at once (Nova's default `shelved_offload_time = 0`): the server
  leaves its site (its capacity is released, `site` becomes None and
  `shelved_site` remembers where it was) but keeps its ports and addresses;
  unshelve places it again (in its old zone, or with 2.77 in the zone asked for:
  then its ports move with it). Not kept: the root disk's changes (Nova keeps a
  snapshot image; Isthmus boots the server's image again).
- resize claims the new flavor's size in the server's site next to the old one
  (placement decides it fits) until confirmResize releases the old or
  revertResize the new; the site is asked for the new size, then the old again.
- createImage: a private image of the server's root disk, made by the server's
  site (model/specs.ImageSpec.snapshot_of) and active once its bytes are in
  Isthmus' image store.
- soft delete is not configured in Isthmus (no `reclaim_instance_interval`):
  forceDelete deletes as delete does, restore is 409 as Nova answers then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, Forbidden, NotFound
from isthmus.intent import Caller
from isthmus.intent.images import add_image
from isthmus.intent.server_actions import check_state, state_of
from isthmus.intent.servers import delete_server, flavor_copy, flavor_need
from isthmus.model.placement import pinned_site
from isthmus.store import placement, repo
from isthmus.store.tables import Resource
from isthmus.store.work import enqueue

MAX_TAGS = 50  # Nova's instance tag limit


def check_lock(server: Resource, caller: Caller) -> None:
    """409 when the server is locked and the caller is not an admin (Nova's
    check_instance_lock)."""
    if server.spec.get("locked") and not caller.is_admin:
        raise Conflict(f"Instance {server.id} is locked")


def _check(
    session: Session,
    caller: Caller,
    server: Resource,
    action: str,
    vm_states: tuple[str, ...],
    task_states: tuple[str | None, ...] = (None,),
    *,
    lock: bool = True,
) -> None:
    if lock:
        check_lock(server, caller)
    check_state(server, state_of(session, server), action, vm_states, task_states)


# -- pause / suspend ---------------------------------------------------------------------------


def pause(session: Session, caller: Caller, server: Resource) -> None:
    _check(session, caller, server, "pause", ("active",))
    repo.change(session, server, spec={"run_state": "paused"})


def unpause(session: Session, caller: Caller, server: Resource) -> None:
    _check(session, caller, server, "unpause", ("paused",))
    repo.change(session, server, spec={"run_state": "active"})


def suspend(session: Session, caller: Caller, server: Resource) -> None:
    _check(session, caller, server, "suspend", ("active",))
    repo.change(session, server, spec={"run_state": "suspended"})


def resume(session: Session, caller: Caller, server: Resource) -> None:
    _check(session, caller, server, "resume", ("suspended",))
    repo.change(session, server, spec={"run_state": "active"})


# -- rescue ----------------------------------------------------------------------------------


def rescue(session: Session, caller: Caller, server: Resource) -> None:
    """Rescue mode (RESCUE, vm_state rescued) from active, stopped or error; the
    site boots it into rescue (spec run_state `rescued`, powered on)."""
    _check(session, caller, server, "rescue", ("active", "stopped", "error"))
    repo.change(session, server, spec={"run_state": "rescued", "power_on": True})


def unrescue(session: Session, caller: Caller, server: Resource) -> None:
    _check(session, caller, server, "unrescue", ("rescued",))
    repo.change(session, server, spec={"run_state": "active"})


# -- lock ------------------------------------------------------------------------------------------


def lock(session: Session, caller: Caller, server: Resource, reason: str | None) -> None:
    """Lock the server (again: the reason is replaced). Who locked it is kept as
    Nova keeps it: `owner` when the caller is of the server's project, else `admin`."""
    locked_by = "owner" if caller.project_id == server.project_id else "admin"
    repo.change(
        session,
        server,
        spec={"locked": True, "locked_reason": reason, "locked_by": locked_by},
    )


def unlock(session: Session, caller: Caller, server: Resource) -> None:
    """Unlock; a lock set by an admin of another project is lifted only by an
    admin (Nova's unlock_override policy: 403)."""
    expected = "owner" if caller.project_id == server.project_id else "admin"
    if server.spec.get("locked_by", expected) != expected and not caller.is_admin:
        raise Forbidden(
            "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override"
            " to be performed."
        )
    if server.spec.get("locked"):
        repo.change(
            session, server, spec={"locked": False, "locked_reason": None, "locked_by": None}
        )


# -- rebuild -----------------------------------------------------------------------------------


def rebuild(
    session: Session,
    caller: Caller,
    server: Resource,
    image: Resource,
    *,
    fields: dict[str, Any],
    spec: dict[str, Any],
) -> None:
    """Rebuild from `image` (same id, ports and addresses): the site makes the
    server again (spec `rebuild_count`); `fields`/`spec` also change (name,
    metadata, access IPs, ...). Allowed from active, stopped and error."""
    _check(session, caller, server, "rebuild", ("active", "stopped", "error"))
    count = int(server.spec.get("rebuild_count", 0)) + 1
    change = {
        **spec,
        "image_id": image.id,
        "rebuild_count": count,
        "rebuild_generation": server.generation + 1,
    }
    if server.status == "ERROR":
        fields = {**fields, "status": "REBUILD"}
    repo.change(session, server, spec=change, **fields)


# -- resize ------------------------------------------------------------------------------------


def resize(session: Session, caller: Caller, server: Resource, flavor: Resource) -> None:
    """Resize to `flavor` in the server's site: the new size is claimed next to the
    old (400 when the site has no room, as Nova's NoValidHost for a resize) and
    the server shows RESIZE, then VERIFY_RESIZE once its site applied it."""
    _check(session, caller, server, "resize", ("active", "stopped"))
    old = dict(server.spec.get("flavor") or {})
    if old.get("id") == flavor.id:
        raise BadRequest("When resizing, instances must change flavor!")
    new_need = flavor_need(flavor)
    site = server.site or ""
    candidate = next((c for c in placement.candidates(session, [site])), None)
    need = {**new_need, "servers": 0}
    if candidate is None or not candidate.fits(need):
        raise BadRequest(
            f"No valid host was found. Site {site} has no room for flavor {flavor.name}."
        )
    placement.claim(session, site, need)
    old_size = {k: server.spec.get(k) for k in ("vcpus", "ram_mb", "disk_gb")}
    record = {
        "state": "verify",
        "generation": server.generation + 1,
        "old_flavor": old,
        "old_size": old_size,
    }
    repo.change(session, server, spec={**new_need, "flavor": flavor_copy(flavor), "resize": record})


def _resize_record(session: Session, caller: Caller, server: Resource, action: str) -> dict:
    _check(session, caller, server, action, ("resized",), lock=action != "confirmResize")
    return dict(server.spec.get("resize") or {})


def confirm_resize(session: Session, caller: Caller, server: Resource) -> None:
    """Keep the new flavor: the old size's claim is released."""
    record = _resize_record(session, caller, server, "confirmResize")
    if server.site:
        placement.release(session, server.site, {**record.get("old_size", {}), "servers": 0})
    repo.change(session, server, spec={"resize": None})


def revert_resize(session: Session, caller: Caller, server: Resource) -> None:
    """Back to the old flavor: the site is asked for the old size again, and the
    new size's claim is released."""
    record = _resize_record(session, caller, server, "revertResize")
    new_size = {k: int(server.spec.get(k) or 0) for k in ("vcpus", "ram_mb", "disk_gb")}
    if server.site:
        placement.release(session, server.site, {**new_size, "servers": 0})
    reverting = {"state": "reverting", "reverting": True, "generation": server.generation + 1}
    repo.change(
        session,
        server,
        spec={
            **record.get("old_size", {}),
            "flavor": record.get("old_flavor"),
            "resize": reverting,
        },
    )


def release_resize(session: Session, server: Resource) -> None:
    """A server deleted while resized: the second claim (the old size's) goes too."""
    record = server.spec.get("resize") or {}
    if record.get("state") == "verify" and server.site:
        placement.release(session, server.site, {**record.get("old_size", {}), "servers": 0})


# -- shelve ------------------------------------------------------------------------------------


def shelve(session: Session, caller: Caller, server: Resource) -> None:
    """Shelve and offload at once: the server leaves its site (capacity released),
    keeping its ports and addresses in intent."""
    _check(session, caller, server, "shelve", ("active", "stopped", "paused", "suspended"))
    site = server.site
    if site:
        placement.release(session, site, placement.server_need(server.spec))
    repo.change(
        session,
        server,
        site=None,
        spec={"shelved": True, "shelved_site": site, "power_on": True, "run_state": "active"},
    )


def shelve_offload(session: Session, caller: Caller, server: Resource) -> None:
    """Nova allows it from vm_state shelved only; a shelve here offloads at once,
    so this is a 409 unless the server is still being offloaded."""
    _check(session, caller, server, "shelveOffload", ("shelved",), (None, "shelving_offloading"))


def unshelve(
    session: Session, caller: Caller, server: Resource, availability_zone: str | None
) -> None:
    """Place the server again: in `availability_zone` (2.77) or where it was; its
    ports move with it when the site differs."""
    # also while its site is still letting it go (the server body already shows it
    # offloaded): the engine then keeps or makes it there, whichever is due
    _check(
        session,
        caller,
        server,
        "unshelve",
        ("shelved", "shelved_offloaded"),
        (None, "shelving_offloading"),
    )
    old_site = server.spec.get("shelved_site")
    zone = availability_zone or old_site
    if availability_zone:
        pinned_site(placement.candidates(session), availability_zone)
    site = placement.place(session, placement.server_need(server.spec), zone)
    if site != old_site:
        for port in _ports(session, server):
            repo.change(
                session, port, sites=[site], site=site, spec={"device_owner": f"compute:{site}"}
            )
    repo.change(
        session,
        server,
        sites=[site],
        site=site,
        status="SHELVED_OFFLOADED",
        spec={"shelved": False, "shelved_site": None},
    )


def _ports(session: Session, server: Resource) -> list[Resource]:
    return list(
        session.scalars(
            select(Resource).where(
                Resource.kind == "port",
                Resource.device_id == server.id,
                Resource.deleting.is_(False),
            )
        )
    )


# -- createImage ---------------------------------------------------------------------------


def create_image(
    session: Session,
    caller: Caller,
    server: Resource,
    *,
    name: str,
    metadata: dict[str, str],
    images_dir: Path,
) -> Resource:
    """An image of the server's root disk (Nova's createImage): a private `saving`
    image of the server's project, with the boot image's formats and minimums and
    Nova's snapshot properties; the server's site makes it (its bytes written to
    `images_dir`, engine/reconcilers.py) and it turns active."""
    check_state(
        server,
        state_of(session, server),
        "createImage",
        ("active", "stopped", "paused", "suspended"),
    )
    del caller  # Nova does not check the lock for a snapshot
    base = session.get(Resource, server.spec.get("image_id") or "")
    base_spec = base.spec if base is not None and base.kind == "image" else {}
    image = add_image(
        session,
        image_id=None,
        owner=server.project_id,
        name=name,
        spec={
            "disk_format": base_spec.get("disk_format") or "raw",
            "container_format": base_spec.get("container_format") or "bare",
            "min_disk": int(base_spec.get("min_disk") or server.spec.get("disk_gb") or 0),
            "min_ram": int(base_spec.get("min_ram") or 0),
            "protected": False,
            "tags": [],
            "visibility": "private",
            "os_hidden": False,
            "owner": server.project_id,
            "properties": {
                **metadata,
                "image_type": "snapshot",
                "instance_uuid": server.id,
                "base_image_ref": server.spec.get("image_id") or "",
                "user_id": server.spec.get("user_id") or "",
            },
        },
    )
    repo.change(
        session,
        image,
        status="saving",
        spec={
            "data_path": str(images_dir / image.id),
            "snapshot": {"server_id": server.id, "site": server.site},
        },
    )
    enqueue(session, image.id, "image", server.site or "")
    return image


# -- force delete / restore ------------------------------------------------------------------


def force_delete(session: Session, caller: Caller, server: Resource) -> None:
    """Without soft delete, as delete (the lock applies)."""
    check_lock(server, caller)
    if not server.deleting:
        release_resize(session, server)
        delete_server(session, server)


def restore(session: Session, caller: Caller, server: Resource) -> None:
    """Nothing is ever soft deleted here: vm_state is never soft-deleted, 409."""
    _check(session, caller, server, "restore", ("soft-delete",))


# -- tags ------------------------------------------------------------------------------------------


def tags_of(server: Resource) -> list[str]:
    return list(server.spec.get("tags") or [])


def set_tags(session: Session, caller: Caller, server: Resource, tags: list[str]) -> list[str]:
    """Replace the server's tags (Nova: 400 above 50; a building or deleting
    server's tags do not change: 409)."""
    _tags_check(session, caller, server)
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
    repo.change(session, server, spec={"tags": unique})
    return unique


def add_tag(session: Session, caller: Caller, server: Resource, tag: str) -> bool:
    """Add one tag; False when it was there already."""
    _tags_check(session, caller, server)
    tags = tags_of(server)
    if tag in tags:
        return False
    if len(tags) >= MAX_TAGS:
        raise BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
    repo.change(session, server, spec={"tags": [*tags, tag]})
    return True


def remove_tag(session: Session, caller: Caller, server: Resource, tag: str | None) -> None:
    """Remove one tag (404 when absent) or, with None, all of them."""
    _tags_check(session, caller, server)
    tags = tags_of(server)
    if tag is not None and tag not in tags:
        raise NotFound(f"Tag {tag} could not be found.")
    repo.change(session, server, spec={"tags": [t for t in tags if t != tag] if tag else []})


def _tags_check(session: Session, caller: Caller, server: Resource) -> None:
    """Nova changes the tags of a server in any settled vm_state; a deleting one: 409."""
    del session, caller
    if server.deleting:
        raise Conflict(
            f"Cannot 'update tags' instance {server.id} while it is in task_state deleting"
        )
