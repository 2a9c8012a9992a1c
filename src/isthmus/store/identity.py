"""Identity in the store: projects, users, role assignments, password checks,
and what a new project starts with (its `default` security group).

Every change to an existing user, project or role assignment goes through a
function here, which also tells the token validation (store/token_revocation.py):
disabling, deleting or a new password kills the user's tokens issued until then,
revoking a role kills the user's tokens on that project, disabling or deleting a
project kills its tokens; any other change (a name, a new role) makes every
process read the identity again before it trusts a token."""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from isthmus.errors import Conflict, NotFound, Unauthorized
from isthmus.store import repo
from isthmus.store.tables import ApplicationCredential, Project, RoleAssignment, Trust, User
from isthmus.store.token_revocation import identity_changed, revoke_tokens

ROLES = ("admin", "member", "reader")
# stable ids, so a role is the same object in every token and listing
ROLE_IDS = {role: uuid.uuid5(uuid.NAMESPACE_URL, f"isthmus:role:{role}").hex for role in ROLES}


def hash_password(password: str) -> bytes:
    salt = os.urandom(16)
    return salt + hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)


def password_matches(password: str, stored: bytes) -> bool:
    salt, digest = stored[:16], stored[16:]
    candidate = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate, digest)


def create_project(
    session: Session,
    name: str,
    description: str = "",
    domain_id: str = "default",
    project_id: str | None = None,
) -> Project:
    """A project, with its `default` security group."""
    if session.scalar(select(Project).where(Project.name == name, Project.domain_id == domain_id)):
        raise Conflict(f"Conflict occurred attempting to store project - Duplicate entry {name}.")
    project = Project(
        id=project_id or uuid.uuid4().hex,
        name=name,
        domain_id=domain_id,
        description=description,
        enabled=True,
    )
    session.add(project)
    session.flush()
    create_default_security_group(session, project.id)
    return project


def create_default_security_group(session: Session, project_id: str) -> None:
    """Neutron's default group: egress open, ingress only from members of the group."""
    group = repo.add(
        session,
        "security_group",
        project_id=project_id,
        name="default",
        status="ACTIVE",
        spec={"description": "Default security group", "stateful": True},
    )
    for direction, ethertype in (
        ("egress", "IPv4"),
        ("egress", "IPv6"),
        ("ingress", "IPv4"),
        ("ingress", "IPv6"),
    ):
        remote_group = group.id if direction == "ingress" else None
        repo.add(
            session,
            "security_group_rule",
            project_id=project_id,
            parent_id=group.id,
            status="ACTIVE",
            spec={
                "direction": direction,
                "ethertype": ethertype,
                "remote_group_id": remote_group,
                "protocol": None,
                "port_range_min": None,
                "port_range_max": None,
                "remote_ip_prefix": None,
                "description": "",
            },
        )


def create_user(
    session: Session,
    name: str,
    password: str,
    *,
    default_project_id: str | None,
    email: str | None = None,
    domain_id: str = "default",
) -> User:
    if session.scalar(select(User).where(User.name == name, User.domain_id == domain_id)):
        raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry {name}.")
    user = User(
        id=uuid.uuid4().hex,
        name=name,
        domain_id=domain_id,
        password_hash=hash_password(password),
        default_project_id=default_project_id,
        email=email,
        enabled=True,
    )
    session.add(user)
    session.flush()
    return user


def assign_role(session: Session, user_id: str, project_id: str, role: str) -> None:
    if role not in ROLES:
        raise NotFound(f"Could not find role: {role}.")
    if session.get(RoleAssignment, (user_id, project_id, role)) is None:
        session.add(RoleAssignment(user_id=user_id, project_id=project_id, role=role))
        identity_changed(session)


