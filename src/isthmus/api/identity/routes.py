"""Keystone v3 (the subset clients and Tempest use): version discovery, password
and token auth with project scope, token validation, projects, users, roles and
role assignments (those two in identity_roles); trust-scoped tokens
(api/identity/trusts.py) and the application_credential method
(api/identity/application_credentials.py). Identity management is
admin-only; a token can always read itself and the user can list their own
projects. Domains, services, endpoints and regions (read-only views of the fixed
layout) are in identity_layout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from isthmus.api.catalog import base_url_of, catalog
from isthmus.api.context import RequestContext, get_context
from isthmus.api.identity.application_credentials import app_cred_auth
from isthmus.api.identity.tokens import Delegation, TokenData
from isthmus.api.identity.trusts import trust_scope
from isthmus.errors import BadRequest, Forbidden, NotFound, Unauthorized
from isthmus.store import identity as ids
from isthmus.store.tables import Project, RoleAssignment, User

router = APIRouter(prefix="/identity")
DOMAIN = {"id": "default", "name": "Default"}


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _domain_id(ref: dict[str, Any] | None) -> str | None:
    if not ref:
        return None
    if ref.get("id"):
        return str(ref["id"])
    name = str(ref.get("name", ""))
    return "default" if name.lower() == "default" else name


def _version(request: Request) -> dict[str, Any]:
    base = base_url_of(request)
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


@router.get("")
@router.get("/")
def versions(request: Request) -> JSONResponse:
    """300 Multiple Choices, as Keystone answers its version list."""
    return JSONResponse({"versions": {"values": [_version(request)]}}, status_code=300)


@router.get("/v3")
@router.get("/v3/")
def version(request: Request) -> dict[str, Any]:
    return {"version": _version(request)}


def _token_body(request: Request, data: TokenData) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": list(data.methods),
        "user": {
            "id": data.user_id,
            "name": data.user_name,
            "domain": DOMAIN,
            "password_expires_at": None,
        },
        "audit_ids": [data.audit_id],
        "issued_at": _time(data.issued_at),
        "expires_at": _time(data.expires_at),
    }
    delegation = data.delegation
    if delegation is not None and delegation.trust_id:
        body["OS-TRUST:trust"] = {
            "id": delegation.trust_id,
            "impersonation": delegation.impersonation,
            "trustee_user": {"id": delegation.trustee_user_id},
            "trustor_user": {"id": delegation.trustor_user_id},
        }
    if delegation is not None and delegation.app_cred_id:
        body["application_credential"] = {
            "id": delegation.app_cred_id,
            "name": delegation.app_cred_name,
            "restricted": not delegation.unrestricted,
        }
    if data.project_id:  # an unscoped token has no project, roles or catalog (as in Keystone)
        body.update(
            {
                "project": {"id": data.project_id, "name": data.project_name, "domain": DOMAIN},
                "is_domain": False,
                "roles": [{"id": ids.ROLE_IDS[r], "name": r} for r in data.roles],
                "catalog": catalog(base_url_of(request), data.project_id),
            }
        )
    return {"token": body}


def _object(value: Any, field: str, *strings: str) -> dict[str, Any]:
    """`value` as an object (absent: {}) whose `strings` fields, when given, are
    strings: Keystone's auth schema, 400 naming the field otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field '{field}': it must be an object.")
    for key in strings:
        if value.get(key) is not None and not isinstance(value[key], str):
            raise BadRequest(f"Invalid input for field '{field}.{key}': it must be a string.")
    return value


