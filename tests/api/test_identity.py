"""Keystone v3 subset: tokens, catalog, projects/users/roles, policy."""

from __future__ import annotations

from tests.support import Cloud


def test_token_has_catalog_and_validates(cloud: Cloud) -> None:
    token = cloud.admin["X-Auth-Token"]
    response = cloud.client.get(
        "/identity/v3/auth/tokens", headers={**cloud.admin, "X-Subject-Token": token}
    )
    assert response.status_code == 200
    body = response.json()["token"]
    assert {"admin", "member", "reader"} <= {r["name"] for r in body["roles"]}
    types = {entry["type"] for entry in body["catalog"]}
    assert {"identity", "compute", "network", "volumev3", "image"} <= types


def test_bad_password_is_401_and_bad_token_is_401(cloud: Cloud) -> None:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "domain": {"id": "default"}, "password": "wrong"}
                },
            }
        }
    }
    response = cloud.client.post("/identity/v3/auth/tokens", json=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401
    assert (
        cloud.client.get("/identity/v3/projects", headers={"X-Auth-Token": "nonsense"}).status_code
        == 401
    )
    assert cloud.client.get("/identity/v3/projects").status_code == 401


def test_member_cannot_manage_identity_and_sees_only_own_project(cloud: Cloud) -> None:
    response = cloud.client.post(
        "/identity/v3/projects", headers=cloud.demo, json={"project": {"name": "x"}}
    )
    assert response.status_code == 403
    names = [
        p["name"]
        for p in cloud.client.get("/identity/v3/projects", headers=cloud.demo).json()["projects"]
    ]
    assert names == ["demo"]


def test_admin_creates_project_user_and_grant(cloud: Cloud) -> None:
    headers = cloud.new_member("alice")
    token = headers["X-Auth-Token"]
    body = cloud.client.get(
        "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": token}
    ).json()["token"]
    assert body["project"]["name"] == "alice"
    assert "admin" not in {r["name"] for r in body["roles"]}
    duplicate = cloud.client.post(
        "/identity/v3/projects", headers=cloud.admin, json={"project": {"name": "alice"}}
    )
    assert duplicate.status_code == 409
    missing_name = cloud.client.post("/identity/v3/users", headers=cloud.admin, json={"user": {}})
    assert missing_name.status_code == 400


def test_a_revoked_token_stops_working(cloud: Cloud) -> None:
    headers = cloud.headers("demo", "demo")
    token = headers["X-Auth-Token"]
    assert cloud.client.get("/compute/v2.1/servers", headers=headers).status_code == 200
    other = cloud.new_member("mallory")
    forbidden = cloud.client.delete(
        "/identity/v3/auth/tokens", headers={**other, "X-Subject-Token": token}
    )
    assert forbidden.status_code == 403
    revoked = cloud.client.delete(
        "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": token}
    )
    assert revoked.status_code == 204
    assert cloud.client.get("/compute/v2.1/servers", headers=headers).status_code == 401
    check = cloud.client.get(
        "/identity/v3/auth/tokens", headers={**cloud.admin, "X-Subject-Token": token}
    )
    assert check.status_code == 404
    assert cloud.client.get("/compute/v2.1/servers", headers=cloud.admin).status_code == 200
