"""Drift, observed state flowing back and foreign objects, with embedded sites
(engine/drift.py), in-process on SQLite and PostgreSQL.

Things happen "behind Isthmus' back" through the embedded site's own state
(`LocalDriver.state`), the way an operator would use a cloud's own API."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import select

from isthmus.cli.sites import foreign_table, foreign_text, site_detail
from isthmus.engine.drift import sweep_site
from isthmus.sites.local import LocalDriver
from isthmus.store.tables import Binding, Resource
from isthmus.store.work import enqueue
from tests.support import Cloud, add_network, make_service, project_id
from tests.waiting import wait_for

C, V3, API = "/compute/v2.1", "/volume/v3", "/isthmus/v1"


def render(table: Any) -> str:
    out = Console(width=200, record=True, file=io.StringIO())
    out.print(table)
    return out.export_text()


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def local(cloud: Cloud, site: str) -> LocalDriver:
    driver = cloud.service.sites.get(site)
    assert isinstance(driver, LocalDriver)
    return driver


def boot(cloud: Cloud, az: str = "site-a", name: str = "vm") -> str:
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name=f"{name}-net")
    with cloud.service.db.read() as session:
        image = session.scalar(select(Resource.id).where(Resource.kind == "image"))
    body = {
        "server": {
            "name": name,
            "flavorRef": "1",
            "imageRef": image,
            "availability_zone": az,
            "networks": [{"uuid": net}],
        }
    }
    server_id = ok(cloud.client.post(f"{C}/servers", headers=cloud.demo, json=body), 202)["server"][
        "id"
    ]
    cloud.wait_idle()
    assert server(cloud, server_id)["status"] == "ACTIVE"
    return str(server_id)


def server(cloud: Cloud, server_id: str) -> Any:
    return ok(cloud.client.get(f"{C}/servers/{server_id}", headers=cloud.demo))["server"]


def delete_behind_the_back(cloud: Cloud, site: str, kind: str, resource_id: str) -> None:
    driver = local(cloud, site)
    obj = driver.state.find(kind, resource_id)
    assert obj is not None
    driver.state.remove(obj.site_id)


def touch(cloud: Cloud, server_id: str, key: str) -> None:
    """A change that makes the engine reconcile the server in its site."""
    url = f"{C}/servers/{server_id}"
    ok(cloud.client.put(url, headers=cloud.demo, json={"server": {"name": key}}))
    cloud.wait_idle()


def test_a_server_deleted_in_its_site_shows_as_drift_and_is_not_recreated(cloud: Cloud) -> None:
    server_id = boot(cloud)
    driver = local(cloud, "site-a")
    delete_behind_the_back(cloud, "site-a", "server", server_id)

    result = sweep_site(cloud.service.db, cloud.service.sites, "site-a")
    assert result.drifted == [server_id] and result.error is None
    shown = server(cloud, server_id)
    assert shown["status"] == "ERROR"
    assert shown["OS-EXT-STS:vm_state"] == "error"
    assert "deleted in site site-a outside Isthmus" in shown["fault"]["message"]
    detail = ok(cloud.client.get(f"{API}/resources/{server_id}", headers=cloud.admin))
    (binding,) = detail["bindings"]
    assert binding["drifted_at"] and binding["observed_status"] == "DELETED"
    assert "outside Isthmus" in binding["last_error"]
    site = ok(cloud.client.get(f"{API}/sites/site-a", headers=cloud.admin))["site"]
    assert site["drifted"] == {"server": 1}
    assert "server 1" in render(site_detail(site))
    metrics = cloud.client.get("/metrics", headers=cloud.admin).text
    assert 'isthmus_drifted{kind="server",site="site-a"} 1.0' in metrics

    # neither a change, nor the next sweep, nor a retry brings it back
    touch(cloud, server_id, "a")
    assert sweep_site(cloud.service.db, cloud.service.sites, "site-a").drifted == []
    with cloud.service.db.session() as session:
        enqueue(session, server_id, "server", "site-a")  # as a retry would
    cloud.wait_idle()
    assert driver.state.find("server", server_id) is None
    assert server(cloud, server_id)["status"] == "ERROR"

    # the tenant can delete it: nothing is left, in the store or the site
    ports = ok(cloud.client.get(f"/network/v2.0/ports?device_id={server_id}", headers=cloud.demo))
    assert ok(cloud.client.delete(f"{C}/servers/{server_id}", headers=cloud.demo), 204) is None
    cloud.wait_idle()
    assert cloud.client.get(f"{C}/servers/{server_id}", headers=cloud.demo).status_code == 404
    with cloud.service.db.read() as session:
        assert session.scalar(select(Binding).where(Binding.resource_id == server_id)) is None
    for port in ports["ports"]:
        assert driver.state.find("port", port["id"]) is None
    metrics = cloud.client.get("/metrics", headers=cloud.admin).text
    assert 'isthmus_drifted{kind="server",site="site-a"}' not in metrics


def test_the_engine_catches_a_deletion_no_sweep_saw_and_an_operator_can_recreate(
    cloud: Cloud,
) -> None:
    server_id = boot(cloud, "site-b")
    driver = local(cloud, "site-b")
    first_site_id = driver.state.find("server", server_id).site_id  # type: ignore[union-attr]
    delete_behind_the_back(cloud, "site-b", "server", server_id)
    touch(cloud, server_id, "b")  # the worker looks before it ensures
    assert driver.state.find("server", server_id) is None
    shown = server(cloud, server_id)
    assert shown["status"] == "ERROR"
    assert "deleted in site site-b outside Isthmus" in shown["fault"]["message"]
    assert shown["name"] == "b"

    # an operator asks for it again: made anew in its site, ACTIVE
    url = f"{API}/resources/{server_id}/recreate"
    assert cloud.client.post(url, headers=cloud.demo).status_code == 403
    answer = ok(cloud.client.post(url, headers=cloud.admin), 202)
    assert answer["sites"] == ["site-b"] and answer["resource"]["status"] == "BUILD"
    cloud.wait_idle()
    again = driver.state.find("server", server_id)
    assert again is not None and again.site_id != first_site_id
    assert again.spec["name"] == "b"
    shown = server(cloud, server_id)
    assert shown["status"] == "ACTIVE" and "fault" not in shown
    # not drifted (any more): nothing to recreate, and nothing changed
    conflict = cloud.client.post(url, headers=cloud.admin)
    assert conflict.status_code == 409 and "has not drifted" in conflict.text
    assert (
        cloud.client.post(f"{API}/resources/nope/recreate", headers=cloud.admin).status_code == 404
    )
    assert server(cloud, server_id)["status"] == "ACTIVE"


def test_a_volume_deleted_in_its_site_is_drift_and_can_be_deleted(cloud: Cloud) -> None:
    body = {"volume": {"size": 1, "name": "data", "availability_zone": "site-c"}}
    volume = ok(cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json=body), 202)["volume"]
    cloud.wait_idle()
    url = f"{V3}/volumes/{volume['id']}"
    assert ok(cloud.client.get(url, headers=cloud.demo))["volume"]["status"] == "available"
    delete_behind_the_back(cloud, "site-c", "volume", volume["id"])
    assert sweep_site(cloud.service.db, cloud.service.sites, "site-c").drifted == [volume["id"]]
    assert ok(cloud.client.get(url, headers=cloud.demo))["volume"]["status"] == "error"
    ok(cloud.client.put(url, headers=cloud.demo, json={"volume": {"name": "renamed"}}))
    cloud.wait_idle()
    assert local(cloud, "site-c").state.find("volume", volume["id"]) is None
    assert cloud.client.delete(url, headers=cloud.demo).status_code == 202
    cloud.wait_idle()
    assert cloud.client.get(url, headers=cloud.demo).status_code == 404


def test_a_server_the_site_puts_in_error_shows_error_with_the_sites_fault(cloud: Cloud) -> None:
    server_id = boot(cloud)
    driver = local(cloud, "site-a")
    obj = driver.state.find("server", server_id)
    assert obj is not None
    driver.state.update(obj.site_id, status="ERROR", fault="hypervisor lost power")
    result = sweep_site(cloud.service.db, cloud.service.sites, "site-a")
    assert result.refreshed == [server_id] and result.drifted == []
    shown = server(cloud, server_id)
    assert shown["status"] == "ERROR"
    assert shown["fault"]["message"] == "hypervisor lost power"
    # and back: the site repaired it
    driver.state.update(obj.site_id, status="ACTIVE", fault=None)
    sweep_site(cloud.service.db, cloud.service.sites, "site-a")
    shown = server(cloud, server_id)
    assert shown["status"] == "ACTIVE" and "fault" not in shown


def test_foreign_objects_are_listed_never_touched_and_shown_while_the_site_is_down(
    cloud: Cloud,
) -> None:
    driver = local(cloud, "site-a")
    site = ok(cloud.client.get(f"{API}/sites/site-a", headers=cloud.admin))["site"]
    if not site["foreign"]["known"]:  # the health loop may have swept already
        assert "not swept yet" in site["foreign"]["reason"]
    made = driver.state.create("network", "", "ops-net", {}, "ACTIVE")
    driver.state.create("server", "", "ops-vm", {"vcpus": 1, "ram_mb": 64, "disk_gb": 1}, "ACTIVE")
    assert all(o.isthmus_id for o in driver.inventory())
    sweep_site(cloud.service.db, cloud.service.sites, "site-a")
    foreign = ok(cloud.client.get(f"{API}/sites/site-a", headers=cloud.admin))["site"]["foreign"]
    assert foreign["known"] and foreign["total"] == 2
    assert foreign["counts"] == {"network": 1, "server": 1}
    assert {"kind": "network", "id": made.site_id, "name": "ops-net"} in foreign["items"]
    assert foreign_text(foreign).startswith("2 (network 1, server 1)")
    assert "ops-net" in render(foreign_table(foreign))
    metrics = cloud.client.get("/metrics", headers=cloud.admin).text
    assert 'isthmus_site_foreign_objects{kind="network",site="site-a"} 1.0' in metrics

    # Isthmus works in the site around them, and leaves them there
    server_id = boot(cloud, "site-a", "neighbour")
    ok(cloud.client.delete(f"{C}/servers/{server_id}", headers=cloud.demo), 204)
    cloud.wait_idle()
    sweep_site(cloud.service.db, cloud.service.sites, "site-a")
    assert driver.state.get(made.site_id) is not None
    assert sorted(o.name for o in driver.foreign()) == ["ops-net", "ops-vm"]

    # the site goes down: `site show` still answers, from the last sweep, and says so
    ok(cloud.client.post(f"{API}/sites/site-a/down", headers=cloud.admin))
    result = sweep_site(cloud.service.db, cloud.service.sites, "site-a")
    assert result.error is not None and "down" in result.error
    foreign = ok(cloud.client.get(f"{API}/sites/site-a", headers=cloud.admin))["site"]["foreign"]
    assert foreign["total"] == 2 and "down" in foreign["reason"]
    ok(cloud.client.post(f"{API}/sites/site-a/up", headers=cloud.admin))


def test_the_health_loop_sweeps_at_its_interval(cloud: Cloud) -> None:
    server_id = boot(cloud, "site-c")
    cloud.service.health.sweep_interval = 0.2
    delete_behind_the_back(cloud, "site-c", "server", server_id)
    wait_for(
        lambda: server(cloud, server_id)["status"] == "ERROR",
        timeout=20,
        what="the health loop to find the drift",
    )
    assert "outside Isthmus" in server(cloud, server_id)["fault"]["message"]


def test_drift_is_remembered_across_a_restart(tmp_path: Path, db_url: str) -> None:
    service = make_service(tmp_path / "data", db_url)
    cloud = Cloud(service)
    server_id = boot(cloud, "site-a")
    delete_behind_the_back(cloud, "site-a", "server", server_id)
    assert sweep_site(service.db, service.sites, "site-a").drifted == [server_id]
    with service.db.session() as session:  # work a crash left behind
        enqueue(session, server_id, "server", "site-a")
    service.stop()

    again = make_service(tmp_path / "data", db_url)
    try:
        assert again.engine.run_until_idle(30)
        driver = again.sites.get("site-a")
        assert isinstance(driver, LocalDriver)
        assert driver.state.find("server", server_id) is None
        with again.db.read() as session:
            resource = session.get(Resource, server_id)
            assert resource is not None and resource.status == "ERROR"
            assert resource.observed.get("drifted") is True
    finally:
        again.stop()


def test_the_migrations_make_the_tables_the_models_describe(db_url: str) -> None:
    """0002 (drift, foreign objects) and every later revision keep the schema and
    store/tables.py equal."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from isthmus.store.db import Database
    from isthmus.store.tables import Base

    db = Database(db_url)
    try:
        db.migrate()
        with db.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        db.dispose()
