"""A server's life after create, below the Compute API (api/compute/servers.py
and volumes.py parse, look the server up and answer): Nova's state of a server
and the actions it allows, decided once here.

- `server_state`: Nova's status / vm_state / task_state / power_state from the
  server's intent and its binding in its site (the server body shows the same,
  api/compute/views.py): BUILD is building (scheduling until a site holds the
  server, then spawning); a change the site has not applied yet is Nova's task
  in flight (powering-off, powering-on, rebooting, deleting);
- `check_state`: 409 unless the vm_state and task_state allow an action, in
  Nova's words;
- `update_server` (409 while deleting), `start_server`, `stop_server`,
  `reboot_server`, `change_metadata`: each checks the state and changes the
  server's intent (`repo.change`, which enqueues it in its site);
- `attach_volume` / `detach_volume`: a volume attaches only to a server in its
  own zone (Nova's `cross_az_attach = False`), as `/dev/vdX` (the requested path
  when free); it shows `attaching` / `detaching` until the engine has realised
  the change in the site.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.store import repo
from isthmus.store.tables import Binding, Resource

VM_STATES = {
    "BUILD": "building",
    "ACTIVE": "active",
    "REBOOT": "active",
    "HARD_REBOOT": "active",
    "REBUILD": "active",
    "RESIZE": "active",
    "VERIFY_RESIZE": "resized",
    "REVERT_RESIZE": "resized",
    "SHUTOFF": "stopped",
    "PAUSED": "paused",
    "SUSPENDED": "suspended",
    "RESCUE": "rescued",
    "SHELVED": "shelved",
    "SHELVED_OFFLOADED": "shelved_offloaded",
    "ERROR": "error",
}
# Nova's power_state: 1 running, 3 paused, 4 shutdown (libvirt reports a suspended,
# i.e. managed-saved, guest as shut down too)
POWER_STATES = {
    "ACTIVE": 1,
    "REBOOT": 1,
    "HARD_REBOOT": 1,
    "REBUILD": 1,
    "RESIZE": 1,
    "VERIFY_RESIZE": 1,
    "REVERT_RESIZE": 1,
    "SHUTOFF": 4,
    "PAUSED": 3,
    "SUSPENDED": 4,
    "RESCUE": 1,
    "SHELVED": 4,
    "SHELVED_OFFLOADED": 4,
}
# a run state the intent asks for (spec `run_state`) and the status a site shows once
# it has applied it; (status shown, wanted run state) -> Nova's task in flight
RUN_STATES = {
    "active": "ACTIVE",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "rescued": "RESCUE",
}
RUN_TASKS = {
    ("ACTIVE", "paused"): "pausing",
    ("ACTIVE", "suspended"): "suspending",
    ("PAUSED", "active"): "unpausing",
    ("SUSPENDED", "active"): "resuming",
    ("ACTIVE", "rescued"): "rescuing",
    ("SHUTOFF", "rescued"): "rescuing",
    ("RESCUE", "active"): "unrescuing",
}


@dataclass(frozen=True)
class ServerState:
    status: str
    vm_state: str
    task_state: str | None
    power_state: int


def _pending(spec: dict[str, Any], key: str, applied: int) -> bool:
    """A change asked for at generation spec[key] that the site has not applied."""
    return int(spec.get(key, 0) or 0) > applied


def server_state(server: Resource, binding: Binding | None) -> ServerState:
    """Nova's four state fields of `server`, given its binding in its site (for a
    shelved server being offloaded: its binding in the site it leaves)."""
    status = server.status or "BUILD"
    spec = server.spec
    hard = spec.get("reboot_type") == "HARD"
    task: str | None = None
    applied = binding.applied_generation if binding is not None else 0
    resize = spec.get("resize") or {}
    if spec.get("shelved"):
        if binding is not None:
            status, task = "SHELVED", "shelving_offloading"
        else:
            status = "SHELVED_OFFLOADED"
    elif status == "SHELVED_OFFLOADED":  # unshelved, not yet in its (new) site
        task = "spawning" if binding is not None else "unshelving"
    elif status == "BUILD":
        task = "scheduling" if binding is None else "spawning"
    elif status == "REBOOT":
        status, task = ("HARD_REBOOT", "rebooting_hard") if hard else ("REBOOT", "rebooting")
    elif status == "REBUILD" or _pending(spec, "rebuild_generation", applied):
        status, task = "REBUILD", "rebuild_spawning"
    elif resize and (status == "RESIZE" or _pending(resize, "generation", applied)):
        if resize.get("reverting"):
            status, task = "REVERT_RESIZE", "resize_reverting"
        else:
            status, task = "RESIZE", "resize_migrating"
    elif resize.get("state") == "verify" and status in ("ACTIVE", "SHUTOFF"):
        status = "VERIFY_RESIZE"
    elif status in ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE"):
        wanted_run = str(spec.get("run_state") or "active")
        if _pending(spec, "reboot_generation", applied):
            status, task = ("HARD_REBOOT", "rebooting_hard") if hard else ("REBOOT", "rebooting")
        elif status == "ACTIVE" and not spec.get("power_on", True):
            task = "powering-off"
        elif status == "SHUTOFF" and spec.get("power_on", True):
            task = "powering-on"
        else:
            task = RUN_TASKS.get((status, wanted_run))
    if server.deleting:
        task = "deleting"
    vm_state = VM_STATES.get(status, status.lower())
    return ServerState(status, vm_state, task, POWER_STATES.get(status, 0))


def state_site(server: Resource) -> str | None:
    """The site whose binding tells a server's state: its site, or while it is
    shelved the site it was offloaded from."""
    return server.site or server.spec.get("shelved_site")


def state_of(session: Session, server: Resource) -> ServerState:
    """Nova's state of one server (its binding read from the store)."""
    site = state_site(server)
    binding = session.get(Binding, (server.id, site)) if site else None
    return server_state(server, binding)


