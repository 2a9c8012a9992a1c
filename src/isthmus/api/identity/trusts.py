"""Keystone's OS-TRUST extension: create, list, show and delete trusts, their
delegated roles, and `trust_scope`, which turns an auth request scoped to
{"OS-TRUST:trust": {"id": ...}} into the trust-scoped token's user, project,
roles and delegation (used by api/identity/routes.py's POST /v3/auth/tokens).

Policy as Keystone's defaults: the trustor creates a trust (as itself); the
trustor, the trustee or an admin reads one; the trustor or an admin deletes one;
listing needs a trustor_user_id or trustee_user_id filter naming the caller,
unless the caller is an admin. A trust-scoped or restricted application
credential token cannot create trusts (Keystone: no redelegation), and
`allow_redelegation` is refused (400: not supported by Isthmus). Expired or used
up trusts are 404 everywhere."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.identity.tokens import Delegation
from isthmus.errors import BadRequest, Forbidden, NotFound
from isthmus.store import identity as ids
from isthmus.store import trusts
from isthmus.store.tables import Project, Trust, User

router = APIRouter(prefix="/identity")
TRUSTS = "/v3/OS-TRUST/trusts"
MAX_USES = 2**31 - 1  # the column is a 32-bit integer


def time_of(epoch: float | None) -> str | None:
    """Keystone's time format, or None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_expiry(value: Any, field: str) -> float | None:
    """An ISO 8601 `expires_at` (naive means UTC) in the future, as epoch seconds;
    None for none; 400 naming `field` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field '{field}': an ISO 8601 time string.")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BadRequest(
            f"Invalid input for field '{field}': {value!r} is not an ISO 8601 time"
            " (e.g. 2030-01-31T12:00:00Z)."
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        epoch = moment.timestamp()
    except (OverflowError, ValueError) as exc:
        raise BadRequest(f"Invalid input for field '{field}': {value!r} is out of range.") from exc
    if epoch <= datetime.now(UTC).timestamp():
        raise BadRequest(f"Invalid input for field '{field}': the time {value} is in the past.")
    return epoch


def role_names(value: Any, field: str) -> list[str]:
    """Role references ([{"id": ...} or {"name": ...}]) as role names; 400 for a bad
    shape, 404 for an unknown role (Keystone's RoleNotFound)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"Invalid input for field '{field}': a list of {{'id'}} or {{'name'}}.")
    names = []
    for ref in value:
        if not isinstance(ref, dict) or not isinstance(ref.get("id", ref.get("name")), str):
            raise BadRequest(
                f"Invalid input for field '{field}': each role is {{'id': ...}} or {{'name': ...}}."
            )
        wanted = ref.get("id", ref.get("name"))
        name = next((n for n, i in ids.ROLE_IDS.items() if wanted in (n, i)), None)
        if name is None:
            raise NotFound(f"Could not find role: {wanted}.")
        names.append(name)
    return names


def role_ref(request: Request, name: str) -> dict[str, Any]:
    role_id = ids.ROLE_IDS[name]
    return {
        "id": role_id,
        "name": name,
        "domain_id": None,
        "links": {"self": f"{base_url_of(request)}/identity/v3/roles/{role_id}"},
    }


def _trust(request: Request, trust: Trust) -> dict[str, Any]:
    url = f"{base_url_of(request)}/identity{TRUSTS}/{trust.id}"
    return {
        "id": trust.id,
        "trustor_user_id": trust.trustor_user_id,
        "trustee_user_id": trust.trustee_user_id,
        "project_id": trust.project_id,
        "impersonation": trust.impersonation,
        "expires_at": time_of(trust.expires_at),
        "remaining_uses": trust.remaining_uses,
        "allow_redelegation": False,
        "redelegation_count": 0,
        "redelegated_trust_id": None,
        "roles": [role_ref(request, name) for name in trust.roles],
        "roles_links": {"self": f"{url}/roles", "previous": None, "next": None},
        "links": {"self": url},
    }


def _check_body(body: dict[str, Any]) -> dict[str, Any]:
    """The `trust` object of a create body, Keystone's schema checked (400)."""
    ref = body.get("trust")
    if not isinstance(ref, dict):
        raise BadRequest("Invalid input for field 'trust': it must be an object.")
    for field in ("trustor_user_id", "trustee_user_id"):
        if not isinstance(ref.get(field), str) or not ref[field]:
            raise BadRequest(f"Invalid input for field 'trust.{field}': a user id is required.")
    if not isinstance(ref.get("impersonation"), bool):
        raise BadRequest(
            "Invalid input for field 'trust.impersonation': true or false is required."
        )
    if ref.get("project_id") is not None and not isinstance(ref["project_id"], str):
        raise BadRequest("Invalid input for field 'trust.project_id': a project id string.")
    uses = ref.get("remaining_uses")
    if uses is not None and (
        isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= MAX_USES
    ):
        raise BadRequest(
            "Invalid input for field 'trust.remaining_uses': a whole number from 1 to"
            f" {MAX_USES}, or null."
        )
    if ref.get("allow_redelegation") not in (None, False) or ref.get("redelegation_count"):
        raise BadRequest(
            "Invalid input for field 'trust.allow_redelegation': redelegation is not supported"
            " by Isthmus; leave it out or false."
        )
    return ref


@router.post(TRUSTS, status_code=201)
def create_trust(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ref = _check_body(body)
    roles = role_names(ref.get("roles"), "trust.roles")
    expires_at = parse_expiry(ref.get("expires_at"), "trust.expires_at")
    project_id = ref.get("project_id")
    if roles and not project_id:
        raise BadRequest("Invalid input for field 'trust.project_id': roles need a project.")
    if not project_id:
        raise BadRequest("Invalid input for field 'trust.project_id': a project id is required.")
    delegation = ctx.token.delegation
    if delegation is not None and (delegation.trust_id or not delegation.unrestricted):
        raise Forbidden(
            "A token got through a trust or a restricted application credential cannot"
            " create trusts."
        )
    if ref["trustor_user_id"] != ctx.user_id:
        raise Forbidden("The authenticated user should match the trustor.")
    with request.app.state.service.db.session() as session:
        if session.get(Project, project_id) is None:
            raise NotFound(f"Could not find project: {project_id}.")
        trust = trusts.create(
            session,
            trustor_id=ctx.user_id,
            trustee_id=ref["trustee_user_id"],
            project_id=project_id,
            roles=roles,
            impersonation=ref["impersonation"],
            expires_at=expires_at,
            remaining_uses=ref.get("remaining_uses"),
        )
        return {"trust": _trust(request, trust)}


@router.get(TRUSTS)
def list_trusts(
    request: Request,
    trustor_user_id: str | None = None,
    trustee_user_id: str | None = None,
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    if not ctx.is_admin and ctx.user_id not in (trustor_user_id, trustee_user_id):
        raise Forbidden(
            "Policy does not allow identity:list_trusts to be performed: filter on"
            " trustor_user_id or trustee_user_id with your own user id."
        )
    for other in (trustor_user_id, trustee_user_id):
        if other is not None and other != ctx.user_id:
            ctx.require_admin("identity:list_trusts for another user")
    with request.app.state.service.db.read() as session:
        found = trusts.listing(session, trustor_id=trustor_user_id, trustee_id=trustee_user_id)
        return {
            "trusts": [_trust(request, t) for t in found],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


def _readable(session: Session, trust_id: str, ctx: RequestContext) -> Trust:
    trust = trusts.find(session, trust_id)
    if not ctx.is_admin and ctx.user_id not in (trust.trustor_user_id, trust.trustee_user_id):
        raise Forbidden("Policy does not allow identity:get_trust to be performed.")
    return trust


@router.get(TRUSTS + "/{trust_id}")
def show_trust(
    request: Request, trust_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        return {"trust": _trust(request, _readable(session, trust_id, ctx))}


@router.delete(TRUSTS + "/{trust_id}", status_code=204, response_class=Response)
def delete_trust(
    request: Request, trust_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with request.app.state.service.db.session() as session:
        trust = trusts.find(session, trust_id)
        if not ctx.is_admin and ctx.user_id != trust.trustor_user_id:
            raise Forbidden("Policy does not allow identity:delete_trust to be performed.")
        trusts.delete(session, trust)
    return Response(status_code=204)


@router.get(TRUSTS + "/{trust_id}/roles")
def list_trust_roles(
    request: Request, trust_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        trust = _readable(session, trust_id, ctx)
        return {
            "roles": [role_ref(request, name) for name in trust.roles],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


@router.get(TRUSTS + "/{trust_id}/roles/{role_id}")
def show_trust_role(
    request: Request, trust_id: str, role_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        trust = _readable(session, trust_id, ctx)
        name = next((n for n in trust.roles if role_id in (n, ids.ROLE_IDS[n])), None)
        if name is None:
            raise NotFound(f"Could not find role: {role_id}.")
        return {"role": role_ref(request, name)}


@router.head(TRUSTS + "/{trust_id}/roles/{role_id}", status_code=200, response_class=Response)
def check_trust_role(
    request: Request, trust_id: str, role_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    show_trust_role(request, trust_id, role_id, ctx)
    return Response(status_code=200)


def trust_scope(
    session: Session, user: User, ref: Any, expires_at: float | None
) -> tuple[User, Project, list[str], Delegation, float | None]:
    """A trust-scoped token for `user` (who authenticated: must be the trustee):
    (token user, project, roles, delegation, expiry cap). Takes one of the trust's
    uses. 404 for an unknown, expired or used-up trust, 403 for anyone but its
    trustee or a trustor without the delegated roles."""
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
        raise BadRequest("Invalid input for field 'auth.scope.OS-TRUST:trust': it needs an 'id'.")
    trust = trusts.find(session, ref["id"])
    if trust.trustee_user_id != user.id:
        raise Forbidden("The user is not the trustee of this trust.")
    try:
        _, trustor, roles = trusts.check(session, trust.id, user.id, trust.project_id, time.time())
    except trusts.DelegationInvalid as exc:
        raise Forbidden(str(exc)) from exc
    project = session.get(Project, trust.project_id)
    if project is None or not project.enabled:
        raise Forbidden(f"The project of trust {trust.id} is unknown or disabled.")
    trusts.consume(session, trust)
    delegation = Delegation(
        trust_id=trust.id,
        trustor_user_id=trust.trustor_user_id,
        trustee_user_id=trust.trustee_user_id,
        impersonation=trust.impersonation,
    )
    if trust.expires_at is not None:
        expires_at = min(expires_at or trust.expires_at, trust.expires_at)
    return (trustor if trust.impersonation else user), project, roles, delegation, expires_at
