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


def test_version_list_is_300_multiple_choices(cloud: Cloud) -> None:
    for path in ("/identity", "/identity/"):
        response = cloud.client.get(path)
        assert response.status_code == 300
        (version,) = response.json()["versions"]["values"]
        assert version["id"].startswith("v3") and version["media-types"]
        assert response.headers["X-OpenStack-Request-Id"].startswith("req-")
        assert "X-Compute-Request-Id" not in response.headers  # Nova's alone
    assert cloud.client.get("/identity/v3").status_code == 200


def _password_auth(user_id: str, password: str, scope: dict | None = None) -> dict:
    auth: dict = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"id": user_id, "password": password}},
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def test_unscoped_token_for_a_user_without_default_project(cloud: Cloud) -> None:
    """As Keystone: no scope and no usable default project gives an unscoped token
    (no project, roles or catalog) that the identity API accepts, e.g. to list the
    user's projects and rescope, and that every other service refuses."""
    headers = cloud.new_member("nomad")  # creates project nomad and a member grant
    user_id = cloud.client.get(
        "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": headers["X-Auth-Token"]}
    ).json()["token"]["user"]["id"]
    cloud.client.patch(
        f"/identity/v3/users/{user_id}",
        headers=cloud.admin,
        json={"user": {"default_project_id": None}},
    )
    issued = cloud.client.post("/identity/v3/auth/tokens", json=_password_auth(user_id, "nomad-pw"))
    assert issued.status_code == 201, issued.text
    body = issued.json()["token"]
    assert body["user"]["id"] == user_id and body["methods"] == ["password"]
    assert not {"project", "roles", "catalog"} & set(body)
    unscoped = {"X-Auth-Token": issued.headers["X-Subject-Token"]}
    shown = cloud.client.get(
        "/identity/v3/auth/tokens",
        headers={**unscoped, "X-Subject-Token": unscoped["X-Auth-Token"]},
    )
    assert shown.status_code == 200 and shown.json()["token"] == body
    projects = cloud.client.get("/identity/v3/auth/projects", headers=unscoped).json()["projects"]
    assert [p["name"] for p in projects] == ["nomad"]
    assert cloud.client.get("/identity/v3/auth/catalog", headers=unscoped).status_code == 403
    assert cloud.client.get("/compute/v2.1/servers", headers=unscoped).status_code == 401
    assert cloud.client.get("/network/v2.0/networks", headers=unscoped).status_code == 401
    rescoped = cloud.client.post(
        "/identity/v3/auth/tokens",
        json={
            "auth": {
                "identity": {"methods": ["token"], "token": {"id": unscoped["X-Auth-Token"]}},
                "scope": {"project": {"id": projects[0]["id"]}},
            }
        },
    )
    assert rescoped.status_code == 201, rescoped.text
    assert rescoped.json()["token"]["project"]["name"] == "nomad"
    # a default project the user has no role on gives an unscoped token too (not a 401)
    cloud.client.patch(
        f"/identity/v3/users/{user_id}",
        headers=cloud.admin,
        json={"user": {"default_project_id": project_id_of(cloud, "demo")}},
    )
    again = cloud.client.post("/identity/v3/auth/tokens", json=_password_auth(user_id, "nomad-pw"))
    assert again.status_code == 201 and "project" not in again.json()["token"]


def project_id_of(cloud: Cloud, name: str) -> str:
    listed = cloud.client.get(f"/identity/v3/projects?name={name}", headers=cloud.admin).json()
    return str(listed["projects"][0]["id"])
