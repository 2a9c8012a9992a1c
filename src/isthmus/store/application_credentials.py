"""Keystone application credentials in the store: a user makes a named secret that
gets tokens on one project with some of the user's roles there.

The secret is kept only as a salted scrypt hash (identity.hash_password); it is
never stored, logged or shown again after `create` returns it. `authenticate`
finds a credential by id, or by name and user, and checks the secret (401 with the
same message for every failure); `check` is what token validation asks on every
full validation of a token got with a credential: the credential still exists,
belongs to the token's user and project, has not expired, and the user still
holds each of its roles on the project (Keystone deletes a user's credentials on
a project when a role there is revoked; here they stop working). `delete` bumps
the identity revision so its tokens are refused at once in every process.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import Conflict, Forbidden, NotFound, Unauthorized
from isthmus.store.identity import hash_password, password_matches, roles_of
from isthmus.store.tables import ApplicationCredential, User
from isthmus.store.token_revocation import identity_changed
from isthmus.store.trusts import DelegationInvalid, implied

_REFUSED = "The request you have made requires authentication."


def new_secret() -> str:
    """A generated secret, as Keystone's (url-safe, 64 bytes of randomness)."""
    return secrets.token_urlsafe(64)


def create(
    session: Session,
    *,
    user_id: str,
    project_id: str,
    name: str,
    description: str | None,
    secret: str,
    roles: Sequence[str],
    expires_at: float | None,
    unrestricted: bool,
) -> ApplicationCredential:
    """A new credential (its secret hashed); 403 for a role the user lacks on the
    project, 409 when the user already has a credential of that name."""
    held = set(roles_of(session, user_id, project_id))
    missing = sorted(set(roles) - held)
    if missing:
        raise Forbidden(
            f"The user does not hold the role(s) {', '.join(missing)} on project {project_id}:"
            " an application credential can only carry roles its user has."
        )
    taken = select(ApplicationCredential.id).where(
        ApplicationCredential.user_id == user_id, ApplicationCredential.name == name
    )
    if session.scalar(taken) is not None:
        raise Conflict(
            "Conflict occurred attempting to store application_credential - Duplicate entry"
            f" {name}: this user already has an application credential of that name."
        )
    cred = ApplicationCredential(
        id=uuid.uuid4().hex,
        name=name,
        user_id=user_id,
        project_id=project_id,
        description=description,
        secret_hash=hash_password(secret),
        roles=sorted(set(roles)),
        expires_at=expires_at,
        unrestricted=unrestricted,
    )
    session.add(cred)
    session.flush()
    return cred


def find(session: Session, user_id: str, cred_id: str) -> ApplicationCredential:
    """The user's credential `cred_id`, or 404."""
    cred = session.get(ApplicationCredential, cred_id)
    if cred is None or cred.user_id != user_id:
        raise NotFound(f"Could not find application credential: {cred_id}.")
    return cred


def listing(session: Session, user_id: str, name: str | None = None) -> list[ApplicationCredential]:
    query = select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
    if name is not None:
        query = query.where(ApplicationCredential.name == name)
    return list(session.scalars(query.order_by(ApplicationCredential.name)))


def delete(session: Session, cred: ApplicationCredential) -> None:
    """Remove the credential; its tokens are refused from now on, in every process."""
    session.delete(cred)
    identity_changed(session)


def authenticate(
    session: Session,
    *,
    cred_id: str | None,
    name: str | None,
    user_id: str | None,
    user_name: str | None,
    domain: str | None,
    secret: str,
) -> tuple[ApplicationCredential, User]:
    """The credential these fields name and its (enabled) user, if the secret matches
    and it has not expired; Unauthorized otherwise."""
    cred: ApplicationCredential | None = None
    if cred_id:
        cred = session.get(ApplicationCredential, cred_id)
    elif name:
        if not user_id and user_name:
            query = select(User.id).where(User.name == user_name)
            if domain:
                query = query.where(User.domain_id == domain)
            user_id = session.scalar(query)
        if user_id:
            cred = session.scalar(
                select(ApplicationCredential).where(
                    ApplicationCredential.user_id == user_id, ApplicationCredential.name == name
                )
            )
    if cred is None or not password_matches(secret, cred.secret_hash):
        raise Unauthorized(_REFUSED)
    if cred.expires_at is not None and cred.expires_at <= time.time():
        raise Unauthorized(_REFUSED)
    user = session.get(User, cred.user_id)
    if user is None or not user.enabled:
        raise Unauthorized(_REFUSED)
    return cred, user


def check(
    session: Session, cred_id: str, user_id: str, project_id: str
) -> tuple[ApplicationCredential, list[str]]:
    """(credential, roles the token gets) for a token of `user_id` on `project_id`
    got with credential `cred_id`; DelegationInvalid if it may no longer act."""
    cred = session.get(ApplicationCredential, cred_id)
    if cred is None:
        raise DelegationInvalid(
            f"The application credential of this token ({cred_id}) no longer exists."
        )
    if cred.user_id != user_id or cred.project_id != project_id:
        raise DelegationInvalid("The token does not match its application credential.")
    if cred.expires_at is not None and cred.expires_at <= time.time():
        raise DelegationInvalid(f"The application credential {cred_id} has expired.")
    held = set(roles_of(session, user_id, project_id))
    if not cred.roles or not set(cred.roles) <= held:
        raise DelegationInvalid(
            f"The user no longer holds the roles of application credential {cred_id}."
        )
    return cred, implied(cred.roles)
