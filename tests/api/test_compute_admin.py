"""Compute admin APIs over the sites: os-hypervisors (one per site, figures from
the health loop, ids per microversion, 2.53 servers and patterns, 2.88 removed
fields), os-services (a site's nova-compute service; disabling it disables the
site's scheduling) and os-aggregates (one per site, read-only); members get 403,
bad input changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from isthmus.store.tables import Site
from tests.api.test_compute import boot_ok, demo_network, show
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, make_service

V = "/compute/v2.1"
HYP = f"{V}/os-hypervisors"
SITES = ["site-a", "site-b", "site-c"]


def at(headers: dict[str, str], version: str) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


def get(
    cloud: Cloud, path: str, version: str = "2.1", headers: dict[str, str] | None = None
) -> Any:
    response = cloud.client.get(path, headers=at(headers or cloud.admin, version))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def quiet_cloud(tmp_path: Path, db_url: str) -> Iterator[Cloud]:
    """A cloud whose engine and health checks do not run: only requests write."""
    service = make_service(tmp_path / "data", db_url)
    yield Cloud(service)
    service.db.dispose()


def test_hypervisors_are_the_sites_with_their_figures(cloud: Cloud) -> None:
    net = demo_network(cloud)
    server = boot_ok(cloud, net, "vm", availability_zone="site-b")
    cloud.wait_idle()
    cloud.service.health.check_all()
    assert show(cloud, server)["status"] == "ACTIVE"

    listed = get(cloud, HYP)["hypervisors"]
    assert [h["hypervisor_hostname"] for h in listed] == SITES
    assert all(set(h) == {"id", "hypervisor_hostname", "state", "status"} for h in listed)
    assert all(isinstance(h["id"], int) for h in listed)
    assert {(h["state"], h["status"]) for h in listed} == {("up", "enabled")}

    detail = {h["hypervisor_hostname"]: h for h in get(cloud, f"{HYP}/detail")["hypervisors"]}
    b = detail["site-b"]
    with cloud.service.db.read() as session:
        site = session.get(Site, "site-b")
        assert site is not None
        capacity, usage = dict(site.capacity), dict(site.usage)
    assert (b["vcpus"], b["memory_mb"], b["local_gb"]) == (
        capacity["vcpus"],
        capacity["ram_mb"],
        capacity["disk_gb"],
    )
    assert b["running_vms"] == usage["servers"] == 1
    assert b["vcpus_used"] == usage["vcpus"] >= 1
    assert b["free_ram_mb"] == b["memory_mb"] - b["memory_mb_used"]
    assert isinstance(b["cpu_info"], str) and b["service"]["host"] == "site-b"
    assert detail["site-a"]["running_vms"] == 0

    one = get(cloud, f"{HYP}/{b['id']}")["hypervisor"]
    assert one == b
    assert get(cloud, f"{HYP}/{b['id']}/uptime")["hypervisor"]["uptime"].strip()
    stats = get(cloud, f"{HYP}/statistics")["hypervisor_statistics"]
    assert stats["count"] == 3 and stats["running_vms"] == 1
    assert stats["vcpus"] == sum(h["vcpus"] for h in detail.values())
    assert get(cloud, f"{HYP}/site-b/search")["hypervisors"][0]["id"] == b["id"]
    servers = get(cloud, f"{HYP}/site/servers")["hypervisors"]
    assert [h.get("servers") for h in servers] == [None, [{"uuid": server, "name": "vm"}], None]

    # 2.28 cpu_info object; 2.53 uuid ids, with_servers, the pattern; 2.88 no figures
    assert get(cloud, f"{HYP}/detail", "2.28")["hypervisors"][0]["cpu_info"] == {}
    new = get(cloud, f"{HYP}?with_servers=true", "2.53")["hypervisors"]
    assert [h.get("servers") for h in new] == [None, [{"uuid": server, "name": "vm"}], None]
    assert [len(h["id"]) for h in new] == [36, 36, 36]
    always = get(cloud, f"{HYP}?with_servers=1", "2.75")["hypervisors"]
    assert [h["servers"] for h in always][0] == []
    found = get(cloud, f"{HYP}?hypervisor_hostname_pattern=site-c", "2.53")["hypervisors"]
    assert [h["hypervisor_hostname"] for h in found] == ["site-c"]
    shown = get(cloud, f"{HYP}/{new[1]['id']}?with_servers=true", "2.53")["hypervisor"]
    assert shown["hypervisor_hostname"] == "site-b" and shown["servers"][0]["uuid"] == server
    latest = get(cloud, f"{HYP}/{new[1]['id']}", "2.88")["hypervisor"]
    assert "uptime" in latest and "vcpus" not in latest and "running_vms" not in latest
    page = get(cloud, f"{HYP}?limit=2", "2.53")
    assert len(page["hypervisors"]) == 2 and "marker=" in page["hypervisors_links"][0]["href"]
    rest = get(cloud, f"{HYP}?limit=2&marker={page['hypervisors'][1]['id']}", "2.53")
    assert [h["hypervisor_hostname"] for h in rest["hypervisors"]] == ["site-c"]

    for path, version, code in [
        (f"{HYP}/12345", "2.1", 404),
        (f"{HYP}/not-a-uuid", "2.53", 400),
        (f"{HYP}/{b['id']}", "2.53", 400),
        (f"{HYP}/00000000-0000-0000-0000-000000000000", "2.53", 404),
        (f"{HYP}/statistics", "2.88", 404),
        (f"{HYP}/{new[0]['id']}/uptime", "2.88", 404),
        (f"{HYP}/site/search", "2.53", 404),
        (f"{HYP}/nothing/search", "2.1", 404),
        (f"{HYP}?hypervisor_hostname_pattern=nothing", "2.53", 404),
        (f"{HYP}?limit=2&marker=bogus", "2.53", 400),
    ]:
        response = cloud.client.get(path, headers=at(cloud.admin, version))
        assert response.status_code == code, (path, version, response.text)
    for path in (HYP, f"{HYP}/detail", f"{HYP}/statistics", f"{HYP}/{b['id']}"):
        assert cloud.client.get(path, headers=cloud.demo).status_code == 403


def test_services_show_sites_and_disabling_one_stops_placement_there(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    services = get(cloud, f"{V}/os-services")["services"]
    assert [(s["binary"], s["host"], s["zone"]) for s in services] == [
        ("nova-compute", n, n) for n in SITES
    ]
    assert {(s["state"], s["status"], s["disabled_reason"]) for s in services} == {
        ("up", "enabled", None)
    }
    assert "forced_down" not in services[0]
    assert get(cloud, f"{V}/os-services", "2.11")["services"][0]["forced_down"] is False
    only = get(cloud, f"{V}/os-services?host=site-b&binary=nova-compute")["services"]
    assert [s["host"] for s in only] == ["site-b"]
    assert get(cloud, f"{V}/os-services?binary=nova-scheduler")["services"] == []

    # before 2.53: disable-log-reason by host and binary
    disabled = cloud.client.put(
        f"{V}/os-services/disable-log-reason",
        headers=cloud.admin,
        json={"host": "site-a", "binary": "nova-compute", "disabled_reason": "maintenance"},
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["service"] == {
        "host": "site-a",
        "binary": "nova-compute",
        "status": "disabled",
        "disabled_reason": "maintenance",
    }
    with cloud.service.db.read() as session:
        assert session.scalar(select(Site.enabled).where(Site.name == "site-a")) is False
    net = demo_network(cloud)
    refused = cloud.client.post(
        f"{V}/servers",
        headers=cloud.demo,
        json={
            "server": {
                "name": "x",
                "flavorRef": "1",
                "imageRef": _image(cloud),
                "networks": [{"uuid": net}],
                "availability_zone": "site-a",
            }
        },
    )
    assert refused.status_code == 400 and "disabled" in refused.text

    # 2.53: by uuid
    new = get(cloud, f"{V}/os-services", "2.53")["services"]
    a = next(s for s in new if s["host"] == "site-a")
    assert (a["status"], a["disabled_reason"]) == ("disabled", "maintenance")
    enabled = cloud.client.put(
        f"{V}/os-services/{a['id']}", headers=at(cloud.admin, "2.53"), json={"status": "enabled"}
    )
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["service"]["status"], enabled.json()["service"]["disabled_reason"]) == (
        "enabled",
        None,
    )

    for version, path, body, code in [
        ("2.53", f"{V}/os-services/{a['id']}", {"status": "paused"}, 400),
        ("2.53", f"{V}/os-services/{a['id']}", {"status": "enabled", "disabled_reason": "x"}, 400),
        ("2.53", f"{V}/os-services/{a['id']}", {"forced_down": True}, 400),
        ("2.53", f"{V}/os-services/{a['id']}", {}, 400),
        ("2.53", f"{V}/os-services/{a['id']}", {"status": "disabled", "other": 1}, 400),
        ("2.53", f"{V}/os-services/not-a-uuid", {"status": "disabled"}, 400),
        (
            "2.53",
            f"{V}/os-services/00000000-0000-0000-0000-000000000000",
            {"status": "disabled"},
            404,
        ),
        ("2.1", f"{V}/os-services/disable", {"host": "nowhere", "binary": "nova-compute"}, 404),
        ("2.1", f"{V}/os-services/disable", {"host": "site-a"}, 400),
        ("2.1", f"{V}/os-services/force-down", {"host": "site-a", "binary": "nova-compute"}, 404),
        (
            "2.1",
            f"{V}/os-services/disable-log-reason",
            {"host": "site-a", "binary": "nova-compute"},
            400,
        ),
    ]:
        before = snapshot(cloud.service)
        response = cloud.client.put(path, headers=at(cloud.admin, version), json=body)
        assert response.status_code == code, (path, body, response.text)
        assert difference(before, snapshot(cloud.service)) == ""
    before = snapshot(cloud.service)
    member = cloud.client.put(
        f"{V}/os-services/disable",
        headers=cloud.demo,
        json={"host": "site-a", "binary": "nova-compute"},
    )
    assert member.status_code == 403
    deleted = cloud.client.delete(f"{V}/os-services/{a['id']}", headers=at(cloud.admin, "2.53"))
    assert deleted.status_code == 409
    assert difference(before, snapshot(cloud.service)) == ""
    assert cloud.client.get(f"{V}/os-services", headers=cloud.demo).status_code == 403


def _image(cloud: Cloud) -> str:
    from tests.api.test_compute import image_id

    return image_id(cloud)


def test_aggregates_are_the_sites_and_read_only(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    aggregates = get(cloud, f"{V}/os-aggregates")["aggregates"]
    assert [(a["name"], a["availability_zone"], a["hosts"]) for a in aggregates] == [
        (n, n, [n]) for n in SITES
    ]
    assert aggregates[0]["metadata"] == {"availability_zone": "site-a"}
    assert "uuid" not in aggregates[0]
    assert len(get(cloud, f"{V}/os-aggregates", "2.41")["aggregates"][0]["uuid"]) == 36
    one = get(cloud, f"{V}/os-aggregates/{aggregates[1]['id']}")["aggregate"]
    assert one["name"] == "site-b"
    before = snapshot(cloud.service)
    agg = f"{V}/os-aggregates/{aggregates[1]['id']}"
    for method, path, body, code in [
        ("post", f"{V}/os-aggregates", {"aggregate": {"name": "new"}}, 409),
        ("put", agg, {"aggregate": {"name": "renamed"}}, 409),
        ("delete", agg, None, 409),
        ("post", f"{agg}/action", {"add_host": {"host": "site-a"}}, 409),
        ("post", f"{V}/os-aggregates/999/action", {"add_host": {"host": "site-a"}}, 404),
        ("get", f"{V}/os-aggregates/999", None, 404),
    ]:
        kwargs: dict[str, Any] = {"headers": cloud.admin}
        if body is not None:
            kwargs["json"] = body
        response = cloud.client.request(method, path, **kwargs)
        assert response.status_code == code, (method, path, response.text)
    assert cloud.client.get(f"{V}/os-aggregates", headers=cloud.demo).status_code == 403
    assert difference(before, snapshot(cloud.service)) == ""
