"""Who is calling: the request context built from the caller's token, and the
policy every endpoint applies (a member sees its project; admin sees all).

The token comes in `X-Auth-Token` (how OpenStack clients send it) or, for every
endpoint alike, as `Authorization: Bearer <token>` (how Prometheus and other
generic HTTP clients send one); `X-Auth-Token` wins when both are there."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from isthmus.api.identity.tokens import TokenData
from isthmus.errors import Forbidden, Unauthorized


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
    service = request.app.state.service
    data = service.verify_token(token)
    if not data.project_id and not request.url.path.startswith("/identity/"):
        raise Unauthorized(
            "The request you have made requires authentication: a token scoped to a project."
        )
    return RequestContext(data)
