"""The admin REST API (/isthmus/v1) and /metrics, in-process on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from isthmus.errors import BadRequest
from isthmus.store import repo
from isthmus.store.placement import place
from isthmus.store.tables import Resource
from tests.support import Cloud, add_network, add_server, project_id

API = "/isthmus/v1"


def sites(cloud: Cloud) -> dict[str, dict[str, Any]]:
    response = cloud.client.get(f"{API}/sites", headers=cloud.admin)
    assert response.status_code == 200, response.text
    return {site["name"]: site for site in response.json()["sites"]}


def error(response: Any) -> str:
    return str(response.json()["error"]["message"])


def delete_server(cloud: Cloud, server_id: str) -> None:
    with cloud.service.db.session() as session:
        server = session.get(Resource, server_id)
        assert server is not None
        repo.mark_deleting(session, server)
        for port in session.scalars(
            select(Resource).where(Resource.kind == "port", Resource.device_id == server_id)
        ):
            repo.mark_deleting(session, port)
    cloud.service.wake()


def test_site_list_fields(cloud: Cloud) -> None:
    listed = sites(cloud)
    assert sorted(listed) == ["site-a", "site-b", "site-c"]
    site = listed["site-a"]
    assert site["driver"] == "local"
    assert site["availability_zone"] == "site-a"
    assert site["enabled"] is True
    assert site["health"] == "up"
    assert site["last_error"] is None
    assert site["last_seen"].endswith("Z")
    assert site["capacity"] == {"vcpus": 64, "ram_mb": 131072, "disk_gb": 2000}
    assert site["usage"]["vcpus"] == 0
    assert site["data_plane"]
    assert site["bindings"] == {} and site["placed"] == {}
    assert site["queued_work"] == 0 and site["work_with_errors"] == 0


def test_add_show_down_up_remove(cloud: Cloud) -> None:
    response = cloud.client.post(
        f"{API}/sites",
        headers=cloud.admin,
        json={"name": "site-d", "driver": "local", "config": {"vcpus": 8, "boot_seconds": 0}},
    )
    assert response.status_code == 201, response.text
    site = response.json()["site"]
    assert site["health"] == "up"  # checked at once
    assert site["capacity"]["vcpus"] == 8
    assert "site-d" in sites(cloud)
    with cloud.service.db.session() as session:  # usable for placement right away
        assert place(session, {"vcpus": 1, "ram_mb": 512, "disk_gb": 1}, "site-d") == "site-d"
        from isthmus.store.placement import release

        release(session, "site-d", {"vcpus": 1, "ram_mb": 512, "disk_gb": 1})

    down = cloud.client.post(f"{API}/sites/site-d/down", headers=cloud.admin)
    assert down.status_code == 200, down.text
    assert down.json()["site"]["health"] == "down"
    assert "down" in down.json()["site"]["last_error"]
    shown = cloud.client.get(f"{API}/sites/site-d", headers=cloud.admin).json()["site"]
    assert shown["health"] == "down"

    up = cloud.client.post(f"{API}/sites/site-d/up", headers=cloud.admin)
    assert up.status_code == 200, up.text
    assert up.json()["site"]["health"] == "up"
    assert up.json()["site"]["last_error"] is None

    assert cloud.client.delete(f"{API}/sites/site-d", headers=cloud.admin).status_code == 204
    assert cloud.client.get(f"{API}/sites/site-d", headers=cloud.admin).status_code == 404
    assert "site-d" not in sites(cloud)


def test_add_site_errors(cloud: Cloud) -> None:
    post = cloud.client.post
    response = post(f"{API}/sites", headers=cloud.admin, json={"name": "site-a"})
    assert response.status_code == 409
    assert "already exists" in error(response)
    response = post(f"{API}/sites", headers=cloud.admin, json={"name": "x", "driver": "aws"})
    assert response.status_code == 400
    assert "aws" in error(response) and "local" in error(response)
    for bad in ("", "-a", "a b", "a:b", "x" * 64, "ü"):
        response = post(f"{API}/sites", headers=cloud.admin, json={"name": bad})
        assert response.status_code == 400, bad
    response = post(f"{API}/sites", headers=cloud.admin, json={"name": "x", "config": {"foo": 1}})
    assert response.status_code == 400 and "foo" in error(response)
    response = post(
        f"{API}/sites", headers=cloud.admin, json={"name": "x", "config": {"vcpus": "many"}}
    )
    assert response.status_code == 400 and "vcpus" in error(response)
    response = post(f"{API}/sites", headers=cloud.admin, json={"name": "x", "color": "red"})
    assert response.status_code == 400
    assert sorted(sites(cloud)) == ["site-a", "site-b", "site-c"]  # nothing changed


def test_not_found_cases(cloud: Cloud) -> None:
    for method, path in (
        ("GET", "/sites/nope"),
        ("DELETE", "/sites/nope"),
        ("POST", "/sites/nope/down"),
        ("POST", "/sites/nope/up"),
        ("GET", "/resources/nope"),
    ):
        response = cloud.client.request(method, f"{API}{path}", headers=cloud.admin)
        assert response.status_code == 404, (method, path)
        assert "nope" in error(response)
    response = cloud.client.patch(f"{API}/sites/nope", headers=cloud.admin, json={"enabled": False})
    assert response.status_code == 404


def test_member_gets_403_and_anonymous_401(cloud: Cloud) -> None:
    for method, path in (
        ("GET", "/sites"),
        ("POST", "/sites"),
        ("GET", "/sites/site-a"),
        ("DELETE", "/sites/site-a"),
        ("PATCH", "/sites/site-a"),
        ("POST", "/sites/site-a/down"),
        ("POST", "/sites/site-a/up"),
        ("GET", "/resources/x"),
        ("GET", "/work"),
    ):
        body = {"name": "site-z"} if method == "POST" else {"enabled": False}
        kwargs: dict[str, Any] = {} if method in ("GET", "DELETE") else {"json": body}
        response = cloud.client.request(method, f"{API}{path}", headers=cloud.demo, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        response = cloud.client.request(method, f"{API}{path}", **kwargs)
        assert response.status_code == 401, (method, path)
    assert sites(cloud)["site-a"]["health"] == "up"
    assert sites(cloud)["site-a"]["enabled"] is True


def test_disabled_site_takes_no_placements(cloud: Cloud) -> None:
    response = cloud.client.patch(
        f"{API}/sites/site-a", headers=cloud.admin, json={"enabled": False}
    )
    assert response.status_code == 200
    assert response.json()["site"]["enabled"] is False
    need = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1}
    with pytest.raises(BadRequest), cloud.service.db.session() as session:
        place(session, need, "site-a")
    with cloud.service.db.session() as session:
        assert {place(session, need, None) for _ in range(4)} <= {"site-b", "site-c"}
    assert (
        cloud.client.patch(f"{API}/sites/site-a", headers=cloud.admin, json={}).status_code == 400
    )
    response = cloud.client.patch(
        f"{API}/sites/site-a", headers=cloud.admin, json={"enabled": True}
    )
    assert response.json()["site"]["enabled"] is True


def test_remove_refused_while_in_use(cloud: Cloud) -> None:
    project = project_id(cloud.service)
    net, _ = add_network(cloud.service, project)
    server = add_server(cloud.service, project, net, "vm", az="site-b")
    cloud.service.wake()
    cloud.wait_idle()
    response = cloud.client.delete(f"{API}/sites/site-b", headers=cloud.admin)
    assert response.status_code == 409
    assert "in use" in error(response) and "bound" in error(response)
    site = sites(cloud)["site-b"]
    assert site["bindings"]["server"] == 1 and site["placed"]["server"] == 1
    assert site["usage"]["servers"] in (0, 1)  # the health loop may not have looked yet
    delete_server(cloud, server)
    cloud.wait_idle()
    assert cloud.client.delete(f"{API}/sites/site-b", headers=cloud.admin).status_code == 204


def test_resource_view_explains_stuck_work(cloud: Cloud) -> None:
    project = project_id(cloud.service)
    net, _ = add_network(cloud.service, project)
    cloud.client.post(f"{API}/sites/site-c/down", headers=cloud.admin)
    server = add_server(cloud.service, project, net, "stuck", az="site-c")
    cloud.service.wake()
    detail = cloud.client.get(f"{API}/resources/{server}", headers=cloud.admin).json()
    assert detail["resource"]["kind"] == "server"
    assert detail["resource"]["site"] == "site-c"
    assert detail["resource"]["status"] == "BUILD"
    assert detail["bindings"] == []
    [work] = detail["work"]
    assert work["site"] == "site-c" and work["site_health"] == "down"

    summary = cloud.client.get(f"{API}/work", headers=cloud.admin).json()
    assert summary["total"] >= 1
    groups = {(g["site"], g["kind"]): g for g in summary["groups"]}
    assert groups[("site-c", "server")]["queued"] == 1
    assert groups[("site-c", "server")]["site_health"] == "down"
    assert summary["oldest"] is not None
    assert sites(cloud)["site-c"]["queued_work"] >= 1
    metrics = cloud.client.get("/metrics", headers=cloud.admin).text
    assert 'isthmus_sites{health="down"} 1.0' in metrics
    assert 'isthmus_work_queued{site="site-c"}' in metrics
    assert 'isthmus_work_queued{site="site-c"} 0.0' not in metrics

    cloud.client.post(f"{API}/sites/site-c/up", headers=cloud.admin)
    cloud.wait_idle()
    detail = cloud.client.get(f"{API}/resources/{server}", headers=cloud.admin).json()
    assert detail["resource"]["status"] == "ACTIVE"
    [binding] = detail["bindings"]
    assert binding["site"] == "site-c" and binding["in_sync"] is True
    assert binding["observed_status"] == "ACTIVE"
    assert detail["work"] == []
    assert cloud.client.get(f"{API}/work", headers=cloud.admin).json()["total"] == 0


def test_health_needs_no_auth(cloud: Cloud) -> None:
    response = cloud.client.get(f"{API}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["sites"] == {"up": 3}


def test_openapi_document(cloud: Cloud) -> None:
    response = cloud.client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for path in (
        "/isthmus/v1/sites",
        "/isthmus/v1/sites/{name}",
        "/isthmus/v1/sites/{name}/down",
        "/isthmus/v1/sites/{name}/up",
        "/isthmus/v1/resources/{resource_id}",
        "/isthmus/v1/work",
        "/isthmus/v1/health",
    ):
        assert path in paths, path
    assert {"get", "post"} <= set(paths["/isthmus/v1/sites"])
    assert {"get", "patch", "delete"} <= set(paths["/isthmus/v1/sites/{name}"])
    schemas = document["components"]["schemas"]
    site_view = schemas["SiteView"]["properties"]
    assert all(field.get("description") for field in site_view.values())
    assert "health" in site_view and "queued_work" in site_view
    assert schemas["SiteCreate"]["properties"]["name"]["description"]


def test_metrics_gauges(cloud: Cloud) -> None:
    response = cloud.client.get("/metrics", headers=cloud.admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "isthmus_store_up 1.0" in text
    assert 'isthmus_sites{health="up"} 3.0' in text
    assert 'isthmus_site_health{health="up",site="site-a"} 1.0' in text
    assert 'isthmus_work_queued{site="site-b"} 0.0' in text
    assert 'isthmus_resources{kind="flavor",status="ACTIVE"} 5.0' in text
    assert "# TYPE isthmus_resources gauge" in text


def test_an_embedded_site_can_ask_for_the_data_plane(cloud: Cloud) -> None:
    response = cloud.client.post(
        "/isthmus/v1/sites",
        headers=cloud.admin,
        json={"name": "site-dp", "driver": "local", "config": {"data_plane": False}},
    )
    assert response.status_code == 201, response.text
    assert response.json()["site"]["config"]["data_plane"] is False
    bad = cloud.client.post(
        "/isthmus/v1/sites",
        headers=cloud.admin,
        json={"name": "site-dq", "driver": "local", "config": {"data_plane": "yes"}},
    )
    assert bad.status_code == 400
    assert "data_plane" in bad.json()["error"]["message"]
