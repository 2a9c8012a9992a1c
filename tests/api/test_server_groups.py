"""Compute server groups (os-server-groups) and placement across sites in Nova's
terms, a site being the host: shapes per microversion (2.1, 2.13, 2.64), affinity
on one site, anti-affinity over different sites (with max_server_per_host), the
soft variants, the same_host / different_host hints, Nova's NoValidHost as the
server's ERROR fault, quotas (403) and refusals that write nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_compute import demo_network, image_id
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, make_service
from tests.waiting import wait_for

V = "/compute/v2.1"
GROUPS = f"{V}/os-server-groups"


def at(headers: dict[str, str], version: str) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


@pytest.fixture
def quiet_cloud(tmp_path: Path, db_url: str) -> Iterator[Cloud]:
    """A cloud whose engine and health checks do not run: only requests write."""
    service = make_service(tmp_path / "data", db_url)
    yield Cloud(service)
    service.db.dispose()


def create_group(
    cloud: Cloud,
    policy: str,
    version: str = "2.64",
    headers: dict[str, str] | None = None,
    **rules: Any,
) -> dict[str, Any]:
    group: dict[str, Any] = {"name": f"g-{policy}"}
    if version >= "2.64":
        group.update({"policy": policy, **({"rules": rules} if rules else {})})
    else:
        group["policies"] = [policy]
    response = cloud.client.post(
        GROUPS, headers=at(headers or cloud.demo, version), json={"server_group": group}
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["server_group"])


def boot(cloud: Cloud, net: str, name: str, hints: dict[str, Any], **extra: Any) -> Any:
    server = {
        "name": name,
        "flavorRef": "1",
        "imageRef": image_id(cloud),
        "networks": [{"uuid": net}],
        **extra,
    }
    return cloud.client.post(
        f"{V}/servers", headers=cloud.demo, json={"server": server, "os:scheduler_hints": hints}
    )


def boot_ok(cloud: Cloud, net: str, name: str, hints: dict[str, Any], **extra: Any) -> str:
    response = boot(cloud, net, name, hints, **extra)
    assert response.status_code == 202, response.text
    return str(response.json()["server"]["id"])


def settled(cloud: Cloud, server_id: str) -> dict[str, Any]:
    def body() -> dict[str, Any] | None:
        server = cloud.client.get(f"{V}/servers/{server_id}", headers=cloud.admin).json()["server"]
        return server if server["status"] in ("ACTIVE", "ERROR") else None

    return wait_for(body, timeout=30, what=f"server {server_id} ACTIVE or ERROR")


def site_of(cloud: Cloud, server_id: str) -> str:
    server = settled(cloud, server_id)
    assert server["status"] == "ACTIVE", server
    return str(server["OS-EXT-AZ:availability_zone"])


def no_valid_host(cloud: Cloud, server_id: str) -> None:
    server = settled(cloud, server_id)
    assert server["status"] == "ERROR", server
    assert "No valid host was found" in server["fault"]["message"]
    assert server["OS-EXT-AZ:availability_zone"] == ""


# -- the API ----------------------------------------------------------------------------------


def test_group_shapes_per_microversion_list_show_delete(cloud: Cloud) -> None:
    old = create_group(cloud, "anti-affinity", version="2.1")
    assert set(old) == {"id", "name", "policies", "members", "metadata"}
    assert (old["policies"], old["members"], old["metadata"]) == (["anti-affinity"], [], {})

    mid = cloud.client.get(f"{GROUPS}/{old['id']}", headers=at(cloud.demo, "2.13")).json()
    assert set(mid["server_group"]) == {
        "id",
        "name",
        "policies",
        "members",
        "metadata",
        "project_id",
        "user_id",
    }

    new = create_group(cloud, "anti-affinity", max_server_per_host=2)
    assert set(new) == {"id", "name", "policy", "rules", "members", "project_id", "user_id"}
    assert new["rules"] == {"max_server_per_host": 2}
    soft = create_group(cloud, "soft-affinity", version="2.15")
    assert soft["policies"] == ["soft-affinity"]
    plain = create_group(cloud, "affinity")
    assert plain["rules"] == {}

    listed = cloud.client.get(GROUPS, headers=cloud.demo).json()["server_groups"]
    assert [g["id"] for g in listed] == [old["id"], new["id"], soft["id"], plain["id"]]
    paged = cloud.client.get(f"{GROUPS}?limit=2&offset=1", headers=cloud.demo).json()
    assert [g["id"] for g in paged["server_groups"]] == [new["id"], soft["id"]]

    # another project: not seen; the admin sees them with all_projects
    other = cloud.new_member("other")
    assert cloud.client.get(GROUPS, headers=other).json()["server_groups"] == []
    assert cloud.client.get(f"{GROUPS}/{old['id']}", headers=other).status_code == 404
    assert cloud.client.delete(f"{GROUPS}/{old['id']}", headers=other).status_code == 404
    assert cloud.client.get(GROUPS, headers=cloud.admin).json()["server_groups"] == []
    everyone = cloud.client.get(f"{GROUPS}?all_projects=True", headers=cloud.admin).json()
    assert len(everyone["server_groups"]) == 4
    assert cloud.client.get(f"{GROUPS}/{old['id']}", headers=cloud.admin).status_code == 200

    assert cloud.client.delete(f"{GROUPS}/{old['id']}", headers=cloud.demo).status_code == 204
    missing = cloud.client.get(f"{GROUPS}/{old['id']}", headers=cloud.demo)
    assert missing.status_code == 404
    assert "could not be found" in missing.json()["itemNotFound"]["message"]


def test_bad_group_requests_answer_nova_errors_and_write_nothing(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    for version, group in [
        ("2.1", {"name": "g", "policies": ["soft-affinity"]}),  # only from 2.15
        ("2.15", {"name": "g", "policies": ["affinity", "anti-affinity"]}),
        ("2.15", {"name": "g", "policies": "affinity"}),
        ("2.15", {"name": "g", "policy": "affinity"}),  # 'policy' from 2.64
        ("2.64", {"name": "g", "policies": ["affinity"]}),
        ("2.64", {"name": "g", "policy": "closest"}),
        ("2.64", {"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}}),
        ("2.64", {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}),
        ("2.64", {"name": "g", "policy": "anti-affinity", "rules": {"other": 1}}),
        ("2.64", {"name": "", "policy": "affinity"}),
        ("2.64", {"name": " padded ", "policy": "affinity"}),
        ("2.64", {"policy": "affinity"}),
        ("2.64", {"name": "g", "policy": "affinity", "extra": 1}),
    ]:
        before = snapshot(cloud.service)
        response = cloud.client.post(
            GROUPS, headers=at(cloud.demo, version), json={"server_group": group}
        )
        assert response.status_code == 400, (version, group, response.text)
        assert difference(before, snapshot(cloud.service)) == ""
    bad = cloud.client.post(GROUPS, headers=cloud.demo, json={"server_group": "g"})
    assert bad.status_code == 400

    # quota: server_groups from the project's quota set (403 as Nova)
    update = cloud.client.put(
        f"{V}/os-quota-sets/{_project(cloud)}",
        headers=cloud.admin,
        json={"quota_set": {"server_groups": 1}},
    )
    assert update.status_code == 200 and update.json()["quota_set"]["server_groups"] == 1
    create_group(cloud, "affinity")
    before = snapshot(cloud.service)
    over = cloud.client.post(
        GROUPS,
        headers=at(cloud.demo, "2.64"),
        json={"server_group": {"name": "two", "policy": "affinity"}},
    )
    assert over.status_code == 403 and "too many server groups" in over.text
    assert difference(before, snapshot(cloud.service)) == ""
    limits = cloud.client.get(f"{V}/limits", headers=cloud.demo).json()["limits"]["absolute"]
    assert (limits["maxServerGroups"], limits["totalServerGroupsUsed"]) == (1, 1)


def _project(cloud: Cloud) -> str:
    from tests.support import project_id

    return project_id(cloud.service, "demo")


def test_bad_hints_and_member_quota_refuse_the_server_and_write_nothing(
    quiet_cloud: Cloud,
) -> None:
    cloud = quiet_cloud
    net = demo_network(cloud)
    group = create_group(cloud, "anti-affinity")
    foreign = create_group(cloud, "affinity", headers=cloud.new_member("other"))
    for hints in (
        {"group": "not-a-uuid"},
        {"group": "00000000-0000-0000-0000-000000000000"},
        {"group": foreign["id"]},
        {"same_host": ["nope"]},
        {"different_host": 42},
    ):
        before = snapshot(cloud.service)
        response = boot(cloud, net, "vm", hints)
        assert response.status_code == 400, (hints, response.text)
        assert difference(before, snapshot(cloud.service)) == ""
    cloud.client.put(
        f"{V}/os-quota-sets/{_project(cloud)}",
        headers=cloud.admin,
        json={"quota_set": {"server_group_members": 2}},
    )
    before = snapshot(cloud.service)
    over = boot(cloud, net, "vm", {"group": group["id"]}, max_count=3, min_count=3)
    assert over.status_code == 403 and "too many servers in group" in over.text
    assert difference(before, snapshot(cloud.service)) == ""
    boot_ok(cloud, net, "vm", {"group": group["id"]}, max_count=2)
    assert boot(cloud, net, "vm3", {"group": group["id"]}).status_code == 403


# -- placement across the three sites -------------------------------------------------------------


def test_anti_affinity_puts_each_member_in_another_site_then_no_valid_host(cloud: Cloud) -> None:
    net = demo_network(cloud)
    group = create_group(cloud, "anti-affinity")
    hint = {"group": group["id"]}
    ids = [boot_ok(cloud, net, f"vm{i}", hint) for i in range(3)]
    assert sorted(site_of(cloud, s) for s in ids) == ["site-a", "site-b", "site-c"]
    fourth = boot_ok(cloud, net, "vm3", hint)
    no_valid_host(cloud, fourth)

    shown = cloud.client.get(f"{GROUPS}/{group['id']}", headers=at(cloud.demo, "2.64")).json()
    assert shown["server_group"]["members"] == [*ids, fourth]
    # a deleted member leaves the group and its site takes a member again
    freed = site_of(cloud, ids[0])  # read before the delete: the server may be gone at once
    assert cloud.client.delete(f"{V}/servers/{fourth}", headers=cloud.demo).status_code == 204
    assert cloud.client.delete(f"{V}/servers/{ids[0]}", headers=cloud.demo).status_code == 204
    wait_for(
        lambda: cloud.client.get(f"{V}/servers/{ids[0]}", headers=cloud.demo).status_code == 404,
        timeout=30,
        what="the deleted member to go",
    )
    again = boot_ok(cloud, net, "again", hint)
    assert site_of(cloud, again) == freed
    members = cloud.client.get(f"{GROUPS}/{group['id']}", headers=cloud.demo).json()
    assert members["server_group"]["members"] == [ids[1], ids[2], again]


def test_anti_affinity_in_one_multiple_create_and_with_max_server_per_host(cloud: Cloud) -> None:
    net = demo_network(cloud)
    group = create_group(cloud, "anti-affinity")
    boot_ok(cloud, net, "multi", {"group": group["id"]}, max_count=3, min_count=3)
    members = cloud.client.get(f"{GROUPS}/{group['id']}", headers=cloud.demo).json()
    sites = [site_of(cloud, s) for s in members["server_group"]["members"]]
    assert sorted(sites) == ["site-a", "site-b", "site-c"]

    two = create_group(cloud, "anti-affinity", max_server_per_host=2)
    ids = [boot_ok(cloud, net, f"two{i}", {"group": two["id"]}) for i in range(6)]
    sites = [site_of(cloud, s) for s in ids]
    assert sorted(sites) == ["site-a", "site-a", "site-b", "site-b", "site-c", "site-c"]
    no_valid_host(cloud, boot_ok(cloud, net, "seventh", {"group": two["id"]}))


def test_affinity_keeps_members_in_one_site_and_a_contrary_zone_is_no_valid_host(
    cloud: Cloud,
) -> None:
    net = demo_network(cloud)
    group = create_group(cloud, "affinity", version="2.1")
    hint = {"group": group["id"]}
    first = boot_ok(cloud, net, "first", hint, availability_zone="site-b")
    others = [boot_ok(cloud, net, f"vm{i}", hint) for i in range(3)]
    assert {site_of(cloud, s) for s in [first, *others]} == {"site-b"}
    no_valid_host(cloud, boot_ok(cloud, net, "elsewhere", hint, availability_zone="site-c"))
    # the same zone is fine
    assert site_of(cloud, boot_ok(cloud, net, "same", hint, availability_zone="site-b")) == "site-b"

    anti = create_group(cloud, "anti-affinity")
    boot_ok(cloud, net, "a1", {"group": anti["id"]}, availability_zone="site-a")
    no_valid_host(
        cloud, boot_ok(cloud, net, "a2", {"group": anti["id"]}, availability_zone="site-a")
    )


def test_soft_policies_prefer_but_do_not_require(cloud: Cloud) -> None:
    net = demo_network(cloud)
    spread = create_group(cloud, "soft-anti-affinity", version="2.15")
    ids = [boot_ok(cloud, net, f"s{i}", {"group": spread["id"]}) for i in range(4)]
    sites = [site_of(cloud, s) for s in ids]
    assert sorted(sites[:3]) == ["site-a", "site-b", "site-c"]
    assert sites[3] in ("site-a", "site-b", "site-c")  # a fourth still goes somewhere

    together = create_group(cloud, "soft-affinity")
    first = boot_ok(cloud, net, "t0", {"group": together["id"]}, availability_zone="site-c")
    rest = [boot_ok(cloud, net, f"t{i}", {"group": together["id"]}) for i in range(1, 3)]
    assert {site_of(cloud, s) for s in [first, *rest]} == {"site-c"}
    # an explicit zone elsewhere is allowed by a soft policy
    assert (
        site_of(
            cloud, boot_ok(cloud, net, "t3", {"group": together["id"]}, availability_zone="site-a")
        )
        == "site-a"
    )


def test_same_host_and_different_host_hints_name_sites(cloud: Cloud) -> None:
    net = demo_network(cloud)
    anchor = boot_ok(cloud, net, "anchor", {}, availability_zone="site-b")
    assert site_of(cloud, anchor) == "site-b"
    near = [boot_ok(cloud, net, f"near{i}", {"same_host": anchor}) for i in range(3)]
    assert {site_of(cloud, s) for s in near} == {"site-b"}
    other = boot_ok(cloud, net, "other", {}, availability_zone="site-a")
    far = [boot_ok(cloud, net, f"far{i}", {"different_host": [anchor, other]}) for i in range(2)]
    assert {site_of(cloud, s) for s in far} == {"site-c"}
    no_valid_host(
        cloud,
        boot_ok(cloud, net, "nowhere", {"different_host": anchor}, availability_zone="site-b"),
    )
    # same_host naming a server that is not there: no site holds it
    no_valid_host(
        cloud, boot_ok(cloud, net, "lost", {"same_host": "00000000-0000-0000-0000-000000000000"})
    )


def test_server_show_names_its_group_from_2_71_until_the_group_is_deleted(cloud: Cloud) -> None:
    net = demo_network(cloud)
    group = create_group(cloud, "soft-anti-affinity")
    server = boot_ok(cloud, net, "member", {"group": group["id"]})
    plain = boot_ok(cloud, net, "plain", {})

    def groups(server_id: str, version: str = "2.71") -> Any:
        response = cloud.client.get(f"{V}/servers/{server_id}", headers=at(cloud.demo, version))
        assert response.status_code == 200, response.text
        return response.json()["server"].get("server_groups", "absent")

    assert groups(server) == [group["id"]]
    assert groups(plain) == []
    assert groups(server, "2.70") == "absent"
    assert cloud.client.delete(f"{GROUPS}/{group['id']}", headers=cloud.demo).status_code == 204
    assert groups(server) == []
    assert site_of(cloud, server)  # the member stays where it is
