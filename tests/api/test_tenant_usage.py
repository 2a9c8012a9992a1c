"""Compute simple tenant usage (os-simple-tenant-usage): hours and flavor sizes of
the servers Isthmus holds in every site, per project; the admin's list (detailed),
a member's own show (another project's 403), periods, 2.40 paging, bad input 400."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from isthmus.store import repo
from isthmus.store.tables import Resource
from tests.api.test_compute import boot_ok, demo_network
from tests.support import Cloud, project_id

V = "/compute/v2.1"
USAGE = f"{V}/os-simple-tenant-usage"
FMT = "%Y-%m-%dT%H:%M:%S"


def aged(cloud: Cloud, server_id: str, hours: float) -> None:
    """Make a server look `hours` old (its created_at moved back)."""
    with cloud.service.db.session() as session:
        session.execute(
            update(Resource)
            .where(Resource.id == server_id)
            .values(created_at=repo.utcnow() - timedelta(hours=hours))
        )


def get(cloud: Cloud, path: str, headers: dict[str, str], version: str = "2.1") -> Any:
    response = cloud.client.get(
        path, headers={**headers, "OpenStack-API-Version": f"compute {version}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_usage_counts_hours_and_flavor_sizes_per_project(cloud: Cloud) -> None:
    net = demo_network(cloud)
    first = boot_ok(cloud, net, "first", availability_zone="site-a")
    second = boot_ok(cloud, net, "second", availability_zone="site-c")
    aged(cloud, first, 10)
    aged(cloud, second, 2)
    demo = project_id(cloud.service, "demo")
    now = repo.utcnow()
    window = f"start={(now - timedelta(hours=5)).strftime(FMT)}&end={now.strftime(FMT)}"

    usage = get(cloud, f"{USAGE}/{demo}?{window}", cloud.demo)["tenant_usage"]
    assert usage["tenant_id"] == demo
    by_id = {u["instance_id"]: u for u in usage["server_usages"]}
    # first: the period's 5 hours; second: its own 2
    assert by_id[first]["hours"] == pytest.approx(5, abs=0.01)
    assert by_id[second]["hours"] == pytest.approx(2, abs=0.01)
    assert usage["total_hours"] == pytest.approx(7, abs=0.02)
    flavor = by_id[first]
    assert (flavor["flavor"], flavor["vcpus"], flavor["memory_mb"], flavor["local_gb"]) == (
        "m1.tiny",
        1,
        512,
        1,
    )
    assert usage["total_vcpus_usage"] == pytest.approx(7, abs=0.02)
    assert usage["total_memory_mb_usage"] == pytest.approx(7 * 512, abs=10)
    assert usage["total_local_gb_usage"] == pytest.approx(7, abs=0.02)
    assert flavor["ended_at"] is None and flavor["uptime"] >= 10 * 3600 - 5
    assert flavor["state"] in ("building", "active")

    # a period before the second server existed
    early = now - timedelta(hours=8)
    old = f"start={(now - timedelta(hours=9)).strftime(FMT)}&end={early.strftime(FMT)}"
    only = get(cloud, f"{USAGE}/{demo}?{old}", cloud.demo)["tenant_usage"]
    assert [u["instance_id"] for u in only["server_usages"]] == [first]
    assert only["total_hours"] == pytest.approx(1, abs=0.01)

    # the admin's list: one entry per project; server usages only when detailed
    listed = get(cloud, f"{USAGE}?{window}", cloud.admin)["tenant_usages"]
    assert [(u["tenant_id"], "server_usages" in u) for u in listed] == [(demo, False)]
    detailed = get(cloud, f"{USAGE}?{window}&detailed=1", cloud.admin)["tenant_usages"]
    assert len(detailed[0]["server_usages"]) == 2

    # 2.40: paging over the servers
    page = get(cloud, f"{USAGE}/{demo}?{window}&limit=1", cloud.demo, "2.40")
    assert [u["instance_id"] for u in page["tenant_usage"]["server_usages"]] == [first]
    assert "marker=" in page["tenant_usage_links"][0]["href"]
    rest = get(cloud, f"{USAGE}/{demo}?{window}&limit=1&marker={first}", cloud.demo, "2.40")
    assert [u["instance_id"] for u in rest["tenant_usage"]["server_usages"]] == [second]

    # a project without servers: Nova's empty usage
    other = cloud.new_member("other")
    other_id = project_id(cloud.service, "other")
    assert get(cloud, f"{USAGE}/{other_id}?{window}", other) == {"tenant_usage": {}}
    # refusals
    assert cloud.client.get(f"{USAGE}/{demo}?{window}", headers=other).status_code == 403
    assert cloud.client.get(f"{USAGE}?{window}", headers=cloud.demo).status_code == 403
    assert cloud.client.get(f"{USAGE}/?{window}", headers=cloud.admin).status_code == 404
    for query in (
        "start=yesterday",
        f"start={now.strftime(FMT)}&end={(now - timedelta(hours=1)).strftime(FMT)}",
        f"{window}&limit=1&marker=nope",
    ):
        response = cloud.client.get(
            f"{USAGE}/{demo}?{query}",
            headers={**cloud.demo, "OpenStack-API-Version": "compute 2.40"},
        )
        assert response.status_code == 400, (query, response.text)


def test_a_deleted_server_keeps_its_hours_after_its_row_is_gone(cloud: Cloud) -> None:
    net = demo_network(cloud)
    gone = boot_ok(cloud, net, "gone", availability_zone="site-b")
    kept = boot_ok(cloud, net, "kept", availability_zone="site-a")
    aged(cloud, gone, 6)
    aged(cloud, kept, 6)
    cloud.wait_idle()
    assert cloud.client.delete(f"{V}/servers/{gone}", headers=cloud.demo).status_code == 204
    cloud.wait_idle()
    assert cloud.client.get(f"{V}/servers/{gone}", headers=cloud.demo).status_code == 404
    with cloud.service.db.read() as session:
        assert session.get(Resource, gone) is None  # purged: only its usage is left
    demo = project_id(cloud.service, "demo")
    now = repo.utcnow()
    window = f"start={(now - timedelta(hours=4)).strftime(FMT)}&end={now.strftime(FMT)}"
    usage = get(cloud, f"{USAGE}/{demo}?{window}", cloud.demo)["tenant_usage"]
    by_id = {u["instance_id"]: u for u in usage["server_usages"]}
    assert set(by_id) == {gone, kept}
    assert by_id[gone]["state"] == "terminated" and by_id[gone]["ended_at"]
    assert by_id[gone]["hours"] == pytest.approx(4, abs=0.05)  # deleted just now
    assert by_id[gone]["uptime"] == pytest.approx(6 * 3600, abs=120)
    assert by_id[kept]["ended_at"] is None
    # a period after it ended does not count it; a repeated delete is 404, nothing kept twice
    later = now + timedelta(minutes=5)
    after = f"start={later.strftime(FMT)}&end={(later + timedelta(hours=1)).strftime(FMT)}"
    ids = [
        u["instance_id"]
        for u in get(cloud, f"{USAGE}/{demo}?{after}", cloud.demo)["tenant_usage"]["server_usages"]
    ]
    assert ids == [kept]
    listed = get(cloud, f"{USAGE}?{window}&detailed=1", cloud.admin)["tenant_usages"]
    assert len(listed[0]["server_usages"]) == 2