def _check_auth(auth: dict[str, Any]) -> None:
    """The shapes of an auth request (keystone/auth/schema.py) before any lookup."""
    identity = _object(auth["identity"], "auth.identity")
    methods = identity.get("methods")
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise BadRequest("Invalid input for field 'auth.identity.methods': a list of strings.")
    password = _object(identity.get("password"), "auth.identity.password")
    user = _object(password.get("user"), "auth.identity.password.user", "id", "name", "password")
    _object(user.get("domain"), "auth.identity.password.user.domain", "id", "name")
    _object(identity.get("token"), "auth.identity.token", "id")
    scope = _object(auth.get("scope"), "auth.scope")
    project = _object(scope.get("project"), "auth.scope.project", "id", "name")
    _object(project.get("domain"), "auth.scope.project.domain", "id", "name")
    _object(scope.get("OS-TRUST:trust"), "auth.scope.OS-TRUST:trust", "id")
    credential = _object(
        identity.get("application_credential"),
        "auth.identity.application_credential",
        "id",
        "name",
        "secret",
    )
    cred_user = _object(
        credential.get("user"), "auth.identity.application_credential.user", "id", "name"
    )
    _object(
        cred_user.get("domain"), "auth.identity.application_credential.user.domain", "id", "name"
    )


@router.post("/v3/auth/tokens", status_code=201)
def issue_token(request: Request, response: Response, body: dict[str, Any]) -> dict[str, Any]:
    service = request.app.state.service
    auth = body.get("auth")
    if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
        raise BadRequest("Expecting to find identity in auth.")
    _check_auth(auth)
    methods = auth["identity"].get("methods") or []
    scope = auth.get("scope") or {}
    if scope and not isinstance(scope, dict):
        raise BadRequest("Invalid scope.")
    with service.db.session() as session:
        delegation: Delegation | None = None
        project: Project | None
        if "application_credential" in methods:
            user, project, roles, delegation, expires_at = app_cred_auth(
                session, auth["identity"], scope
            )
            token, data = service.issue_token(
                user, project, roles, ["application_credential"], expires_at, delegation
            )
            response.headers["X-Subject-Token"] = token
            return _token_body(request, data)
        if "password" in methods:
            user_ref = (auth["identity"].get("password") or {}).get("user") or {}
            user = ids.authenticate(
                session,
                user_ref.get("name"),
                user_ref.get("id"),
                _domain_id(user_ref.get("domain")),
                str(user_ref.get("password", "")),
            )
            expires_at = None
        elif "token" in methods:  # a new token from a valid one ends when that one ends
            old = service.verify_token(str((auth["identity"].get("token") or {}).get("id", "")))
            if old.delegation is not None:
                raise Forbidden(
                    "A token got through a trust or an application credential cannot be used"
                    " to get another token: authenticate again with the trust or credential."
                )
            user = session.get(User, old.user_id)
            if user is None or not user.enabled:
                raise Unauthorized("The request you have made requires authentication.")
            expires_at = old.expires_at
        else:
            raise Unauthorized(
                "Unsupported authentication method; use password, token or application_credential."
            )
        if "domain" in scope or "system" in scope:
            raise Unauthorized("Only project-scoped tokens are supported by Isthmus.")
        if "OS-TRUST:trust" in scope:
            if len(scope) != 1:
                raise BadRequest("Invalid input for field 'auth.scope': a trust is the only scope.")
            user, project, roles, delegation, expires_at = trust_scope(
                session, user, scope["OS-TRUST:trust"], expires_at
            )
        else:
            project, roles = _scope_of(session, user, scope.get("project"))
        used = [m for m in ("password", "token") if m in methods]
        token, data = service.issue_token(user, project, roles, used, expires_at, delegation)
    response.headers["X-Subject-Token"] = token
    return _token_body(request, data)


def _scope_of(
    session: Any, user: User, project_ref: dict[str, Any] | None
) -> tuple[Project | None, list[str]]:
    """The project a new token is scoped to and the user's roles on it. Without an
    explicit scope, Keystone scopes to the user's default project if the user has a
    role there and otherwise issues an unscoped token (no project, roles or catalog;
    only good for the identity API, e.g. to list the user's projects and rescope)."""
    if project_ref:
        project = ids.find_project(
            session,
            project_id=project_ref.get("id"),
            name=project_ref.get("name"),
            domain=_domain_id(project_ref.get("domain")),
        )
        roles = ids.roles_of(session, user.id, project.id)
        if not roles:
            raise Unauthorized(f"User {user.id} has no access to project {project.id}.")
        return project, roles
    if user.default_project_id:
        default = session.get(Project, user.default_project_id)
        if default is not None and default.enabled:
            roles = ids.roles_of(session, user.id, default.id)
            if roles:
                return default, roles
    return None, []


