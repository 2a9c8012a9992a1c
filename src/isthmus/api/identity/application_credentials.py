"""Keystone application credentials: create, list, show and delete
/v3/users/{user_id}/application_credentials, and `app_cred_auth`, the
"application_credential" auth method (by id and secret, or by name, user and
secret) that gives a token on the credential's project with its roles (used by
api/identity/routes.py's POST /v3/auth/tokens).

The secret is generated unless the body gives one, returned once by the create
call and kept only hashed (store/application_credentials.py). Policy as
Keystone's: a user creates credentials for itself, on the project of its token,
with some of that token's roles; the owner or an admin reads and deletes them. A
token got through a trust or a restricted credential cannot create one.
Access rules are not supported (400)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.identity.tokens import Delegation
from isthmus.api.identity.trusts import parse_expiry, role_names, role_ref, time_of
from isthmus.errors import BadRequest, Forbidden, Unauthorized
from isthmus.store import application_credentials as creds
from isthmus.store.tables import ApplicationCredential, Project, User
from isthmus.store.trusts import DelegationInvalid

router = APIRouter(prefix="/identity")
CREDS = "/v3/users/{user_id}/application_credentials"


def _cred(
    request: Request, cred: ApplicationCredential, secret: str | None = None
) -> dict[str, Any]:
    base = base_url_of(request)
    body: dict[str, Any] = {
        "id": cred.id,
        "name": cred.name,
        "description": cred.description,
        "user_id": cred.user_id,
        "project_id": cred.project_id,
        "expires_at": time_of(cred.expires_at),
        "unrestricted": cred.unrestricted,
        "roles": [role_ref(request, name) for name in cred.roles],
        "access_rules": [],
        "links": {
            "self": f"{base}/identity/v3/users/{cred.user_id}/application_credentials/{cred.id}"
        },
    }
    if secret is not None:
        body["secret"] = secret
    return body


def _check_body(body: dict[str, Any]) -> dict[str, Any]:
    """The `application_credential` object of a create body, Keystone's schema (400)."""
    ref = body.get("application_credential")
    field = "application_credential"
    if not isinstance(ref, dict):
        raise BadRequest(f"Invalid input for field '{field}': it must be an object.")
    if not isinstance(ref.get("name"), str) or not ref["name"].strip():
        raise BadRequest(f"Invalid input for field '{field}.name': a non-empty name is required.")
    for key in ("description", "secret"):
        if ref.get(key) is not None and not isinstance(ref[key], str):
            raise BadRequest(f"Invalid input for field '{field}.{key}': it must be a string.")
    if ref.get("secret") == "":
        raise BadRequest(f"Invalid input for field '{field}.secret': leave it out or give one.")
    if not isinstance(ref.get("unrestricted", False), bool):
        raise BadRequest(f"Invalid input for field '{field}.unrestricted': true or false.")
    if ref.get("access_rules"):
        raise BadRequest(
            f"Invalid input for field '{field}.access_rules': access rules are not supported"
            " by Isthmus; leave them out."
        )
    return ref


def _own(ctx: RequestContext, user_id: str, what: str) -> None:
    if user_id != ctx.user_id:
        ctx.require_admin(f"identity:{what}_application_credential")


