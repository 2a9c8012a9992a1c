"""Keystone application credentials: create (secret generated or given, shown once,
stored hashed), list, show, delete; the application_credential auth method (by id,
or by name and user); roles limited to the user's; expiry; restricted credentials;
tokens dying with the credential or the user's role; refused requests changing
nothing; GET /v3/users/{id}/projects; and the real `openstack` CLI, including a
token got with `--os-auth-type v3applicationcredential` listing servers."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from isthmus.store.tables import ApplicationCredential
from tests.fixtures.openstack_cli import openstack_binary, openstack_json, run_openstack
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, make_service

TOKENS = "/identity/v3/auth/tokens"
SERVERS = "/compute/v2.1/servers"


@pytest.fixture
def cloud(tmp_path: Path, db_url: str) -> Iterator[Cloud]:
    """A cloud whose engine does not run (SQLite and PostgreSQL), so the store changes
    only through requests and a refused one can be seen to change nothing."""
    service = make_service(tmp_path / "data", db_url)
    yield Cloud(service)
    service.db.dispose()


def _me(cloud: Cloud, headers: dict[str, str]) -> dict[str, Any]:
    subject = {**headers, "X-Subject-Token": headers["X-Auth-Token"]}
    answer = cloud.client.get(TOKENS, headers=subject)
    assert answer.status_code == 200, answer.text
    token: dict[str, Any] = answer.json()["token"]
    return token


def _creds(user_id: str) -> str:
    return f"/identity/v3/users/{user_id}/application_credentials"


def _create(cloud: Cloud, headers: dict[str, str], user_id: str, **fields: Any) -> dict[str, Any]:
    answer = cloud.client.post(
        _creds(user_id), headers=headers, json={"application_credential": fields}
    )
    assert answer.status_code == 201, answer.text
    cred: dict[str, Any] = answer.json()["application_credential"]
    return cred


def _auth(ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "auth": {"identity": {"methods": ["application_credential"], "application_credential": ref}}
    }


def _login(cloud: Cloud, ref: dict[str, Any]) -> tuple[int, Any, str]:
    answer = cloud.client.post(TOKENS, json=_auth(ref))
    return answer.status_code, answer.json(), answer.headers.get("X-Subject-Token", "")


def test_lifecycle_secret_shown_once_and_tokens_die_with_the_credential(cloud: Cloud) -> None:
    alice = cloud.new_member("alice")
    me = _me(cloud, alice)
    user_id, project_id = me["user"]["id"], me["project"]["id"]
    cred = _create(cloud, alice, user_id, name="ci", description="for CI")
    secret = cred["secret"]
    assert len(secret) >= 64
    assert cred["project_id"] == project_id and cred["user_id"] == user_id
    assert {r["name"] for r in cred["roles"]} == {"member", "reader"}  # the token's roles
    assert cred["unrestricted"] is False and cred["expires_at"] is None

    listed = cloud.client.get(_creds(user_id), headers=alice).json()["application_credentials"]
    assert [c["id"] for c in listed] == [cred["id"]] and "secret" not in listed[0]
    shown = cloud.client.get(f"{_creds(user_id)}/{cred['id']}", headers=alice).json()
    assert shown["application_credential"]["name"] == "ci"
    assert "secret" not in shown["application_credential"]
    by_name = cloud.client.get(f"{_creds(user_id)}?name=ci", headers=alice).json()
    assert [c["id"] for c in by_name["application_credentials"]] == [cred["id"]]
    with cloud.service.db.read() as session:
        stored = session.scalars(select(ApplicationCredential)).one()
        assert secret.encode() not in stored.secret_hash and len(stored.secret_hash) == 80

    status, body, token = _login(cloud, {"id": cred["id"], "secret": secret})
    assert status == 201, body
    got = body["token"]
    assert got["methods"] == ["application_credential"]
    assert got["user"]["id"] == user_id and got["project"]["id"] == project_id
    assert got["application_credential"] == {"id": cred["id"], "name": "ci", "restricted": True}
    assert {r["name"] for r in got["roles"]} == {"member", "reader"}
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 200
    assert _me(cloud, {"X-Auth-Token": token})["application_credential"]["id"] == cred["id"]
    # by name, with the user by id or by name and domain
    for user in ({"id": user_id}, {"name": "alice", "domain": {"name": "Default"}}):
        assert _login(cloud, {"name": "ci", "user": user, "secret": secret})[0] == 201
    assert _login(cloud, {"id": cred["id"], "secret": secret + "x"})[0] == 401
    assert _login(cloud, {"name": "ci", "user": {"id": "nobody"}, "secret": secret})[0] == 401

    assert cloud.client.delete(f"{_creds(user_id)}/{cred['id']}", headers=alice).status_code == 204
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 401
    assert _login(cloud, {"id": cred["id"], "secret": secret})[0] == 401
    gone = cloud.client.get(f"{_creds(user_id)}/{cred['id']}", headers=alice)
    assert gone.status_code == 404


def test_roles_are_limited_to_the_users_and_refusals_change_nothing(cloud: Cloud) -> None:
    alice = cloud.new_member("alice")
    user_id = _me(cloud, alice)["user"]["id"]
    given = _create(
        cloud, alice, user_id, name="mine", secret="s3cret!", roles=[{"name": "reader"}]
    )
    assert given["secret"] == "s3cret!"
    assert [r["name"] for r in given["roles"]] == ["reader"]
    status, body, _ = _login(cloud, {"id": given["id"], "secret": "s3cret!"})
    assert status == 201 and [r["name"] for r in body["token"]["roles"]] == ["reader"]

    before = snapshot(cloud.service)
    path = _creds(user_id)
    refusals: list[tuple[Any, int, str]] = [
        ({"name": "x", "roles": [{"name": "admin"}]}, 403, "admin"),
        ({"name": "x", "roles": [{"id": "nope"}]}, 404, "nope"),
        ({"name": "mine"}, 409, "Duplicate"),
        ({"name": ""}, 400, "name"),
        ({"name": "x", "secret": 5}, 400, "secret"),
        ({"name": "x", "unrestricted": "yes"}, 400, "unrestricted"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00"}, 400, "past"),
        ({"name": "x", "expires_at": "soon"}, 400, "ISO 8601"),
        ({"name": "x", "access_rules": [{"path": "/v2.1/servers"}]}, 400, "access rules"),
        ("x", 400, "application_credential"),
    ]
    for fields, status, words in refusals:
        answer = cloud.client.post(path, headers=alice, json={"application_credential": fields})
        assert answer.status_code == status, (fields, answer.text)
        assert words in answer.json()["error"]["message"], answer.text
    # another user's credentials: not readable, not deletable, not creatable
    bob = cloud.new_member("bob")
    before = snapshot(cloud.service)
    assert cloud.client.get(path, headers=bob).status_code == 403
    assert cloud.client.get(f"{path}/{given['id']}", headers=bob).status_code == 403
    assert cloud.client.delete(f"{path}/{given['id']}", headers=bob).status_code == 403
    stolen = cloud.client.post(path, headers=bob, json={"application_credential": {"name": "b"}})
    assert stolen.status_code == 403
    bob_id = _me(cloud, bob)["user"]["id"]
    assert cloud.client.get(f"{_creds(bob_id)}/{given['id']}", headers=bob).status_code == 404
    assert snapshot(cloud.service) == before, difference(before, snapshot(cloud.service))
    assert cloud.client.get(path, headers=cloud.admin).status_code == 200  # an admin may read


def test_restricted_credentials_make_no_credentials_and_roles_revoked_kill_tokens(
    cloud: Cloud,
) -> None:
    alice = cloud.new_member("alice")
    me = _me(cloud, alice)
    user_id = me["user"]["id"]
    restricted = _create(cloud, alice, user_id, name="r")
    free = _create(cloud, alice, user_id, name="u", unrestricted=True)
    r_token = {
        "X-Auth-Token": _login(cloud, {"id": restricted["id"], "secret": restricted["secret"]})[2]
    }
    u_token = {"X-Auth-Token": _login(cloud, {"id": free["id"], "secret": free["secret"]})[2]}
    body = {"application_credential": {"name": "child"}}
    assert cloud.client.post(_creds(user_id), headers=r_token, json=body).status_code == 403
    delete = f"{_creds(user_id)}/{free['id']}"
    assert cloud.client.delete(delete, headers=r_token).status_code == 403
    assert cloud.client.post(_creds(user_id), headers=u_token, json=body).status_code == 201
    rescope = {
        "auth": {"identity": {"methods": ["token"], "token": {"id": r_token["X-Auth-Token"]}}}
    }
    assert cloud.client.post(TOKENS, json=rescope).status_code == 403

    member = next(r["id"] for r in me["roles"] if r["name"] == "member")
    grant = f"/identity/v3/projects/{me['project']['id']}/users/{user_id}/roles/{member}"
    assert cloud.client.delete(grant, headers=cloud.admin).status_code == 204
    assert cloud.client.get(SERVERS, headers=u_token).status_code == 401
    assert _login(cloud, {"id": free["id"], "secret": free["secret"]})[0] == 401
    # as Keystone does, the user's credentials on that project are gone, even once the
    # role is granted again
    assert cloud.client.put(grant, headers=cloud.admin).status_code == 204
    listed = cloud.client.get(_creds(user_id), headers=cloud.admin).json()
    assert listed["application_credentials"] == []
    assert _login(cloud, {"id": free["id"], "secret": free["secret"]})[0] == 401


def test_deleting_the_user_or_the_project_removes_its_credentials_and_trusts(
    cloud: Cloud,
) -> None:
    alice = cloud.new_member("alice")
    bob = cloud.new_member("bob")
    me, me_b = _me(cloud, alice), _me(cloud, bob)
    cred = _create(cloud, alice, me["user"]["id"], name="c")
    trust = {
        "trustor_user_id": me["user"]["id"],
        "trustee_user_id": me_b["user"]["id"],
        "project_id": me["project"]["id"],
        "impersonation": False,
        "roles": [{"name": "reader"}],
    }
    made = cloud.client.post("/identity/v3/OS-TRUST/trusts", headers=alice, json={"trust": trust})
    assert made.status_code == 201
    project = f"/identity/v3/projects/{me['project']['id']}"
    assert cloud.client.delete(project, headers=cloud.admin).status_code == 204
    trust_path = f"/identity/v3/OS-TRUST/trusts/{made.json()['trust']['id']}"
    assert cloud.client.get(trust_path, headers=cloud.admin).status_code == 404
    assert _login(cloud, {"id": cred["id"], "secret": cred["secret"]})[0] == 401
    with cloud.service.db.read() as session:
        assert session.scalars(select(ApplicationCredential)).all() == []
    bob_cred = _create(cloud, bob, me_b["user"]["id"], name="b")
    user = f"/identity/v3/users/{me_b['user']['id']}"
    assert cloud.client.delete(user, headers=cloud.admin).status_code == 204
    assert _login(cloud, {"id": bob_cred["id"], "secret": bob_cred["secret"]})[0] == 401
    with cloud.service.db.read() as session:
        assert session.scalars(select(ApplicationCredential)).all() == []


def test_an_expiring_credential_gives_tokens_no_longer_than_itself(cloud: Cloud) -> None:
    alice = cloud.new_member("alice")
    user_id = _me(cloud, alice)["user"]["id"]
    end = time.time() + 3
    expires = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cred = _create(cloud, alice, user_id, name="brief", expires_at=expires)
    assert cred["expires_at"].startswith(expires[:19])
    status, body, token = _login(cloud, {"id": cred["id"], "secret": cred["secret"]})
    assert status == 201
    assert datetime.fromisoformat(body["token"]["expires_at"]).timestamp() <= end + 0.001
    time.sleep(max(0.0, end - time.time()) + 0.2)
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 401
    assert _login(cloud, {"id": cred["id"], "secret": cred["secret"]})[0] == 401


def test_auth_bodies_are_checked(cloud: Cloud) -> None:
    for ref, status in (
        ({"id": "x"}, 400),
        ({"secret": "s"}, 400),
        ({"name": "n", "secret": "s"}, 400),
        ({"id": 5, "secret": "s"}, 400),
        ("x", 400),
        ({"id": "unknown", "secret": "s"}, 401),
    ):
        assert cloud.client.post(TOKENS, json=_auth(ref)).status_code == status, ref


def test_a_user_lists_its_own_projects_only(cloud: Cloud) -> None:
    alice = cloud.new_member("alice")
    me = _me(cloud, alice)
    own = cloud.client.get(f"/identity/v3/users/{me['user']['id']}/projects", headers=alice)
    assert own.status_code == 200
    assert [p["id"] for p in own.json()["projects"]] == [me["project"]["id"]]
    demo_id = _me(cloud, cloud.demo)["user"]["id"]
    assert (
        cloud.client.get(f"/identity/v3/users/{demo_id}/projects", headers=alice).status_code == 403
    )
    by_admin = cloud.client.get(
        f"/identity/v3/users/{me['user']['id']}/projects", headers=cloud.admin
    )
    assert [p["name"] for p in by_admin.json()["projects"]] == ["alice"]


# -- the real client -------------------------------------------------------------------------


@pytest.mark.cli
def test_openstack_cli_application_credentials(live_cloud: Cloud) -> None:
    cloud = live_cloud
    assert cloud.clouds_yaml is not None
    yaml_path = cloud.clouds_yaml
    created = openstack_json(
        ["application", "credential", "create", "--description", "ci", "ci-cred"],
        yaml_path,
        "isthmus-demo",
    )
    assert created["Name"] == "ci-cred" and created["Secret"]
    assert {r["name"] for r in created["Roles"]} == {"member", "reader"}
    listed = openstack_json(["application", "credential", "list"], yaml_path, "isthmus-demo")
    assert [c["Name"] for c in listed] == ["ci-cred"]
    shown = openstack_json(
        ["application", "credential", "show", "ci-cred"], yaml_path, "isthmus-demo"
    )
    assert shown["ID"] == created["ID"] and "Secret" not in shown

    def with_credential(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["PYTHONWARNINGS"] = "ignore"
        return subprocess.run(
            [
                str(openstack_binary()),
                "--os-auth-type", "v3applicationcredential",
                "--os-auth-url", f"{cloud.url}/identity/v3",
                "--os-application-credential-id", created["ID"],
                "--os-application-credential-secret", created["Secret"],
                "--os-region-name", "RegionOne",
                "--os-interface", "public",
                *args,
            ],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    servers = with_credential("server", "list", "-f", "json")
    assert servers.returncode == 0, servers.stderr
    assert servers.stdout.strip() == "[]"
    deleted = run_openstack(
        ["application", "credential", "delete", "ci-cred"], yaml_path, "isthmus-demo"
    )
    assert deleted.returncode == 0, deleted.stderr
    assert openstack_json(["application", "credential", "list"], yaml_path, "isthmus-demo") == []
    refused = with_credential("server", "list", "-f", "json")
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
