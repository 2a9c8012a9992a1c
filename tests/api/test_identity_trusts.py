"""Keystone trusts (OS-TRUST): create/list/show/delete, delegated roles, trust-scoped
tokens (impersonating or not), expiry, limited uses, policy between users, the
tokens dying with the trust or the trustor's roles, refused requests changing
nothing; and the real clients: `openstack trust ...` and keystoneauth1's trust auth."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from isthmus.api.identity.tokens import TokenClaims, new_audit_id, pack, unpack
from tests.fixtures.openstack_cli import openstack_json, run_openstack
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, make_service

TRUSTS = "/identity/v3/OS-TRUST/trusts"
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


def _trust_body(trustor: dict[str, Any], trustee: dict[str, Any], **extra: Any) -> dict[str, Any]:
    trust = {
        "trustor_user_id": trustor["user"]["id"],
        "trustee_user_id": trustee["user"]["id"],
        "project_id": trustor["project"]["id"],
        "impersonation": True,
        "roles": [{"name": "member"}],
    }
    trust.update(extra)
    return {"trust": trust}


def _trust_auth(name: str, trust_id: str) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": name, "domain": {"id": "default"}, "password": f"{name}-pw"}
                },
            },
            "scope": {"OS-TRUST:trust": {"id": trust_id}},
        }
    }


def _pair(cloud: Cloud) -> tuple[dict[str, str], dict[str, Any], dict[str, str], dict[str, Any]]:
    """alice (trustor, member of project alice) and bob (trustee, of project bob)."""
    alice = cloud.new_member("alice")
    bob = cloud.new_member("bob")
    return alice, _me(cloud, alice), bob, _me(cloud, bob)


def _create(cloud: Cloud, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = cloud.client.post(TRUSTS, headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    trust: dict[str, Any] = answer.json()["trust"]
    return trust


def _trust_token(cloud: Cloud, name: str, trust_id: str) -> tuple[int, Any, str]:
    answer = cloud.client.post(TOKENS, json=_trust_auth(name, trust_id))
    return answer.status_code, answer.json(), answer.headers.get("X-Subject-Token", "")


def test_impersonating_trust_gives_the_trustee_a_token_as_the_trustor(cloud: Cloud) -> None:
    alice, me_a, bob, me_b = _pair(cloud)
    trust = _create(cloud, alice, _trust_body(me_a, me_b))
    assert trust["trustor_user_id"] == me_a["user"]["id"]
    assert trust["trustee_user_id"] == me_b["user"]["id"]
    assert trust["impersonation"] is True and trust["remaining_uses"] is None
    assert [r["name"] for r in trust["roles"]] == ["member"]

    status, body, token = _trust_token(cloud, "bob", trust["id"])
    assert status == 201, body
    scoped = body["token"]
    assert scoped["user"]["id"] == me_a["user"]["id"]  # impersonation: the trustor
    assert scoped["project"]["id"] == me_a["project"]["id"]
    assert scoped["OS-TRUST:trust"] == {
        "id": trust["id"],
        "impersonation": True,
        "trustee_user": {"id": me_b["user"]["id"]},
        "trustor_user": {"id": me_a["user"]["id"]},
    }
    assert {r["name"] for r in scoped["roles"]} == {"member", "reader"}
    # the token acts in alice's project, and validates the same way
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 200
    again = _me(cloud, {"X-Auth-Token": token})
    assert again["OS-TRUST:trust"]["id"] == trust["id"]
    assert again["user"]["id"] == me_a["user"]["id"]

    # both parties read it and its roles; the trustor's and trustee's lists show it
    for headers in (alice, bob, cloud.admin):
        shown = cloud.client.get(f"{TRUSTS}/{trust['id']}", headers=headers)
        assert shown.status_code == 200 and shown.json()["trust"]["id"] == trust["id"]
    roles = cloud.client.get(f"{TRUSTS}/{trust['id']}/roles", headers=bob).json()["roles"]
    assert [r["name"] for r in roles] == ["member"]
    one = cloud.client.get(f"{TRUSTS}/{trust['id']}/roles/{roles[0]['id']}", headers=bob)
    assert one.status_code == 200 and one.json()["role"]["name"] == "member"
    admin_role = _me(cloud, cloud.admin)["roles"]
    admin_id = next(r["id"] for r in admin_role if r["name"] == "admin")
    assert (
        cloud.client.get(f"{TRUSTS}/{trust['id']}/roles/{admin_id}", headers=bob).status_code == 404
    )
    mine = cloud.client.get(f"{TRUSTS}?trustor_user_id={me_a['user']['id']}", headers=alice)
    assert [t["id"] for t in mine.json()["trusts"]] == [trust["id"]]
    theirs = cloud.client.get(f"{TRUSTS}?trustee_user_id={me_b['user']['id']}", headers=bob)
    assert [t["id"] for t in theirs.json()["trusts"]] == [trust["id"]]
    assert trust["id"] in {
        t["id"] for t in cloud.client.get(TRUSTS, headers=cloud.admin).json()["trusts"]
    }

    # deleting the trust kills its token at once (the validation cache included)
    assert cloud.client.delete(f"{TRUSTS}/{trust['id']}", headers=alice).status_code == 204
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 401
    assert cloud.client.get(f"{TRUSTS}/{trust['id']}", headers=alice).status_code == 404
    assert _trust_token(cloud, "bob", trust["id"])[0] == 404


def test_a_trust_without_impersonation_keeps_the_trustee_as_user(cloud: Cloud) -> None:
    alice, me_a, _, me_b = _pair(cloud)
    trust = _create(cloud, alice, _trust_body(me_a, me_b, impersonation=False))
    status, body, token = _trust_token(cloud, "bob", trust["id"])
    assert status == 201, body
    assert body["token"]["user"]["id"] == me_b["user"]["id"]
    assert body["token"]["project"]["id"] == me_a["project"]["id"]
    assert body["token"]["OS-TRUST:trust"]["impersonation"] is False
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 200


def test_a_trust_delegates_no_role_the_trustor_lacks_and_refusals_change_nothing(
    cloud: Cloud,
) -> None:
    alice, me_a, _, me_b = _pair(cloud)
    before = snapshot(cloud.service)
    refusals: list[tuple[dict[str, Any], int, str]] = [
        (_trust_body(me_a, me_b, roles=[{"name": "admin"}]), 403, "admin"),
        (_trust_body(me_a, me_b, roles=[{"name": "nope"}]), 404, "nope"),
        (_trust_body(me_a, me_b, trustee_user_id="nobody"), 404, "nobody"),
        (_trust_body(me_a, me_b, trustor_user_id=me_b["user"]["id"]), 403, "trustor"),
        (_trust_body(me_a, me_b, impersonation="yes"), 400, "impersonation"),
        (_trust_body(me_a, me_b, remaining_uses=0), 400, "remaining_uses"),
        (_trust_body(me_a, me_b, remaining_uses=2**31), 400, "remaining_uses"),
        (_trust_body(me_a, me_b, expires_at="0001-01-01T00:00:00+05:00"), 400, "expires_at"),
        (_trust_body(me_a, me_b, allow_redelegation=True), 400, "redelegation"),
        (_trust_body(me_a, me_b, expires_at="2001-01-01T00:00:00Z"), 400, "past"),
        (_trust_body(me_a, me_b, expires_at="tomorrow"), 400, "ISO 8601"),
        (_trust_body(me_a, me_b, roles="member"), 400, "roles"),
        (_trust_body(me_a, me_b, project_id=None), 400, "project_id"),
        ({"trust": "x"}, 400, "trust"),
    ]
    for body, status, words in refusals:
        answer = cloud.client.post(TRUSTS, headers=alice, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"]["message"], answer.text
    assert snapshot(cloud.service) == before, difference(before, snapshot(cloud.service))


def test_another_user_can_neither_see_nor_use_nor_delete_a_trust(cloud: Cloud) -> None:
    alice, me_a, bob, me_b = _pair(cloud)
    carol = cloud.new_member("carol")
    trust = _create(cloud, alice, _trust_body(me_a, me_b))
    path = f"{TRUSTS}/{trust['id']}"
    assert cloud.client.get(path, headers=carol).status_code == 403
    assert cloud.client.get(f"{path}/roles", headers=carol).status_code == 403
    before = snapshot(cloud.service)
    assert cloud.client.delete(path, headers=carol).status_code == 403
    assert cloud.client.delete(path, headers=bob).status_code == 403  # only the trustor
    assert _trust_token(cloud, "carol", trust["id"])[0] == 403
    assert snapshot(cloud.service) == before, difference(before, snapshot(cloud.service))
    assert cloud.client.get(TRUSTS, headers=carol).status_code == 403
    listing = f"{TRUSTS}?trustor_user_id={me_a['user']['id']}"
    assert cloud.client.get(listing, headers=carol).status_code == 403
    assert cloud.client.get(f"{TRUSTS}/unknown", headers=alice).status_code == 404


def test_remaining_uses_count_token_issues_and_an_expired_trust_is_gone(cloud: Cloud) -> None:
    alice, me_a, _, me_b = _pair(cloud)
    trust = _create(cloud, alice, _trust_body(me_a, me_b, remaining_uses=2))
    first = _trust_token(cloud, "bob", trust["id"])
    assert first[0] == 201
    shown = cloud.client.get(f"{TRUSTS}/{trust['id']}", headers=alice).json()["trust"]
    assert shown["remaining_uses"] == 1
    assert _trust_token(cloud, "bob", trust["id"])[0] == 201
    assert _trust_token(cloud, "bob", trust["id"])[0] == 404  # used up
    assert cloud.client.get(f"{TRUSTS}/{trust['id']}", headers=alice).status_code == 404
    # a token already issued lives on
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": first[2]}).status_code == 200

    end = time.time() + 3
    expires = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    brief = _create(cloud, alice, _trust_body(me_a, me_b, expires_at=expires))
    assert brief["expires_at"].startswith(expires[:19])
    status, body, token = _trust_token(cloud, "bob", brief["id"])
    assert status == 201
    token_end = datetime.fromisoformat(body["token"]["expires_at"]).timestamp()
    assert token_end <= end + 0.001  # a trust-scoped token does not outlive its trust
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 200
    time.sleep(max(0.0, end - time.time()) + 0.2)
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 401
    assert cloud.client.get(f"{TRUSTS}/{brief['id']}", headers=alice).status_code == 404
    assert _trust_token(cloud, "bob", brief["id"])[0] == 404


def test_trust_tokens_die_when_the_trustor_loses_the_role_or_is_disabled(cloud: Cloud) -> None:
    alice, me_a, _, me_b = _pair(cloud)
    trust = _create(cloud, alice, _trust_body(me_a, me_b))
    token = _trust_token(cloud, "bob", trust["id"])[2]
    headers = {"X-Auth-Token": token}
    assert cloud.client.get(SERVERS, headers=headers).status_code == 200
    member = next(r["id"] for r in me_a["roles"] if r["name"] == "member")
    grant = (
        f"/identity/v3/projects/{me_a['project']['id']}/users/{me_a['user']['id']}/roles/{member}"
    )
    assert cloud.client.delete(grant, headers=cloud.admin).status_code == 204
    assert cloud.client.get(SERVERS, headers=headers).status_code == 401
    assert _trust_token(cloud, "bob", trust["id"])[0] == 403  # the trustor lacks the role now
    assert cloud.client.put(grant, headers=cloud.admin).status_code == 204
    token = _trust_token(cloud, "bob", trust["id"])[2]
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 200
    user = f"/identity/v3/users/{me_a['user']['id']}"
    disabled = cloud.client.patch(user, headers=cloud.admin, json={"user": {"enabled": False}})
    assert disabled.status_code == 200
    assert cloud.client.get(SERVERS, headers={"X-Auth-Token": token}).status_code == 401
    assert _trust_token(cloud, "bob", trust["id"])[0] == 403


def test_a_trust_token_cannot_make_trusts_nor_be_rescoped(cloud: Cloud) -> None:
    alice, me_a, _, me_b = _pair(cloud)
    trust = _create(cloud, alice, _trust_body(me_a, me_b))
    token = _trust_token(cloud, "bob", trust["id"])[2]
    headers = {"X-Auth-Token": token}
    answer = cloud.client.post(TRUSTS, headers=headers, json=_trust_body(me_a, me_b))
    assert answer.status_code == 403
    rescope = {"auth": {"identity": {"methods": ["token"], "token": {"id": token}}}}
    assert cloud.client.post(TOKENS, json=rescope).status_code == 403
    bad_scope = _trust_auth("bob", trust["id"])
    bad_scope["auth"]["scope"]["project"] = {"id": me_a["project"]["id"]}
    assert cloud.client.post(TOKENS, json=bad_scope).status_code == 400
    no_id = _trust_auth("bob", trust["id"])
    no_id["auth"]["scope"]["OS-TRUST:trust"] = {"id": 5}
    assert cloud.client.post(TOKENS, json=no_id).status_code == 400


def test_version_1_token_payloads_still_decode() -> None:
    now = time.time_ns() // 1000 / 1e6  # the precision a payload keeps
    claims = TokenClaims("a" * 32, "b" * 32, ("password",), new_audit_id(), now, now + 60)
    current = pack(claims)
    assert current[0] == 2 and unpack(current) == claims
    version_1 = b"\x01" + current[1:-2]  # no trust / application credential ids
    assert unpack(version_1) == claims
    trust = TokenClaims("a" * 32, "b" * 32, ("password",), claims.audit_id, now, now + 60, "t1")
    assert unpack(pack(trust)).trust_id == "t1"
    assert struct.unpack_from(">B", pack(trust))[0] == 2


# -- the real clients ------------------------------------------------------------------------


@pytest.mark.cli
def test_openstack_cli_trusts_and_keystoneauth_trust_auth(live_cloud: Cloud) -> None:
    cloud = live_cloud
    assert cloud.clouds_yaml is not None
    yaml_path = cloud.clouds_yaml
    created = openstack_json(
        ["trust", "create", "--project", "admin", "--role", "member", "--impersonate",
         "admin", "demo"],
        yaml_path,
        "isthmus",
    )  # fmt: skip
    assert created["is_impersonation"] is True
    assert [r["name"] for r in created["roles"]] == ["member"]
    assert created["project_id"] == _me(cloud, cloud.admin)["project"]["id"]
    listed = openstack_json(["trust", "list"], yaml_path, "isthmus")
    assert created["id"] in [t["ID"] for t in listed]
    shown = openstack_json(["trust", "show", created["id"]], yaml_path, "isthmus")
    assert shown["trustee_user_id"] == created["trustee_user_id"]
    # the trustee sees it too, through its own filter
    mine = openstack_json(["trust", "list", "--auth-user"], yaml_path, "isthmus-demo")
    assert [t["ID"] for t in mine] == [created["id"]]
    as_trustee = openstack_json(["trust", "show", created["id"]], yaml_path, "isthmus-demo")
    assert as_trustee["trustor_user_id"] == created["trustor_user_id"]

    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=f"{cloud.url}/identity/v3",
        username="demo",
        password=cloud.service.passwords["demo"],
        user_domain_id="default",
        trust_id=created["id"],
    )
    sess = ks_session.Session(auth=auth)
    token = sess.get_token()
    assert token
    access = auth.get_access(sess)
    assert access.trust_id == created["id"] and access.trust_scoped
    assert access.user_id == created["trustor_user_id"]  # impersonation
    servers = sess.get(
        f"{cloud.url}/compute/v2.1/servers",
        headers={"X-Auth-Token": token},
        authenticated=False,
        raise_exc=False,
    )
    assert servers.status_code == 200

    deleted = run_openstack(["trust", "delete", created["id"]], yaml_path, "isthmus")
    assert deleted.returncode == 0, deleted.stderr
    assert openstack_json(["trust", "list"], yaml_path, "isthmus") == []
    gone = sess.get(
        f"{cloud.url}/compute/v2.1/servers",
        headers={"X-Auth-Token": token},
        authenticated=False,
        raise_exc=False,
    )
    assert gone.status_code == 401


def test_heat_flow_role_ids_with_implied_reader_and_the_trust_token_deletes_its_trust(
    cloud: Cloud,
) -> None:
    """What Heat does (deferred_auth_method = trusts): the user's token makes a trust for
    Heat's trustee with role ids including the implied reader, allow_redelegation false;
    the trustee's trust-scoped token carries the catalog and acts as the user; at stack
    delete the trust goes, through that same token."""
    alice, me_a, _, me_b = _pair(cloud)
    role_ids = [{"id": r["id"]} for r in me_a["roles"]]  # member and reader
    body = _trust_body(me_a, me_b, roles=role_ids, allow_redelegation=False)
    trust = _create(cloud, alice, body)
    assert {r["name"] for r in trust["roles"]} == {"member", "reader"}
    assert trust["allow_redelegation"] is False
    status, got, token = _trust_token(cloud, "bob", trust["id"])
    assert status == 201
    types = {entry["type"] for entry in got["token"]["catalog"]}
    assert {"identity", "compute", "network", "image"} <= types
    headers = {"X-Auth-Token": token}
    assert cloud.client.delete(f"{TRUSTS}/{trust['id']}", headers=headers).status_code == 204
    assert cloud.client.get(SERVERS, headers=headers).status_code == 401
