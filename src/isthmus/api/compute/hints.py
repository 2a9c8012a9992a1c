"""Scheduler hints of a server create (`os:scheduler_hints`, also spelled
`OS-SCH-HNT:scheduler_hints`), parsed as Nova's schema has them: `group` one server
group id, `same_host` / `different_host` one server id or a list of them; other
hints are accepted and ignored, as Nova's schema allows (Isthmus has no filters
for them). A site is the host: what the hints mean for placement is
model/placement.Spread's, the lookups intent/server_groups.py's.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext
from isthmus.errors import BadRequest
from isthmus.intent import server_groups
from isthmus.intent.server_groups import PlacementHints

HINT_KEYS = ("os:scheduler_hints", "OS-SCH-HNT:scheduler_hints")


def _invalid(name: str, value: Any, reason: str) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. {reason}")


def _uuid(name: str, value: Any) -> str:
    if isinstance(value, str):
        try:
            uuid.UUID(value)
            return value
        except ValueError:
            pass
    raise _invalid(name, value, f"{value!r} is not a 'uuid'")


def _server_ids(name: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [_uuid(name, v) for v in values]


def raw_hints(body: Any) -> dict[str, Any]:
    """The hints object of a create body ({} without one); 400 if not an object."""
    if not isinstance(body, dict):
        return {}
    for key in HINT_KEYS:
        if key in body:
            hints = body[key]
            if not isinstance(hints, dict):
                raise _invalid(key, hints, f"{hints!r} is not of type 'object'")
            return hints
    return {}


def check_shape(body: Any) -> None:
    """Nova's schema check of the hints (before anything else is looked up)."""
    hints = raw_hints(body)
    if "group" in hints:
        _uuid("group", hints["group"])
    for name in ("same_host", "different_host"):
        if name in hints:
            _server_ids(name, hints[name])


def placement_hints(session: Session, ctx: RequestContext, body: Any) -> PlacementHints:
    """The checked hints of a create body: the group (400 if it cannot be found)
    and the sites of the servers named by same_host / different_host."""
    check_shape(body)
    hints = raw_hints(body)
    result = PlacementHints()
    if "group" in hints:
        result.group = server_groups.hint_group(session, ctx, hints["group"])
    if "same_host" in hints:
        ids = _server_ids("same_host", hints["same_host"])
        result.same_host = server_groups.host_sites(session, ctx, ids)
    if "different_host" in hints:
        ids = _server_ids("different_host", hints["different_host"])
        result.different_host = server_groups.host_sites(session, ctx, ids)
    return result
