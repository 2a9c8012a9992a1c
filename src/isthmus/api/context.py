"""Who is calling: the request context built from the caller's token, and the
policy every endpoint applies (a member sees its project; admin sees all).

The token comes in `X-Auth-Token` (how OpenStack clients send it) or, for every
endpoint alike, as `Authorization: Bearer <token>` (how Prometheus and other
generic HTTP clients send one); `X-Auth-Token` wins when both are there.

What the API needs of the running service (its database, site drivers, config,
tokens, and a way to wake the engine) is `ServiceApi`: the process
(isthmus/service.py, above api/) puts its `Service` on `app.state.service`, and
handlers reach it with `service_of(request)`. api/ never imports the service
module itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import Request

from isthmus.api.identity.tokens import Delegation, TokenData
from isthmus.config import Config, SiteConfig
from isthmus.engine.registry import SiteRegistry
from isthmus.errors import Forbidden, Unauthorized
from isthmus.store.db import Database
from isthmus.store.tables import Project, User


class ServiceApi(Protocol):
    """The running service as the API sees it (isthmus.service.Service is one)."""

    config: Config
    db: Database
    sites: SiteRegistry
    run_engine: bool

    @property
    def images_dir(self) -> Path:
        """Where image data is kept (made on first use)."""
        ...

    def wake(self) -> None:
        """Intent changed: let the engine look now."""
        ...

    def site_config(self, site: SiteConfig) -> dict[str, Any]:
        """A site's config as it is stored (service-wide settings applied)."""
        ...

    def issue_token(
        self,
        user: User,
        project: Project | None,
        roles: Sequence[str],
        methods: Sequence[str],
        expires_at: float | None = None,
        delegation: Delegation | None = None,
    ) -> tuple[str, TokenData]:
        """A new token for `user` on `project` (None: unscoped) and what it says
        (acting through a trust or an application credential: `delegation`)."""
        ...

    def verify_token(self, token: str, *, subject: bool = False) -> TokenData:
        """What a valid token says; Unauthorized (NotFound for a subject token) if not."""
        ...

    def revoke_token(self, data: TokenData) -> None:
        """Revoke one token until it would have expired."""
        ...


def service_of(request: Request) -> ServiceApi:
    """The service whose API answers `request` (set by api/app.py's create_app)."""
    service: ServiceApi = request.app.state.service
    return service


@dataclass(frozen=True)
class RequestContext:
    token: TokenData

    @property
    def user_id(self) -> str:
        return self.token.user_id

    @property
    def project_id(self) -> str:
        return self.token.project_id

    @property
    def is_admin(self) -> bool:
        return "admin" in self.token.roles

    def scope(self, all_projects: bool = False) -> str | None:
        """The project to filter on: the caller's, or None for admin asking for all."""
        return None if (all_projects and self.is_admin) else self.project_id

    def visible_project(self) -> str | None:
        """For single-resource reads and writes: admin reaches any project."""
        return None if self.is_admin else self.project_id

    def require_admin(self, what: str = "this action") -> None:
        if not self.is_admin:
            raise Forbidden(f"Policy does not allow {what} to be performed.")

    def require_member(self, what: str = "this action") -> None:
        if not ({"admin", "member"} & set(self.token.roles)):
            raise Forbidden(f"Policy does not allow {what} to be performed: reader role.")


def request_token(request: Request) -> str | None:
    """The token the request carries: `X-Auth-Token`, else a Bearer credential."""
    token = request.headers.get("X-Auth-Token")
    if token:
        return token
    scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    return None


def get_context(request: Request) -> RequestContext:
    """FastAPI dependency: the caller, or 401."""
    token = request_token(request)
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    data = service_of(request).verify_token(token)
    if not data.project_id and not request.url.path.startswith("/identity/"):
        raise Unauthorized(
            "The request you have made requires authentication: a token scoped to a project."
        )
    return RequestContext(data)
