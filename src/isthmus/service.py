"""The running service: database, site drivers, engine and health monitor, and
the first-start bootstrap (schema, admin and demo identities, flavors, a small
default image, the configured sites). `isthmus up` builds one and serves its API.

Files: the data dir is made 0700 and the SQLite database files 0600 when the
service is built (fixing a data dir an older version left open); the token keys
live in `<data-dir>/token-keys/` (api/identity/token_keys.py), secrets.yaml is 0600.
Tokens: `issue_token` and `verify_token` (api/identity/tokens.py, api/identity/token_validation.py).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, select

from isthmus.api.identity.token_keys import KEY_DIR_NAME, KeyRepository
from isthmus.api.identity.token_validation import TokenValidator
from isthmus.api.identity.tokens import Delegation, TokenCodec, TokenData
from isthmus.api.volume.common import DEFAULT_VOLUME_TYPE
from isthmus.config import Config, SiteConfig
from isthmus.engine.health import HealthMonitor
from isthmus.engine.registry import SiteRegistry
from isthmus.engine.worker import Engine, EngineOptions
from isthmus.errors import BadRequest
from isthmus.private_files import secure_data_dir, write_private
from isthmus.store import identity, repo
from isthmus.store.db import Database
from isthmus.store.tables import Project, Resource, RevokedToken, Site, User
from isthmus.store.token_revocation import identity_changed

log = logging.getLogger(__name__)

FLAVORS = (  # id, name, vcpus, ram MiB, disk GiB -- Nova's classic m1 set
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
)
DEFAULT_IMAGE_NAME = "isthmus-minimal"
DEFAULT_IMAGE_BYTES = b"ISTHMUS-MINIMAL-IMAGE\n" + bytes(64 * 1024 - 22)


class Service:
    """Everything one Isthmus process runs; `start()` starts engine and health."""

    def __init__(self, config: Config, run_engine: bool = True) -> None:
        self.config = config
        secure_data_dir(config.data_dir, config.database_url)
        self.db = Database(config.database_url)
        self.sites = SiteRegistry(self.db, config.data_dir)
        self.engine = Engine(self.db, self.sites, EngineOptions(workers=config.workers))
        self.health = HealthMonitor(
            self.db,
            self.sites,
            interval=config.health_interval,
            sweep_interval=config.sweep_interval,
        )
        self.run_engine = run_engine
        self.token_keys = KeyRepository(config.data_dir / KEY_DIR_NAME)
        self.tokens = TokenCodec(self.token_keys, config.token_expiration)
        self.token_validator = TokenValidator(self.db, self.tokens)
        self.passwords: dict[str, str] = {}

    @property
    def images_dir(self) -> Path:
        path = self.config.data_dir / "images"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- lifecycle -----------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Schema, token keys, identities, flavors, default image, sites. Idempotent."""
        self.db.migrate()
        self.token_keys.setup()
        self.passwords = self._bootstrap_identity()
        self._bootstrap_flavors_and_image()
        self._bootstrap_sites()

    def start(self) -> None:
        self.health.check_all()
        self.health.start()
        if self.run_engine:
            self.engine.start()

    def stop(self) -> None:
        self.engine.stop()
        self.health.stop()
        self.sites.close()
        self.db.dispose()

    def issue_token(
        self,
        user: User,
        project: Project | None,
        roles: Sequence[str],
        methods: Sequence[str],
        expires_at: float | None = None,
        delegation: Delegation | None = None,
    ) -> tuple[str, TokenData]:
        """A new token for `user` on `project` (None: unscoped) and what it says;
        it expires after `token_expiration`, or at `expires_at` if that is sooner.
        With a trust, `user` is the token's user (the trustor when impersonating)
        and the token names the trustee, who authenticated."""
        trust_id = delegation.trust_id if delegation else ""
        token, claims = self.tokens.issue(
            delegation.trustee_user_id if delegation and trust_id else user.id,
            project.id if project else "",
            tuple(methods),
            expires_at,
            trust_id=trust_id,
            app_cred_id=delegation.app_cred_id if delegation else "",
        )
        data = TokenData(
            user_id=user.id,
            user_name=user.name,
            project_id=claims.project_id,
            project_name=project.name if project else "",
            roles=tuple(roles),
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
            audit_id=claims.audit_id,
            methods=claims.methods,
            delegation=delegation,
        )
        return token, data

    def verify_token(self, token: str, *, subject: bool = False) -> TokenData:
        """What a valid token says (current names and roles); Unauthorized, or
        NotFound for a subject token, if it is not (api/identity/token_validation.py)."""
        return self.token_validator.verify(token, subject=subject)

    def revoke_token(self, data: TokenData) -> None:
        """Revoke one token until it would have expired (expired entries are dropped)."""
        with self.db.session() as session:
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at < time.time()))
            if session.get(RevokedToken, data.audit_id) is None:
                session.add(RevokedToken(audit_id=data.audit_id, expires_at=data.expires_at))
                identity_changed(session)

    def wake(self) -> None:
        """Intent changed: let the engine look now."""
        self.engine.wake()

    # -- bootstrap pieces -------------------------------------------------------------------

    def _secrets_file(self) -> Path:
        return self.config.data_dir / "secrets.yaml"

    def _bootstrap_identity(self) -> dict[str, str]:
        path = self._secrets_file()
        stored: dict[str, Any] = yaml.safe_load(path.read_text()) if path.exists() else {}
        passwords = {
            name: stored.get(name) or secrets.token_urlsafe(12) for name in ("admin", "demo")
        }
        with self.db.session() as session:
            for user_name, project_name, role in (
                ("admin", "admin", "admin"),
                ("demo", "demo", "member"),
            ):
                project = session.scalar(select(Project).where(Project.name == project_name))
                if project is None:
                    project = identity.create_project(
                        session, project_name, f"{project_name} project"
                    )
                user = session.scalar(select(User).where(User.name == user_name))
                if user is None:
                    user = identity.create_user(
                        session, user_name, passwords[user_name], default_project_id=project.id
                    )
                elif not identity.password_matches(passwords[user_name], user.password_hash):
                    identity.set_password(session, user, passwords[user_name])
                identity.assign_role(session, user.id, project.id, role)
        write_private(path, yaml.safe_dump(passwords))
        return passwords

    def _bootstrap_flavors_and_image(self) -> None:
        with self.db.session() as session:
            for flavor_id, name, vcpus, ram, disk in FLAVORS:
                if session.get(Resource, flavor_id) is None:
                    repo.add(
                        session,
                        "flavor",
                        project_id=None,
                        name=name,
                        status="ACTIVE",
                        resource_id=flavor_id,
                        spec={
                            "vcpus": vcpus,
                            "ram": ram,
                            "disk": disk,
                            "swap": 0,
                            "ephemeral": 0,
                            "rxtx_factor": 1.0,
                            "is_public": True,
                            "extra_specs": {},
                            "description": None,
                        },
                    )
            default_type = session.scalar(
                select(Resource.id).where(
                    Resource.kind == "volume_type", Resource.name == DEFAULT_VOLUME_TYPE
                )
            )
            if default_type is None:
                repo.add(
                    session,
                    "volume_type",
                    project_id=None,
                    name=DEFAULT_VOLUME_TYPE,
                    status="available",
                    spec={
                        "description": "Default Volume Type",
                        "is_public": True,
                        "extra_specs": {},
                    },
                )
            exists = session.scalar(
                select(Resource.id).where(
                    Resource.kind == "image", Resource.name == DEFAULT_IMAGE_NAME
                )
            )
            if exists is None:
                image = repo.add(
                    session, "image", project_id=None, name=DEFAULT_IMAGE_NAME, status="active"
                )
                data_path = self.images_dir / image.id
                data_path.write_bytes(DEFAULT_IMAGE_BYTES)
                image.spec = {
                    "visibility": "public",
                    "disk_format": "raw",
                    "container_format": "bare",
                    "size": len(DEFAULT_IMAGE_BYTES),
                    "data_path": str(data_path),
                    "checksum": hashlib.md5(DEFAULT_IMAGE_BYTES, usedforsecurity=False).hexdigest(),
                    "os_hash_algo": "sha512",
                    "os_hash_value": hashlib.sha512(DEFAULT_IMAGE_BYTES).hexdigest(),
                    "min_disk": 0,
                    "min_ram": 0,
                    "protected": False,
                    "tags": [],
                    "properties": {},
                    "owner": None,
                }

    def _bootstrap_sites(self) -> None:
        with self.db.session() as session:
            if self.config.site_mode:
                others = session.scalars(
                    select(Site.name).where(Site.name != self.config.site_name)
                ).all()
                if others:
                    raise BadRequest(
                        f"Site mode serves exactly one site ({self.config.site_name}), but the"
                        f" data dir {self.config.data_dir} already has sites"
                        f" {', '.join(sorted(others))}: use another data dir."
                    )
            have_any = session.scalar(select(Site.name).limit(1)) is not None
            if have_any and not self.config.sites:
                return  # sites added at run time are kept; config adds only missing ones
            for site in self.config.default_sites():
                if session.get(Site, site.name) is None:
                    session.add(
                        Site(
                            name=site.name,
                            driver=site.driver,
                            config=self.site_config(site),
                            enabled=True,
                            health="unknown",
                            created_at=repo.utcnow(),
                        )
                    )

    def site_config(self, site: SiteConfig) -> dict[str, Any]:
        """A site's stored config (configured at start or added at run time);
        `fabric: embedded` asks every embedded site for the kernel data plane (a
        site's own `data_plane` setting wins)."""
        config = dict(site.config)
        if self.config.fabric == "embedded" and site.driver == "local":
            config.setdefault("data_plane", True)
        return config
