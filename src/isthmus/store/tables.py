"""SQL tables of Isthmus (SQLAlchemy 2 declarative). Alembic migrations under
`migrations/` create them; `Database.migrate()` runs those.

- `resources`: the intent of every tenant-visible resource, one row each, with a
  `generation` bumped by every change. Kind-specific fields live in `spec`; the
  fields the API filters and pages on have their own indexed columns.
- `bindings`: one resource in one site (site-side id, generation applied, observed
  status, last error, and `drifted_at` once the site lost it outside Isthmus).
- `work`: the queue the engine drains; one row per (resource, site) to reconcile,
  with the progress of the data copy an item is making (image copies).
- `sites`, `ip_allocations`, `mac_allocations`, identity and quota tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Resource(Base):
    """Intent: the desired state of one tenant-visible resource."""

    __tablename__ = "resources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(32), default="")
    # the site a single-site resource (server, volume, snapshot, port) is placed in
    site: Mapped[str | None] = mapped_column(String(64))
    # network for subnets and ports, volume for snapshots, group for rules
    parent_id: Mapped[str | None] = mapped_column(String(36))
    # server or router a port/volume is attached to
    device_id: Mapped[str | None] = mapped_column(String(36))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    # True once a delete was accepted; the row goes when no binding is left
    deleting: Mapped[bool] = mapped_column(Boolean, default=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    observed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_resources_kind_project_created", "kind", "project_id", "created_at", "id"),
        Index("ix_resources_kind_created", "kind", "created_at", "id"),
        Index("ix_resources_kind_parent", "kind", "parent_id"),
        Index("ix_resources_kind_device", "kind", "device_id"),
        Index("ix_resources_kind_site", "kind", "site"),
        Index("ix_resources_kind_name", "kind", "name"),
    )


class Binding(Base):
    """One resource realised in one site."""

    __tablename__ = "bindings"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    site_resource_id: Mapped[str | None] = mapped_column(String(255))
    applied_generation: Mapped[int] = mapped_column(Integer, default=0)
    observed_status: Mapped[str] = mapped_column(String(64), default="")
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # set when the object vanished from the site outside Isthmus (engine/drift.py):
    # the engine never recreates a drifted binding
    drifted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_bindings_site_kind", "site", "kind"),)


class Work(Base):
    """A request to reconcile one resource in one site; unique per pair.

    `seq` is bumped by every new request for the pair, so a worker that finishes
    an older request leaves the row for another pass instead of dropping it.
    """

    __tablename__ = "work"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer, default=1)
    not_before: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # the prerequisite this item waits for in its site; its arrival wakes the item
    waiting_on: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[float] = mapped_column(Float, default=0.0)
    # how far the data copy this item is making in its site is (image data; set by
    # engine/progress.py while the driver copies, cleared when the copy ends)
    progress_done: Mapped[int | None] = mapped_column(BigInteger)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    progress_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("resource_id", "site", name="uq_work_resource_site"),
        Index("ix_work_waiting_on", "waiting_on"),
        Index("ix_work_ready", "not_before", "lease_until"),
        Index("ix_work_site", "site"),
    )


class Site(Base):
    """A cloud Isthmus drives; its availability zone is its name."""

    __tablename__ = "sites"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    driver: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    health: Mapped[str] = mapped_column(String(16), default="unknown")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime)
    capacity: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_plane: Mapped[str] = mapped_column(String(64), default="unknown")
    usage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # what placement has promised in this site (servers accepted, not yet gone)
    allocated: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # what the last sweep (engine/drift.py) found in the site that Isthmus did not
    # make: {"counts": {kind: n}, "items": [{kind, id, name}], "error": ...}
    foreign_objects: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    swept_at: Mapped[datetime | None] = mapped_column(DateTime)
    # why an admin disabled the site's scheduling (Nova's service disabled_reason)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))


class ServerUsage(Base):
    """What a deleted server ran (Nova's terminated instances, for
    os-simple-tenant-usage): written when its delete is accepted
    (intent/servers.delete_server), kept after its resource row is purged."""

    __tablename__ = "server_usage"

    server_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    # the server's flavor copy (name, vcpus, ram, disk, ephemeral)
    flavor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class IpAllocation(Base):
    """A fixed IP taken in a subnet (global IPAM: unique across every site)."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(String(36), index=True)


class MacAllocation(Base):
    """A MAC address taken by a port (unique across Isthmus)."""

    __tablename__ = "mac_allocations"

    mac_address: Mapped[str] = mapped_column(String(17), primary_key=True)
    port_id: Mapped[str] = mapped_column(String(36), index=True)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(String(64), default="default")
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_project_name"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(String(64), default="default")
    password_hash: Mapped[bytes] = mapped_column(LargeBinary)
    default_project_id: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_user_name"),)


class RoleAssignment(Base):
    __tablename__ = "role_assignments"

    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class Quota(Base):
    """A per-project limit overriding the default for one resource."""

    __tablename__ = "quotas"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class Setting(Base):
    """Service-wide key/value settings (token keys live in `<data-dir>/token-keys/`)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RevokedToken(Base):
    """A token revoked before its expiry (DELETE /identity/v3/auth/tokens)."""

    __tablename__ = "revoked_tokens"

    audit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)


class RevocationEvent(Base):
    """Keystone's revocation event: every token of `user_id` (on `project_id` only,
    if both are set), or of `project_id`, issued at or before `issued_before` is
    dead. Recorded when a user is disabled, deleted or changes password, a role
    is revoked, a project is disabled or deleted (store/token_revocation.py)."""

    __tablename__ = "revocation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), index=True)
    issued_before: Mapped[float] = mapped_column(Float)


class IdentityRevision(Base):
    """One row (id 1) whose counter every identity change bumps in its own
    transaction: a process keeps validated tokens while the counter stands still."""

    __tablename__ = "identity_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class Trust(Base):
    """Keystone's OS-TRUST trust: the trustor delegates `roles` (names) on `project_id`
    to the trustee, optionally impersonating, until `expires_at` (epoch seconds) and
    for `remaining_uses` token issues (None: unlimited). store/trusts.py."""

    __tablename__ = "trusts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trustor_user_id: Mapped[str] = mapped_column(String(64), index=True)
    trustee_user_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    impersonation: Mapped[bool] = mapped_column(Boolean, default=False)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[float | None] = mapped_column(Float)
    remaining_uses: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)


class ApplicationCredential(Base):
    """Keystone's application credential: a secret (kept as a salted scrypt hash) that
    gets a token of `user_id` on `project_id` with `roles` (names), until `expires_at`.
    store/application_credentials.py."""

    __tablename__ = "application_credentials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[float | None] = mapped_column(Float)
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_app_cred_name"),)