def check_state(
    server: Resource,
    state: ServerState,
    action: str,
    vm_states: tuple[str, ...],
    task_states: tuple[str | None, ...] = (None,),
) -> None:
    """409 unless the server's vm_state and task_state allow `action` (as Nova)."""
    if state.vm_state not in vm_states:
        raise Conflict(
            f"Cannot '{action}' instance {server.id} while it is in vm_state {state.vm_state}"
        )
    if state.task_state not in task_states:
        raise Conflict(
            f"Cannot '{action}' instance {server.id} while it is in task_state {state.task_state}"
        )


# -- update, power and metadata ----------------------------------------------------------------


def update_server(
    session: Session, server: Resource, *, fields: dict[str, Any], spec: dict[str, Any]
) -> None:
    """Rename or change access IPs / disk config (409 while the server is deleting)."""
    if server.deleting:
        raise Conflict(f"Cannot 'update' instance {server.id} while it is in task_state deleting")
    if fields or spec:
        repo.change(session, server, spec=spec, **fields)


def start_server(session: Session, server: Resource) -> None:
    check_state(server, state_of(session, server), "start", ("stopped",))
    repo.change(session, server, spec={"power_on": True})


def stop_server(session: Session, server: Resource) -> None:
    check_state(server, state_of(session, server), "stop", ("active", "error"))
    repo.change(session, server, spec={"power_on": False})


def reboot_server(session: Session, server: Resource, reboot_type: str) -> None:
    """A SOFT reboot only from active; a HARD one also from stopped or error, and
    over a power change or reboot still in flight."""
    state = state_of(session, server)
    if reboot_type == "SOFT":
        check_state(server, state, "reboot", ("active",))
    else:
        check_state(
            server,
            state,
            "reboot",
            ("active", "stopped", "error"),
            (None, "rebooting", "powering-on", "powering-off"),
        )
    spec = server.spec
    repo.change(
        session,
        server,
        spec={
            "power_on": True,
            "reboot_count": int(spec.get("reboot_count", 0)) + 1,
            "reboot_type": reboot_type,
            "reboot_generation": server.generation + 1,
        },
    )


def change_metadata(
    session: Session,
    server: Resource,
    action: str,
    compute: Callable[[dict[str, str]], dict[str, str]],
) -> dict[str, str]:
    """Apply `compute(current) -> new` (which checks the new metadata) to an active
    or stopped server's metadata; returns the new one."""
    check_state(server, state_of(session, server), action, ("active", "stopped"))
    metadata = compute(dict(server.spec.get("metadata") or {}))
    repo.change(session, server, spec={"metadata": metadata})
    return metadata


# -- volume attachments ----------------------------------------------------------------------

DEVICE = re.compile(r"^/dev/[a-z]*d([a-z]+)$")
ATTACH_STATES = ("active", "stopped")


def attached(session: Session, server_id: str) -> list[Resource]:
    """The live volumes attached to a server, in the order they were attached."""
    return list(
        session.scalars(
            select(Resource)
            .where(
                Resource.kind == "volume",
                Resource.device_id == server_id,
                Resource.deleting.is_(False),
            )
            .order_by(Resource.updated_at, Resource.id)
        )
    )


def _next_device(used: set[str], requested: Any) -> str:
    """The requested device if it is a free /dev/?d? path, else the next free
    /dev/vdX after the root disk vda."""
    if isinstance(requested, str) and requested and DEVICE.match(requested):
        if requested not in used:
            return requested
    for letter in "bcdefghijklmnopqrstuvwxyz":
        device = f"/dev/vd{letter}"
        if device not in used:
            return device
    raise BadRequest("The server has no free device name left for another volume.")


def attach_volume(
    session: Session, server: Resource, volume_id: str, device: Any, *, project_id: str | None
) -> Resource:
    """Attach the volume `volume_id` (of `project_id`; None: any, admins) to
    `server` as `device` (or the next free one); returns the volume."""
    check_state(server, state_of(session, server), "attach_volume", ATTACH_STATES)
    volume = session.get(Resource, volume_id)
    if (
        volume is None
        or volume.kind != "volume"
        or volume.deleting
        or (project_id is not None and volume.project_id != project_id)
    ):
        raise NotFound(f"Volume {volume_id} could not be found.")
    if volume.status != "available" or volume.device_id:
        raise BadRequest(
            f"Invalid volume: volume {volume_id} status must be 'available', it is"
            f" '{volume.status}'."
        )
    if volume.site != server.site:
        raise BadRequest(
            f"Invalid volume: volume {volume_id} is in availability zone {volume.site} and"
            f" server {server.id} in availability zone {server.site}; a volume attaches only"
            " to a server in the same zone."
        )
    used = {"/dev/vda"} | {str(v.spec.get("device")) for v in attached(session, server.id)}
    repo.change(
        session,
        volume,
        sites=[volume.site] if volume.site else [],
        device_id=server.id,
        status="attaching",
        spec={
            "device": _next_device(used, device),
            "attached_at": repo.isoformat(repo.utcnow()),
        },
    )
    return volume


def detach_volume(session: Session, server: Resource, volume_id: str) -> None:
    """Detach the volume `volume_id` from `server` (404 unless attached to it)."""
    volume = next((v for v in attached(session, server.id) if v.id == volume_id), None)
    if volume is None:
        raise NotFound(f"Volume {volume_id} is not attached to server {server.id}.")
    check_state(server, state_of(session, server), "detach_volume", ATTACH_STATES)
    repo.change(
        session,
        volume,
        sites=[volume.site] if volume.site else [],
        device_id=None,
        status="detaching",
        spec={"device": None, "attached_at": None},
    )
