"""Keystone v3 roles and role assignments: the fixed roles (admin, member,
reader), grants of a role to a user on a project and their checks, revocation
(which kills the user's tokens on that project, store/identity.py), and the
role_assignments listing. Admin-only, as Keystone's default policy has it; the
router shares the /identity prefix with api/identity/routes.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.identity.routes import DOMAIN, get_project, get_user
from isthmus.errors import NotFound
from isthmus.store import identity as ids
from isthmus.store.tables import Project, RoleAssignment, User

router = APIRouter(prefix="/identity")


def _role(request: Request, role: str) -> dict[str, Any]:
    role_id = ids.ROLE_IDS[role]
    return {
        "id": role_id,
        "name": role,
        "domain_id": None,
        "description": None,
        "options": {},
        "links": {"self": f"{base_url_of(request)}/identity/v3/roles/{role_id}"},
    }


def _role_name(role_ref: str) -> str:
    for name, role_id in ids.ROLE_IDS.items():
        if role_ref in (name, role_id):
            return name
    raise NotFound(f"Could not find role: {role_ref}.")


@router.get("/v3/roles")
def list_roles(
    request: Request, name: str | None = None, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    roles = [r for r in ids.ROLES if name in (None, r)]
    return {
        "roles": [_role(request, r) for r in roles],
        "links": {"self": str(request.url), "next": None, "previous": None},
    }


@router.get("/v3/roles/{role_id}")
def show_role(
    request: Request, role_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return {"role": _role(request, _role_name(role_id))}


@router.put("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
def grant_role(
    request: Request,
    project_id: str,
    user_id: str,
    role_id: str,
    ctx: RequestContext = Depends(get_context),
) -> Response:
    ctx.require_admin("identity:create_grant")
    with request.app.state.service.db.session() as session:
        get_project(session, project_id)
        get_user(session, user_id)
        ids.assign_role(session, user_id, project_id, _role_name(role_id))
    return Response(status_code=204)


@router.head("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
def check_grant(
    request: Request,
    project_id: str,
    user_id: str,
    role_id: str,
    ctx: RequestContext = Depends(get_context),
) -> Response:
    ctx.require_admin("identity:check_grant")
    with request.app.state.service.db.read() as session:
        if session.get(RoleAssignment, (user_id, project_id, _role_name(role_id))) is None:
            raise NotFound(f"User {user_id} has no role {role_id} on project {project_id}.")
    return Response(status_code=204)


@router.delete("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
def revoke_role(
    request: Request,
    project_id: str,
    user_id: str,
    role_id: str,
    ctx: RequestContext = Depends(get_context),
) -> Response:
    ctx.require_admin("identity:revoke_grant")
    with request.app.state.service.db.session() as session:
        assignment = session.get(RoleAssignment, (user_id, project_id, _role_name(role_id)))
        if assignment is None:
            raise NotFound(f"User {user_id} has no role {role_id} on project {project_id}.")
        ids.revoke_role(session, assignment)
    return Response(status_code=204)


@router.get("/v3/projects/{project_id}/users/{user_id}/roles")
def list_grants(
    request: Request, project_id: str, user_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    if user_id != ctx.user_id:
        ctx.require_admin("identity:list_grants")
    with request.app.state.service.db.read() as session:
        roles = session.scalars(
            select(RoleAssignment.role).where(
                RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id
            )
        )
        return {
            "roles": [_role(request, r) for r in roles],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


@router.get("/v3/role_assignments")
def role_assignments(
    request: Request,
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    params = request.query_params
    user_filter = params.get("user.id")
    project_filter = params.get("scope.project.id")
    if user_filter != ctx.user_id:
        ctx.require_admin("identity:list_role_assignments")
    include_names = params.get("include_names", "").lower() in ("1", "true", "")
    with request.app.state.service.db.read() as session:
        query = (
            select(RoleAssignment, User, Project)
            .join(User, User.id == RoleAssignment.user_id)
            .join(Project, Project.id == RoleAssignment.project_id)
        )
        if user_filter:
            query = query.where(RoleAssignment.user_id == user_filter)
        if project_filter:
            query = query.where(RoleAssignment.project_id == project_filter)
        if params.get("role.id"):
            query = query.where(RoleAssignment.role == _role_name(params["role.id"]))
        out = []
        for assignment, user, project in session.execute(query):
            role = {"id": ids.ROLE_IDS[assignment.role]}
            user_ref: dict[str, Any] = {"id": user.id}
            project_ref: dict[str, Any] = {"id": project.id}
            if include_names and "include_names" in params:
                role["name"] = assignment.role
                user_ref.update(name=user.name, domain=DOMAIN)
                project_ref.update(name=project.name, domain=DOMAIN)
            out.append(
                {
                    "role": role,
                    "user": user_ref,
                    "scope": {"project": project_ref},
                    "links": {
                        "assignment": f"{base_url_of(request)}/identity/v3/projects/"
                        f"{project.id}/users/{user.id}/roles/{role['id']}"
                    },
                }
            )
        return {
            "role_assignments": out,
            "links": {"self": str(request.url), "next": None, "previous": None},
        }
