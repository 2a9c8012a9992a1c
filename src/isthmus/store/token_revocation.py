"""What makes a token invalid besides its own expiry, in the store:

- `revoke_tokens(session, user_id=..., project_id=...)` records Keystone's
  revocation event: every matching token issued until now is dead (a user
  disabled, deleted or changing password: user only; a role revoked: user and
  project; a project disabled or deleted: project only);
- `identity_changed(session)` bumps the identity revision, the counter every
  process reads once per request to know whether the tokens it validated before
  still hold (names, roles, the revoked-token list). Every identity write calls
  it in its own transaction, so the bump commits with the change;
- `revoked(user, project, issued_at)` says whether an event kills a token.

Times are the wall clocks of the processes that issue tokens and record events:
hosts sharing a database need synchronised clocks (NTP), or a token issued
within their skew of an event may be judged on the wrong side of it.

Events older than the longest lifetime a token may be given
(`LONGEST_TOKEN_LIFETIME`) can match no live token; they are dropped when new
ones are written.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Exists

from isthmus.store.tables import IdentityRevision, RevocationEvent

LONGEST_TOKEN_LIFETIME = 7 * 86400  # seconds; the largest `token_expiration` accepted
_REVISION = select(IdentityRevision.revision).where(IdentityRevision.id == 1)


def identity_changed(session: Session) -> None:
    """Tokens validated before this transaction commits must be validated again."""
    session.execute(
        update(IdentityRevision)
        .where(IdentityRevision.id == 1)
        .values(revision=IdentityRevision.revision + 1)
    )


def revision(connection: Connection) -> int:
    """The current identity revision (one primary-key read)."""
    return int(connection.execute(_REVISION).scalar() or 0)


def revoke_tokens(
    session: Session,
    *,
    user_id: str | None = None,
    project_id: str | None = None,
) -> None:
    """Kill every token of the user (on the project, if given) or of the project
    issued until now."""
    if user_id is None and project_id is None:
        raise ValueError("a revocation event names a user, a project or both")
    now = time.time()
    stale = now - LONGEST_TOKEN_LIFETIME - 3600
    session.execute(delete(RevocationEvent).where(RevocationEvent.issued_before < stale))
    session.add(RevocationEvent(user_id=user_id, project_id=project_id, issued_before=now))
    identity_changed(session)


def revoked(user_id: str, project_id: str, issued_at: float) -> Exists:
    """Whether an event kills a token of `user_id` on `project_id` issued at
    `issued_at`, as an EXISTS clause (validation asks it in one query with others)."""
    matches = [and_(RevocationEvent.user_id == user_id, RevocationEvent.project_id.is_(None))]
    if project_id:
        matches += [
            and_(RevocationEvent.user_id == user_id, RevocationEvent.project_id == project_id),
            and_(RevocationEvent.user_id.is_(None), RevocationEvent.project_id == project_id),
        ]
    return (
        select(RevocationEvent.id)
        .where(RevocationEvent.issued_before >= issued_at, or_(*matches))
        .exists()
    )
