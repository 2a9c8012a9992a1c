"""The service layer: one write path per resource kind, below the API and above
the engine and the store.

An API handler parses a request and renders the answer; everything between that
needs the store is here: checks against stored state (a zone, a fixed IP, a port
in use), placement, IPAM, quotas, writing the intent and enqueueing its work, all
in the caller's transaction (the handler commits and wakes the engine). Tests and
benches write intent through the same functions.

- `servers`: server create (the checked `BootRequest`, `boot`, `add_server`) and delete;
- `volumes`: volume and snapshot create;
- `ports`: Neutron port create, update and delete;
- `floating_ips`: floating IP create and association.

Functions take a `Caller` (who asks: project, user, admin or not) rather than the
API's request context, so nothing here imports api/.
"""

from __future__ import annotations

from typing import Protocol


class Caller(Protocol):
    """Who asks for a write (api/context.RequestContext is one)."""

    @property
    def project_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...

    def visible_project(self) -> str | None:
        """The project a single-resource write is limited to (None: any, admins)."""
        ...