@router.post(CREDS, status_code=201)
def create_credential(
    request: Request, user_id: str, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ref = _check_body(body)
    roles = role_names(ref.get("roles"), "application_credential.roles")
    expires_at = parse_expiry(ref.get("expires_at"), "application_credential.expires_at")
    if user_id != ctx.user_id:
        raise Forbidden("Policy does not allow creating application credentials for another user.")
    if not ctx.project_id:
        raise Forbidden("A project-scoped token is required to create an application credential.")
    delegation = ctx.token.delegation
    if delegation is not None and (delegation.trust_id or not delegation.unrestricted):
        raise Forbidden(
            "A token got through a trust or a restricted application credential cannot"
            " create application credentials."
        )
    given = ref.get("secret")
    secret = given if isinstance(given, str) else creds.new_secret()
    with request.app.state.service.db.session() as session:
        cred = creds.create(
            session,
            user_id=user_id,
            project_id=ctx.project_id,
            name=ref["name"],
            description=ref.get("description"),
            secret=secret,
            roles=roles or list(ctx.token.roles),
            expires_at=expires_at,
            unrestricted=bool(ref.get("unrestricted", False)),
        )
        return {"application_credential": _cred(request, cred, secret)}


@router.get(CREDS)
def list_credentials(
    request: Request,
    user_id: str,
    name: str | None = None,
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    _own(ctx, user_id, "list")
    with request.app.state.service.db.read() as session:
        return {
            "application_credentials": [
                _cred(request, c) for c in creds.listing(session, user_id, name)
            ],
            "links": {"self": str(request.url), "next": None, "previous": None},
        }


@router.get(CREDS + "/{cred_id}")
def show_credential(
    request: Request, user_id: str, cred_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    _own(ctx, user_id, "get")
    with request.app.state.service.db.read() as session:
        return {"application_credential": _cred(request, creds.find(session, user_id, cred_id))}


@router.delete(CREDS + "/{cred_id}", status_code=204, response_class=Response)
def delete_credential(
    request: Request, user_id: str, cred_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    _own(ctx, user_id, "delete")
    delegation = ctx.token.delegation
    if delegation is not None and delegation.app_cred_id and not delegation.unrestricted:
        raise Forbidden(
            "A token got with a restricted application credential cannot delete"
            " application credentials."
        )
    with request.app.state.service.db.session() as session:
        creds.delete(session, creds.find(session, user_id, cred_id))
    return Response(status_code=204)


def app_cred_auth(
    session: Session, identity: dict[str, Any], scope: dict[str, Any]
) -> tuple[User, Project, list[str], Delegation, float | None]:
    """(user, project, roles, delegation, expiry) of a token got with an application
    credential; 400 for a request that names none, 401 for wrong credentials."""
    ref = identity.get("application_credential")
    if not isinstance(ref, dict) or not isinstance(ref.get("secret"), str):
        raise BadRequest(
            "Invalid input for field 'auth.identity.application_credential': it needs a"
            " 'secret' and an 'id', or a 'name' and a 'user'."
        )
    if not ref.get("id") and not (ref.get("name") and isinstance(ref.get("user"), dict)):
        raise BadRequest(
            "Invalid input for field 'auth.identity.application_credential': give its 'id',"
            " or its 'name' and its 'user' ({'id'} or {'name', 'domain'})."
        )
    user_ref = ref.get("user") or {}
    domain: dict[str, Any] = user_ref["domain"] if isinstance(user_ref.get("domain"), dict) else {}
    domain_id = domain.get("id") or domain.get("name")
    if isinstance(domain_id, str) and domain_id.lower() == "default":
        domain_id = "default"
    cred, user = creds.authenticate(
        session,
        cred_id=ref.get("id"),
        name=ref.get("name"),
        user_id=user_ref.get("id"),
        user_name=user_ref.get("name"),
        domain=domain_id if isinstance(domain_id, str) else None,
        secret=ref["secret"],
    )
    wanted = scope.get("project") if isinstance(scope, dict) else None
    if isinstance(wanted, dict) and wanted.get("id") not in (None, cred.project_id):
        raise Unauthorized("An application credential gives tokens on its own project only.")
    project = session.get(Project, cred.project_id)
    if project is None or not project.enabled:
        raise Unauthorized(f"Could not find project: {cred.project_id}.")
    try:
        _, roles = creds.check(session, cred.id, user.id, project.id)
    except DelegationInvalid as exc:
        raise Unauthorized(str(exc)) from exc
    delegation = Delegation(
        app_cred_id=cred.id, app_cred_name=cred.name, unrestricted=cred.unrestricted
    )
    return user, project, roles, delegation, cred.expires_at
