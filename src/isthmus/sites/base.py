"""The driver contract: what every kind of site (local, openstack, aws) offers.

A driver translates; it decides nothing. Placement, IPAM, segment ids and quotas
are decided above it and arrive in the specs (model/specs.py), fully resolved.
What a driver answers is part of its contract and is defined here: `Observed` (an
object as the site reports it; statuses from model/kinds.py), `ForeignObject`,
`SiteReport`.

Contract of every driver (checked by tests/contract/ against each driver):
- `ensure(spec)` is idempotent. It first looks for the object carrying
  `spec.isthmus_id` (a tag, name prefix or metadata) and updates it towards the
  spec; only when none exists does it create one, tagged with that id. After it
  returns, the site holds exactly one object for that id, shaped like the spec,
  and the returned `Observed` describes it (its status may still be transient,
  e.g. server BUILD: call `observe` later).
- `delete(kind, isthmus_id)` removes the object tagged with that id. Deleting a
  missing object succeeds. After it returns the object is gone or going.
- `observe(kind, isthmus_id)` returns the object's current state, or None when
  the site holds no such object. It never changes anything.
- `inventory()` lists every object in the site that carries an Isthmus id.
- `foreign()` lists the objects of the kinds Isthmus manages that the site holds
  (for Isthmus' own account or project) and that carry no Isthmus id: made there
  outside Isthmus. It never changes anything, and Isthmus never touches them.
- `check()` reports health and capacity; it raises SiteUnavailable when the site
  cannot be reached.
- `console_output(isthmus_id, length)` returns a server's console log (its last
  `length` lines; None: all of it), read from the site when asked (the one site
  call an API request waits for, as Nova's os-getConsoleOutput does); PermanentError
  when the site holds no such server. It never changes anything.
- A server's spec says which state the site must hold it in (`power_on`,
  `run_state` active/paused/suspended), its size (a new size: resize it in place),
  `rebuild_count` (higher than applied: make it again from `image_id`, same ports)
  and `port_ids` (interfaces attached and detached to match). Until the site has
  done it, `observe` reports a transient status (BUILD, REBOOT, REBUILD, RESIZE);
  then ACTIVE, SHUTOFF, PAUSED or SUSPENDED.
- `retire()` is called once when the site is removed from Isthmus (not on an
  ordinary close or shutdown): it releases what Isthmus itself runs for the site
  (the embedded data plane's FRR and namespaces); nothing in the site's cloud is
  deleted. An embedded site is the exception: it exists only inside Isthmus, so
  its on-disk state goes too (a site added again under that name starts empty).
  Calling it again succeeds.
- Progress: while `ensure` copies data into the site (image data), it calls
  `sites.progress.report(bytes_done, bytes_total)` as bytes go: once at the start,
  then after each chunk, the last with bytes_done == bytes_total. Whoever called
  `ensure` may have installed a reporter (`sites.progress.reporting`); without one
  the calls do nothing, so `ensure(spec)` keeps its signature.
- Failures are raised only as `SiteUnavailable` (retry later, site down),
  `TemporaryError(delay)` (retry after delay) or `PermanentError` (this intent
  cannot be realised: the resource goes ERROR with the message). Any other
  exception from a site SDK is mapped to one of those at the driver boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from isthmus.model.specs import Spec


@dataclass(frozen=True)
class Observed:
    """An object as the site reports it."""

    kind: str
    isthmus_id: str
    site_id: str
    status: str  # driver-neutral: BUILD ACTIVE SHUTOFF ERROR available in-use ...
    fault: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ForeignObject:
    """An object in a site that Isthmus did not make (it carries no Isthmus id)."""

    kind: str  # network, server, volume, ... (the Isthmus kind it would be)
    site_id: str
    name: str = ""


@dataclass(frozen=True)
class SiteReport:
    """Health and capacity as `check()` finds them."""

    health: str  # up | degraded
    message: str = ""
    capacity: dict[str, int] = field(default_factory=dict)  # vcpus, ram_mb, disk_gb
    usage: dict[str, int] = field(default_factory=dict)
    data_plane: str = "control-plane only"


class SiteDriver(Protocol):
    """One site. Construct with the site's name and config; see the module contract."""

    name: str

    def check(self) -> SiteReport:
        """Health and capacity; raises SiteUnavailable if the site is unreachable."""
        ...

    def ensure(self, spec: Spec) -> Observed:
        """Make exactly one object for spec.isthmus_id exist, shaped like spec."""
        ...

    def delete(self, kind: str, isthmus_id: str) -> None:
        """Remove the object for isthmus_id; a missing object is success."""
        ...

    def observe(self, kind: str, isthmus_id: str) -> Observed | None:
        """Current state of the object for isthmus_id, or None; no side effects."""
        ...

    def inventory(self) -> list[Observed]:
        """Every object in the site that carries an Isthmus id."""
        ...

    def foreign(self) -> list[ForeignObject]:
        """Every object of a kind Isthmus manages that carries no Isthmus id; no side
        effects; raises SiteUnavailable when the site cannot be reached."""
        ...

    def console_output(self, isthmus_id: str, length: int | None = None) -> str:
        """The server's console log (last `length` lines); no side effects."""
        ...

    def retire(self) -> None:
        """The site is being removed from Isthmus: release what Isthmus runs for it;
        nothing in the site's cloud is deleted. Idempotent."""
        ...

    def close(self) -> None:
        """Release connections and files; the site itself is left as it is."""
        ...


@runtime_checkable
class PowerSwitch(Protocol):
    """An optional capability: a site Isthmus itself can take down and bring back
    up (the embedded one, to show an outage). While down, every call fails with
    SiteUnavailable as for an unreachable cloud. Drivers of real clouds lack it;
    ask with `isinstance(driver, PowerSwitch)`."""

    def set_down(self, down: bool) -> None:
        """Take the site down (True) or bring it back up (False)."""
        ...