def revoke_role(session: Session, assignment: RoleAssignment) -> None:
    """Remove a role assignment; the user's tokens on that project die, and so do the
    user's application credentials on it (as Keystone deletes them)."""
    session.delete(assignment)
    session.execute(
        delete(ApplicationCredential).where(
            ApplicationCredential.user_id == assignment.user_id,
            ApplicationCredential.project_id == assignment.project_id,
        )
    )
    revoke_tokens(session, user_id=assignment.user_id, project_id=assignment.project_id)


USER_FIELDS = ("name", "email", "enabled", "default_project_id")
PROJECT_FIELDS = ("name", "description", "enabled")


def update_user(session: Session, user: User, changes: dict[str, Any]) -> None:
    """Apply USER_FIELDS and `password` from `changes`."""
    was_enabled = user.enabled
    for key in USER_FIELDS:
        if key in changes:
            setattr(user, key, changes[key])
    if changes.get("password"):
        set_password(session, user, str(changes["password"]))
    elif was_enabled and not user.enabled:
        revoke_tokens(session, user_id=user.id)
    else:
        identity_changed(session)


def set_password(session: Session, user: User, password: str) -> None:
    """A new password: every token the user got until now dies (tokens issued
    after this change live)."""
    user.password_hash = hash_password(password)
    revoke_tokens(session, user_id=user.id)


def delete_user(session: Session, user: User) -> None:
    """Remove the user, its role assignments, the trusts it gave or received and its
    application credentials; its tokens die."""
    session.execute(delete(RoleAssignment).where(RoleAssignment.user_id == user.id))
    session.execute(
        delete(Trust).where(or_(Trust.trustor_user_id == user.id, Trust.trustee_user_id == user.id))
    )
    session.execute(delete(ApplicationCredential).where(ApplicationCredential.user_id == user.id))
    session.delete(user)
    revoke_tokens(session, user_id=user.id)


def update_project(session: Session, project: Project, changes: dict[str, Any]) -> None:
    """Apply PROJECT_FIELDS from `changes`; disabling kills the project's tokens."""
    was_enabled = project.enabled
    for key in PROJECT_FIELDS:
        if key in changes:
            setattr(project, key, changes[key])
    if was_enabled and not project.enabled:
        revoke_tokens(session, project_id=project.id)
    else:
        identity_changed(session)


def delete_project(session: Session, project: Project) -> None:
    """Remove the project, its role assignments, the trusts on it and the application
    credentials for it; its tokens die."""
    session.execute(delete(RoleAssignment).where(RoleAssignment.project_id == project.id))
    session.execute(delete(Trust).where(Trust.project_id == project.id))
    session.execute(
        delete(ApplicationCredential).where(ApplicationCredential.project_id == project.id)
    )
    session.delete(project)
    revoke_tokens(session, project_id=project.id)


def roles_of(session: Session, user_id: str, project_id: str) -> list[str]:
    """Roles on the project, with the implied ones (admin > member > reader)."""
    direct = set(
        session.scalars(
            select(RoleAssignment.role).where(
                RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id
            )
        )
    )
    if "admin" in direct:
        direct |= {"member", "reader"}
    if "member" in direct:
        direct.add("reader")
    return sorted(direct)


def authenticate(
    session: Session, user_name: str | None, user_id: str | None, domain: str | None, password: str
) -> User:
    """The user these credentials name, or Unauthorized (same message either way)."""
    query = select(User)
    if user_id:
        query = query.where(User.id == user_id)
    else:
        query = query.where(User.name == (user_name or ""))
        if domain:
            query = query.where(User.domain_id == domain)
    user = session.scalar(query)
    if user is None or not user.enabled or not password_matches(password, user.password_hash):
        raise Unauthorized("The request you have made requires authentication.")
    return user


def find_project(
    session: Session, *, project_id: str | None, name: str | None, domain: str | None
) -> Project:
    if project_id:
        project = session.get(Project, project_id)
    else:
        query = select(Project).where(Project.name == (name or ""))
        if domain:
            query = query.where(Project.domain_id == domain)
        project = session.scalar(query)
    if project is None or not project.enabled:
        raise Unauthorized(f"Could not find project: {project_id or name}.")
    return project
