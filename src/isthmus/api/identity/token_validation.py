"""Token validation with a per-process cache.

A token is valid when (1) it is a genuine Fernet token under one of the keys,
unexpired, with a lifetime within the configured one (tokens.TokenCodec.decode),
(2) it is not on the revoked list (DELETE /identity/v3/auth/tokens), (3) its user
exists and is enabled, (4) for a scoped token: its project exists and is enabled
and the user holds a role on it now (the roles the request gets are the current
ones), and (5) no revocation event kills it (store/token_revocation.py: a user
disabled, deleted or given a new password, a role revoked, a project disabled or
deleted, each after the token was issued), and (6) a token got through a trust or
an application credential: it is still there, current and valid (store/trusts.py
`check`, store/application_credentials.py `check`), and the roles are its roles.
A trust-scoped token is the trustor's when the trust impersonates.

Cache: token -> (validated TokenData, identity revision, key generation). Every
identity write bumps the revision row in its own transaction, in any process
sharing the database, so a cached answer is used only while (a) the revision read
for this request (one primary-key read, before anything else is read) is the one
it was validated at, (b) the key directory is the one it was decrypted under
(one stat), and (c) the token has not expired. Otherwise the token is validated
again from scratch. The cache holds at most `max_entries` tokens (least recently
used dropped first); only valid tokens are cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.identity.tokens import BadToken, Delegation, TokenClaims, TokenCodec, TokenData
from isthmus.errors import NotFound, Unauthorized
from isthmus.store import application_credentials, identity, token_revocation, trusts
from isthmus.store.db import Database
from isthmus.store.tables import Project, RevokedToken, User
from isthmus.store.trusts import DelegationInvalid

DEFAULT_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    data: TokenData
    revision: int
    generation: int


class TokenValidator:
    """`verify(token)` -> TokenData or Unauthorized (NotFound for a subject token)."""

    def __init__(
        self, db: Database, codec: TokenCodec, max_entries: int = DEFAULT_CACHE_ENTRIES
    ) -> None:
        self.db = db
        self.codec = codec
        self.max_entries = max_entries
        # the revision is one read: on PostgreSQL without BEGIN/ROLLBACK round trips
        self._revision_engine = (
            db.read_engine
            if db.is_sqlite
            else db.read_engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str, *, subject: bool = False) -> TokenData:
        error = NotFound if subject else Unauthorized
        generation = self.codec.refresh()
        with self._revision_engine.connect() as connection:
            revision = token_revocation.revision(connection)
        with self._lock:
            entry = self._cache.get(token)
            if entry is not None:
                self._cache.move_to_end(token)
        if (
            entry is not None
            and entry.revision == revision
            and entry.generation == generation
            and entry.data.expires_at > time.time()
        ):
            return entry.data
        try:
            claims = self.codec.decode(token)
        except BadToken as exc:
            raise error(str(exc)) from exc
        data = self._check(claims, error)
        with self._lock:
            self._cache[token] = _Entry(data, revision, generation)
            self._cache.move_to_end(token)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return data

    def forget(self) -> None:
        """Drop every cached token: the next validation of each is a full one."""
        with self._lock:
            self._cache.clear()

    def _check(self, claims: TokenClaims, error: type[Unauthorized | NotFound]) -> TokenData:
        """Everything but the cryptography, in two queries: the user, the project,
        the revoked list and the revocation events in one, the roles in another."""
        project = select(Project.name, Project.enabled).where(Project.id == claims.project_id)
        query = select(
            User.name,
            User.enabled,
            project.with_only_columns(Project.name).scalar_subquery(),
            project.with_only_columns(Project.enabled).scalar_subquery(),
            select(RevokedToken.audit_id).where(RevokedToken.audit_id == claims.audit_id).exists(),
            token_revocation.revoked(claims.user_id, claims.project_id, claims.issued_at),
        ).where(User.id == claims.user_id)
        with self.db.read() as session:
            row = session.execute(query).one_or_none()
            if row is None or not row[1]:
                raise error(f"The user of this token ({claims.user_id}) is unknown or disabled.")
            user_name, _, project_name, project_enabled, listed, killed = row
            if listed or killed:
                raise error("The token has been revoked.")
            roles: list[str] = []
            user_id, delegation = claims.user_id, None
            if claims.project_id:
                if project_name is None or not project_enabled:
                    raise error(
                        f"The project of this token ({claims.project_id}) is unknown or disabled."
                    )
                if claims.trust_id or claims.app_cred_id:
                    try:
                        user_id, user_name, roles, delegation = _delegated(session, claims)
                    except DelegationInvalid as exc:
                        raise error(str(exc)) from exc
                else:
                    roles = identity.roles_of(session, claims.user_id, claims.project_id)
                if not roles:
                    raise error(f"The user no longer has a role on project {claims.project_id}.")
        return TokenData(
            user_id=user_id,
            user_name=user_name,
            project_id=claims.project_id,
            project_name=project_name or "",
            roles=tuple(roles),
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
            audit_id=claims.audit_id,
            methods=claims.methods,
            delegation=delegation,
        )


def _delegated(session: Session, claims: TokenClaims) -> tuple[str, str, list[str], Delegation]:
    """(user id, user name, roles, delegation) of a token got through a trust or an
    application credential; DelegationInvalid if it may no longer act."""
    if claims.trust_id:
        trust, trustor, roles = trusts.check(
            session, claims.trust_id, claims.user_id, claims.project_id, claims.issued_at
        )
        delegation = Delegation(
            trust_id=trust.id,
            trustor_user_id=trust.trustor_user_id,
            trustee_user_id=trust.trustee_user_id,
            impersonation=trust.impersonation,
        )
        if trust.impersonation:
            return trustor.id, trustor.name, roles, delegation
        trustee = session.get(User, claims.user_id)
        assert trustee is not None  # read (and found enabled) by the caller
        return trustee.id, trustee.name, roles, delegation
    cred, roles = application_credentials.check(
        session, claims.app_cred_id, claims.user_id, claims.project_id
    )
    user = session.get(User, claims.user_id)
    assert user is not None
    delegation = Delegation(
        app_cred_id=cred.id, app_cred_name=cred.name, unrestricted=cred.unrestricted
    )
    return user.id, user.name, roles, delegation
