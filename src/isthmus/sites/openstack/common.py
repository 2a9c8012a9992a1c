"""What every kind of site object shares: how an object carries its Isthmus id,
and the lookups built on that.

Identity. Every object the driver creates is NAMED `isthmus-<isthmus id>`: the
name goes in with the create call itself, so a crash right after a create still
leaves a findable object, and every OpenStack API filters lists by name. The
tenant's own name travels as the description (Neutron, Cinder) or as metadata /
property `isthmus_name` (Nova, Glance). On top of the name, objects carry a
marker an operator can filter on: Neutron tag `isthmus_id=<id>` (set right after
the create; re-applied by the next ensure if a crash came between), Nova server
metadata, Cinder metadata and a Glance property `isthmus_id` (all set in the
create call). Only objects of the driver's own project whose names are
`isthmus-<uuid>` count as Isthmus objects; everything else is foreign and never
touched.

An object that is already on its way out (server task `deleting`, volume
`deleting`, image `deleted`, ...) counts as gone: observe returns None for it and
ensure creates a fresh one.

Each kind is made with the site's `SiteContext` (context.py: config, connections,
errors, the other kinds), never with the driver, so this package has no import
circle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from openstack import exceptions as sdk

from isthmus.errors import TemporaryError
from isthmus.model.specs import Spec
from isthmus.sites.base import ForeignObject, Observed
from isthmus.sites.openstack.context import SiteContext

if TYPE_CHECKING:
    from openstack.connection import Connection

PREFIX = "isthmus-"
MARKER = "isthmus_id"  # metadata / property key, and Neutron tag `isthmus_id=<id>`
NAME_KEY = "isthmus_name"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
OURS = re.compile(rf"^{PREFIX}({UUID})$")
PREREQUISITE_DELAY = 0.5  # retry delay when a prerequisite is not in the site yet


def site_name(isthmus_id: str) -> str:
    """The name of the site object made for `isthmus_id`."""
    return f"{PREFIX}{isthmus_id}"


def isthmus_id_of(name: str | None) -> str | None:
    """The Isthmus id a site object's name carries, or None (a foreign object)."""
    match = OURS.match(name or "")
    return match.group(1) if match else None


def tag_of(isthmus_id: str) -> str:
    return f"{MARKER}={isthmus_id}"


def get_or_none(call: Callable[..., Any], *args: Any) -> Any | None:
    """`call(*args)` (an SDK get_*), or None on a 404."""
    try:
        return call(*args)
    except sdk.NotFoundException:
        return None


def field(obj: Any, key: str, default: Any = None) -> Any:
    """An attribute of an SDK resource or a key of a plain dict (a raw API body);
    `default` when absent or null. (SDK resources are dicts too: use attributes.)"""
    value = obj.get(key) if type(obj) is dict else getattr(obj, key, None)
    return default if value is None else value


SpecT = TypeVar("SpecT", bound=Spec)


def name_query(name: str | None) -> dict[str, Any]:
    """The SDK list filter for objects named `name`, or none."""
    return {"name": name} if name else {}


class Kind(Generic[SpecT]):
    """One kind of site object (network, server, ...) in one OpenStack site.

    Subclasses say how to list the project's objects of the kind (`listing`),
    which are on their way out (`going`), how to read a status, and how to
    ensure and remove one. `SpecT` is the Spec type its `ensure` takes.
    """

    kind = ""

    def __init__(self, site: SiteContext) -> None:
        self.site = site

    # -- to provide ---------------------------------------------------------------

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        """The project's objects of this kind (only those named `name` if given)."""
        raise NotImplementedError

    def going(self, obj: Any) -> bool:
        return False

    def status(self, obj: Any) -> str:
        return str(field(obj, "status", "ACTIVE"))

    def fault(self, obj: Any) -> str | None:
        return None

    def details(self, obj: Any) -> dict[str, Any]:
        return {}

    def ensure(self, spec: SpecT) -> Observed:
        raise NotImplementedError

    def remove(self, conn: Connection, obj: Any) -> None:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------

    @property
    def conn(self) -> Connection:
        return self.site.connection()

    def errors(self, action: str, *, create: bool = False) -> AbstractContextManager[None]:
        return self.site.errors(f"{action} ({self.kind})", create=create)

    def find_all(self, isthmus_id: str) -> list[Any]:
        """Live objects carrying `isthmus_id`, oldest first."""
        wanted = site_name(isthmus_id)
        with self.errors("look up"):
            found = [
                obj
                for obj in self.listing(self.conn, wanted)
                if field(obj, "name") == wanted and not self.going(obj)
            ]
        return sorted(found, key=lambda obj: str(field(obj, "created_at", "")))

    def find(self, isthmus_id: str) -> Any | None:
        found = self.find_all(isthmus_id)
        return found[0] if found else None

    def require(self, isthmus_id: str, for_what: str) -> Any:
        """The live object for `isthmus_id`, which `for_what` needs; retryable if absent."""
        obj = self.find(isthmus_id)
        if obj is None:
            raise TemporaryError(
                f"{for_what} needs {self.kind} {isthmus_id}, not yet present in site"
                f" {self.site.name}",
                PREREQUISITE_DELAY,
            )
        return obj

    def observed(self, obj: Any, isthmus_id: str | None = None) -> Observed:
        details = {"created_at": field(obj, "created_at"), **self.details(obj)}
        return Observed(
            kind=self.kind,
            isthmus_id=isthmus_id or isthmus_id_of(field(obj, "name")) or "",
            site_id=str(field(obj, "id")),
            status=self.status(obj),
            fault=self.fault(obj),
            details=details,
        )

    def observe(self, isthmus_id: str) -> Observed | None:
        obj = self.find(isthmus_id)
        return self.observed(obj, isthmus_id) if obj is not None else None

    def delete(self, isthmus_id: str) -> None:
        conn = self.conn
        for obj in self.find_all(isthmus_id):
            with self.errors("delete"):
                self.remove(conn, obj)

    def inventory(self) -> Iterator[Observed]:
        with self.errors("list"):
            objects = list(self.listing(self.conn, None))
        for obj in objects:
            isthmus_id = isthmus_id_of(field(obj, "name"))
            if isthmus_id and not self.going(obj):
                yield self.observed(obj, isthmus_id)

    def foreign(self) -> Iterator[ForeignObject]:
        """The project's live objects of this kind whose names carry no Isthmus id
        (the project's `default` security group, which the site makes itself, aside)."""
        with self.errors("list"):
            objects = list(self.listing(self.conn, None))
        for obj in objects:
            name = str(field(obj, "name", ""))
            if isthmus_id_of(name) or self.going(obj):
                continue
            if self.kind == "security_group" and name == "default":
                continue
            yield ForeignObject(self.kind, str(field(obj, "id")), name)

    def settle(self, obj: Any, fetch: Callable[[Any], Any | None], transient: set[str]) -> Any:
        """Poll `fetch(obj)` while its status is in `transient`, for at most the
        site's settle time; the last object seen (None if it went away)."""
        return self.site.settle(obj, fetch, lambda o: self.status(o) in transient)