@router.get("/v3/auth/tokens")
def validate_token(
    request: Request, response: Response, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    subject = request.headers.get("X-Subject-Token", "")
    data = request.app.state.service.verify_token(subject, subject=True)
    if data.user_id != ctx.user_id:
        ctx.require_admin("identity:validate_token")
    response.headers["X-Subject-Token"] = subject
    return _token_body(request, data)


@router.head("/v3/auth/tokens", status_code=200)
def check_token(request: Request, ctx: RequestContext = Depends(get_context)) -> Response:
    request.app.state.service.verify_token(request.headers.get("X-Subject-Token", ""), subject=True)
    return Response(status_code=200)


@router.delete("/v3/auth/tokens", status_code=204)
def revoke_token(request: Request, ctx: RequestContext = Depends(get_context)) -> Response:
    service = request.app.state.service
    data = service.verify_token(request.headers.get("X-Subject-Token", ""), subject=True)
    if data.user_id != ctx.user_id:
        ctx.require_admin("identity:revoke_token")
    service.revoke_token(data)
    return Response(status_code=204)


@router.get("/v3/auth/catalog")
def token_catalog(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    if not ctx.project_id:
        raise Forbidden("A project-scoped token is required to produce a service catalog.")
    return {
        "catalog": catalog(base_url_of(request), ctx.project_id),
        "links": {"self": str(request.url)},
    }


# -- projects ----------------------------------------------------------------------------


def _project(request: Request, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "domain_id": project.domain_id,
        "description": project.description,
        "enabled": project.enabled,
        "is_domain": False,
        "parent_id": project.domain_id,
        "tags": [],
        "options": {},
        "links": {"self": f"{base_url_of(request)}/identity/v3/projects/{project.id}"},
    }


def _projects_of_user(session: Any, user_id: str) -> list[Project]:
    return list(
        session.scalars(
            select(Project)
            .join(RoleAssignment, RoleAssignment.project_id == Project.id)
            .where(RoleAssignment.user_id == user_id)
            .distinct()
        )
    )


@router.get("/v3/auth/projects")
def my_projects(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        projects = _projects_of_user(session, ctx.user_id)
        return {
            "projects": [_project(request, p) for p in projects],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


@router.get("/v3/users/{user_id}/projects")
def user_projects(
    request: Request, user_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    if user_id != ctx.user_id:
        ctx.require_admin("identity:list_user_projects")
    with request.app.state.service.db.read() as session:
        return {
            "projects": [_project(request, p) for p in _projects_of_user(session, user_id)],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


@router.get("/v3/projects")
def list_projects(
    request: Request,
    name: str | None = None,
    domain_id: str | None = None,
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        query = select(Project).order_by(Project.name)
        if name:
            query = query.where(Project.name == name)
        if domain_id:
            query = query.where(Project.domain_id == domain_id)
        projects = list(session.scalars(query))
        if not ctx.is_admin:
            mine = {p.id for p in _projects_of_user(session, ctx.user_id)}
            projects = [p for p in projects if p.id in mine]
        return {
            "projects": [_project(request, p) for p in projects],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


# Keystone's JSON-schema types of the fields a body may set (keystone/*/schema.py)
_PROJECT_TYPES: dict[str, Any] = {"name": str, "description": (str, type(None)), "enabled": bool}
_USER_TYPES: dict[str, Any] = {
    "name": str,
    "password": (str, type(None)),
    "email": (str, type(None)),
    "enabled": bool,
    "default_project_id": (str, type(None)),
    "domain_id": str,
}


def _typed_ref(body: dict[str, Any], key: str, types: dict[str, Any]) -> dict[str, Any]:
    """The `key` object of a create or update body, its fields of the right types (400)."""
    ref = body.get(key)
    if not isinstance(ref, dict):
        raise BadRequest(f"Invalid input for field '{key}': it must be an object.")
    for field, expected in types.items():
        if field in ref and not isinstance(ref[field], expected):
            raise BadRequest(
                f"Invalid input for field '{key}.{field}': {type(ref[field]).__name__}"
                " is not of the type Keystone accepts."
            )
    return ref


@router.post("/v3/projects", status_code=201)
def create_project(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("identity:create_project")
    ref = _typed_ref(body, "project", _PROJECT_TYPES)
    if not str(ref.get("name", "")).strip():
        raise BadRequest("Invalid input for field 'project': a project needs a 'name'.")
    with request.app.state.service.db.session() as session:
        project = ids.create_project(
            session,
            str(ref["name"]),
            str(ref.get("description") or ""),
            str(ref.get("domain_id") or "default"),
        )
        project.enabled = bool(ref.get("enabled", True))
        return {"project": _project(request, project)}


def get_project(session: Any, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Could not find project: {project_id}.")
    return project


@router.get("/v3/projects/{project_id}")
def show_project(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    if project_id != ctx.project_id:
        ctx.require_admin("identity:get_project")
    with request.app.state.service.db.read() as session:
        return {"project": _project(request, get_project(session, project_id))}


@router.patch("/v3/projects/{project_id}")
def update_project(
    request: Request,
    project_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("identity:update_project")
    ref = _typed_ref(body, "project", _PROJECT_TYPES)
    with request.app.state.service.db.session() as session:
        project = get_project(session, project_id)
        ids.update_project(session, project, ref)
        return {"project": _project(request, project)}


@router.delete("/v3/projects/{project_id}", status_code=204)
def delete_project(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("identity:delete_project")
    with request.app.state.service.db.session() as session:
        ids.delete_project(session, get_project(session, project_id))
    return Response(status_code=204)


# -- users ---------------------------------------------------------------------------------


def _user(request: Request, user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "domain_id": user.domain_id,
        "default_project_id": user.default_project_id,
        "email": user.email,
        "enabled": user.enabled,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"{base_url_of(request)}/identity/v3/users/{user.id}"},
    }


def get_user(session: Any, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"Could not find user: {user_id}.")
    return user


@router.get("/v3/users")
def list_users(
    request: Request, name: str | None = None, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("identity:list_users")
    with request.app.state.service.db.read() as session:
        query = select(User).order_by(User.name)
        if name:
            query = query.where(User.name == name)
        return {
            "users": [_user(request, u) for u in session.scalars(query)],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


@router.post("/v3/users", status_code=201)
def create_user(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("identity:create_user")
    ref = _typed_ref(body, "user", _USER_TYPES)
    if not str(ref.get("name", "")).strip():
        raise BadRequest("Invalid input for field 'user': a user needs a 'name'.")
    with request.app.state.service.db.session() as session:
        project_id = ref.get("default_project_id")
        if project_id:
            get_project(session, project_id)
        user = ids.create_user(
            session,
            str(ref["name"]),
            str(ref.get("password") or ""),
            default_project_id=project_id,
            email=ref.get("email"),
            domain_id=str(ref.get("domain_id") or "default"),
        )
        user.enabled = bool(ref.get("enabled", True))
        return {"user": _user(request, user)}


@router.get("/v3/users/{user_id}")
def show_user(
    request: Request, user_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    if user_id != ctx.user_id:
        ctx.require_admin("identity:get_user")
    with request.app.state.service.db.read() as session:
        return {"user": _user(request, get_user(session, user_id))}


@router.patch("/v3/users/{user_id}")
def update_user(
    request: Request, user_id: str, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("identity:update_user")
    ref = _typed_ref(body, "user", _USER_TYPES)
    with request.app.state.service.db.session() as session:
        user = get_user(session, user_id)
        ids.update_user(session, user, ref)
        return {"user": _user(request, user)}


@router.delete("/v3/users/{user_id}", status_code=204)
def delete_user(
    request: Request, user_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("identity:delete_user")
    with request.app.state.service.db.session() as session:
        ids.delete_user(session, get_user(session, user_id))
    return Response(status_code=204)
