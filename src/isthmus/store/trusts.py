"""Keystone trusts (OS-TRUST) in the store: a trustor delegates some of its roles on
a project to a trustee, who then gets trust-scoped tokens carrying those roles
(as the trustor, when the trust impersonates).

- `create` refuses roles the trustor does not hold on the project (403), a
  trustee that does not exist (404);
- `find` answers 404 for a trust that is unknown, expired or used up (Keystone's
  TrustNotFound); `consume` takes one use, atomically, from a trust that counts them;
- `delete` removes a trust and bumps the identity revision, so every process
  validates the trust's tokens again (and refuses them);
- `check` is what token validation asks of a trust-scoped token on every full
  validation: the trust is still there and current, names that trustee and
  project, its trustor exists, is enabled, has no revocation event after the token
  was issued, and still holds every delegated role on the project. It raises
  `DelegationInvalid` with the reason otherwise.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from isthmus.errors import Forbidden, NotFound
from isthmus.store.identity import roles_of
from isthmus.store.tables import Trust, User
from isthmus.store.token_revocation import identity_changed, revoked


class DelegationInvalid(Exception):
    """A trust or application credential no longer lets its token act (message says why)."""


def implied(roles: Iterable[str]) -> list[str]:
    """`roles` with the ones they imply (admin > member > reader), as roles_of gives them."""
    out = set(roles)
    if "admin" in out:
        out |= {"member", "reader"}
    if "member" in out:
        out.add("reader")
    return sorted(out)


def create(
    session: Session,
    *,
    trustor_id: str,
    trustee_id: str,
    project_id: str,
    roles: Sequence[str],
    impersonation: bool,
    expires_at: float | None,
    remaining_uses: int | None,
) -> Trust:
    """A new trust; 404 for an unknown trustee, 403 for a role the trustor lacks."""
    if session.get(User, trustee_id) is None:
        raise NotFound(f"Could not find user: {trustee_id}.")
    held = set(roles_of(session, trustor_id, project_id))
    missing = sorted(set(roles) - held)
    if missing:
        raise Forbidden(
            f"The trustor does not hold the role(s) {', '.join(missing)} on project"
            f" {project_id}: a trust can only delegate roles the trustor has."
        )
    trust = Trust(
        id=uuid.uuid4().hex,
        trustor_user_id=trustor_id,
        trustee_user_id=trustee_id,
        project_id=project_id,
        impersonation=impersonation,
        roles=sorted(set(roles)),
        expires_at=expires_at,
        remaining_uses=remaining_uses,
        created_at=time.time(),
    )
    session.add(trust)
    session.flush()
    return trust


def _usable(trust: Trust | None, now: float) -> bool:
    if trust is None:
        return False
    if trust.expires_at is not None and trust.expires_at <= now:
        return False
    return trust.remaining_uses is None or trust.remaining_uses > 0


def find(session: Session, trust_id: str) -> Trust:
    """The trust, or 404 when unknown, expired or used up."""
    trust = session.get(Trust, trust_id)
    if not _usable(trust, time.time()):
        raise NotFound(f"Could not find trust: {trust_id}.")
    assert trust is not None
    return trust


def listing(
    session: Session, *, trustor_id: str | None = None, trustee_id: str | None = None
) -> list[Trust]:
    """The usable trusts, of that trustor and/or trustee if given, oldest first."""
    query = select(Trust).order_by(Trust.created_at, Trust.id)
    if trustor_id is not None:
        query = query.where(Trust.trustor_user_id == trustor_id)
    if trustee_id is not None:
        query = query.where(Trust.trustee_user_id == trustee_id)
    now = time.time()
    return [t for t in session.scalars(query) if _usable(t, now)]


def consume(session: Session, trust: Trust) -> None:
    """Take one use of a trust that counts them; 404 if none is left (a concurrent
    request may have taken the last one)."""
    if trust.remaining_uses is None:
        return
    taken = session.execute(
        update(Trust)
        .where(Trust.id == trust.id, Trust.remaining_uses > 0)
        .values(remaining_uses=Trust.remaining_uses - 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(f"Could not find trust: {trust.id}.")
    session.refresh(trust)


def delete(session: Session, trust: Trust) -> None:
    """Remove the trust; its tokens are refused from now on, in every process."""
    session.delete(trust)
    identity_changed(session)


def check(
    session: Session, trust_id: str, trustee_id: str, project_id: str, issued_at: float
) -> tuple[Trust, User, list[str]]:
    """(trust, trustor, roles the token gets) for a trust-scoped token of `trustee_id`
    on `project_id` issued at `issued_at`; DelegationInvalid if it may not act."""
    trust = session.get(Trust, trust_id)
    if trust is None:
        raise DelegationInvalid(f"The trust of this token ({trust_id}) no longer exists.")
    if trust.expires_at is not None and trust.expires_at <= time.time():
        raise DelegationInvalid(f"The trust of this token ({trust_id}) has expired.")
    if trust.trustee_user_id != trustee_id or trust.project_id != project_id:
        raise DelegationInvalid("The token does not match its trust.")
    trustor = session.get(User, trust.trustor_user_id)
    if trustor is None or not trustor.enabled:
        raise DelegationInvalid(f"The trustor of trust {trust_id} is unknown or disabled.")
    if session.scalar(select(revoked(trustor.id, project_id, issued_at))):
        raise DelegationInvalid("The token has been revoked.")
    held = set(roles_of(session, trustor.id, project_id))
    if not trust.roles or not set(trust.roles) <= held:
        raise DelegationInvalid(
            f"The trustor of trust {trust_id} no longer holds the roles it delegated."
        )
    return trust, trustor, implied(trust.roles)
