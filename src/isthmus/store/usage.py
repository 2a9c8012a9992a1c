"""The usage a deleted server leaves (table `server_usage`): Nova keeps a deleted
instance's row for os-simple-tenant-usage; Isthmus purges a server's resource row
once its site let it go, so what usage needs of it (project, name, flavor, when it
started and ended) is written here when its delete is accepted, in the caller's
transaction (intent/servers.delete_server), and read by api/compute/usage.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.store import repo
from isthmus.store.tables import Resource, ServerUsage


def record_end(session: Session, server: Resource, ended_at: datetime | None = None) -> None:
    """Keep what `server` ran, ending now (once: a repeated delete changes nothing)."""
    if session.get(ServerUsage, server.id) is not None:
        return
    session.add(
        ServerUsage(
            server_id=server.id,
            project_id=server.project_id,
            name=server.name or "",
            flavor=dict((server.spec or {}).get("flavor") or {}),
            started_at=server.created_at,
            ended_at=ended_at or repo.utcnow(),
        )
    )


def ended(
    session: Session, project_id: str | None, start: datetime, stop: datetime
) -> list[ServerUsage]:
    """Deleted servers of `project_id` (None: every project) that ran within
    [start, stop], oldest first."""
    query = select(ServerUsage).where(ServerUsage.ended_at >= start, ServerUsage.started_at <= stop)
    if project_id is not None:
        query = query.where(ServerUsage.project_id == project_id)
    return list(session.scalars(query.order_by(ServerUsage.started_at, ServerUsage.server_id)))
