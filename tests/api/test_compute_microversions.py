"""Compute microversions 2.1 to 2.96: negotiation (headers, latest, Nova's 406 and
400), and each request or response change at its boundary: a request at N-1 and
at N. Bodies are checked against Tempest's own response schemas of the version
asked for (tempest/lib/api_schema/response/compute/v2_*), which reject unknown
keys and want the new ones, as Tempest does against a real Nova."""

from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tempest.lib.api_schema.response import compute as tempest_compute
from tempest.lib.common.rest_client import RestClient

from isthmus.store.tables import Resource, Site
from tests.fixtures.store_snapshot import StoreSnapshot, difference, snapshot
from tests.support import Cloud, add_network, project_id
from tests.waiting import wait_for

V = "/compute/v2.1"
MAX = "2.96"
SCHEMA_DIRS = sorted(
    (int(p.name.split("_")[1]), p.name)
    for p in Path(tempest_compute.__file__).parent.glob("v2_*")
    if p.is_dir()
)

# -- helpers ------------------------------------------------------------------------------------


def at(headers: dict[str, str], version: str) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


def schema(module: str, name: str, version: str) -> Any:
    """Tempest's schema `name` of `module` (servers, flavors, ...) for `version`:
    from the newest v2_N directory at or below it that has the module."""
    minor = int(version.split(".")[1])
    for number, directory in reversed(SCHEMA_DIRS):
        if number > minor:
            continue
        path = Path(tempest_compute.__file__).parent / directory / f"{module}.py"
        if path.exists():
            found = importlib.import_module(f"{tempest_compute.__name__}.{directory}.{module}")
            if hasattr(found, name):
                return getattr(found, name)
    raise AssertionError(f"no Tempest schema {module}.{name} for {version}")


class _Resp(dict[str, str]):
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(headers)
        self.status = status


def tempest_valid(module: str, name: str, version: str, response: Any) -> Any:
    """Check `response` with Tempest's schema, as its service clients do; the body."""
    body = response.json() if response.content else None
    headers = {k.lower(): v for k, v in response.headers.items()}
    RestClient.validate_response(
        schema(module, name, version), _Resp(response.status_code, headers), body
    )
    return body


def settled(cloud: Cloud) -> StoreSnapshot:
    """The store once the engine is idle, less the sites table (the health loop
    of the running engine writes each site's last check there)."""
    cloud.wait_idle()
    taken = snapshot(cloud.service)
    digests = {k: v for k, v in taken.digests.items() if k != "sites"}
    return StoreSnapshot(taken.counts, taken.generations, digests)


def assert_unchanged(cloud: Cloud, before: StoreSnapshot) -> None:
    """Nothing written since `before` (a refused request changes nothing)."""
    after = settled(cloud)
    assert after == before, difference(before, after)


def image_id(cloud: Cloud) -> str:
    with cloud.service.db.read() as session:
        return session.scalar(select(Resource.id).where(Resource.kind == "image")) or ""


def boot(cloud: Cloud, version: str, net: str | None, **extra: Any) -> Any:
    server: dict[str, Any] = {"name": "mv-vm", "flavorRef": "1", "imageRef": image_id(cloud)}
    if net is not None:
        server["networks"] = [{"uuid": net}]
    server.update(extra)
    return cloud.client.post(
        f"{V}/servers", headers=at(cloud.demo, version), json={"server": server}
    )


def active_server(cloud: Cloud, **extra: Any) -> tuple[str, str]:
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="mv-net")
    created = boot(cloud, MAX, net, **extra)
    assert created.status_code == 202, created.text
    server_id = created.json()["server"]["id"]
    cloud.wait_idle()
    wait_for(lambda: show(cloud, server_id, "2.1")["status"] == "ACTIVE", timeout=30)
    return server_id, net


def show(cloud: Cloud, server_id: str, version: str, admin: bool = False) -> Any:
    response = cloud.client.get(
        f"{V}/servers/{server_id}", headers=at(cloud.admin if admin else cloud.demo, version)
    )
    assert response.status_code == 200, response.text
    return tempest_valid("servers", "get_server", version, response)["server"]


# -- negotiation ----------------------------------------------------------------------------------


def test_negotiation_headers_latest_406_and_400(cloud: Cloud) -> None:
    client = cloud.client
    for path in ("/compute", "/compute/"):
        (doc,) = client.get(path).json()["versions"]
        assert (doc["version"], doc["min_version"]) == (MAX, "2.1")
    doc = client.get(f"{V}/").json()["version"]
    assert (doc["version"], doc["min_version"]) == (MAX, "2.1")
    for headers, served in (
        ({}, "2.1"),
        ({"OpenStack-API-Version": "compute 2.47"}, "2.47"),
        ({"OpenStack-API-Version": "compute latest"}, MAX),
        ({"OpenStack-API-Version": "volume 3.70, compute 2.60"}, "2.60"),
        ({"X-OpenStack-Nova-API-Version": "2.19"}, "2.19"),
        ({"X-OpenStack-Nova-API-Version": "latest"}, MAX),
        # the new header wins over the legacy one, as in Nova
        ({"OpenStack-API-Version": "compute 2.3", "X-OpenStack-Nova-API-Version": "2.9"}, "2.3"),
    ):
        response = client.get(f"{V}/flavors", headers={**cloud.demo, **headers})
        assert response.status_code == 200, response.text
        assert response.headers["OpenStack-API-Version"] == f"compute {served}"
        assert response.headers["X-OpenStack-Nova-API-Version"] == served
        vary = response.headers["Vary"]
        assert "OpenStack-API-Version" in vary and "X-OpenStack-Nova-API-Version" in vary
    for value in ("2.97", "3.0", "2.0", "1.1"):
        refused = client.get(f"{V}/flavors", headers=at(cloud.demo, value))
        assert refused.status_code == 406
        assert refused.json() == {
            "computeFault": {
                "code": 406,
                "message": f"Version {value} is not supported by the API. Minimum is 2.1 and"
                f" maximum is {MAX}.",
            }
        }
        assert refused.headers["OpenStack-API-Version"] == "compute 2.1"
    for value in ("2", "2.x", "02.1", "2.1.1", "v2.1"):
        bad = client.get(f"{V}/flavors", headers=at(cloud.demo, value))
        assert bad.status_code == 400, value
        assert bad.json()["badRequest"]["message"] == (
            f"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum."
        )
    # errors echo the version asked for
    missing = client.get(f"{V}/servers/nope", headers=at(cloud.demo, "2.50"))
    assert missing.status_code == 404
    assert missing.headers["OpenStack-API-Version"] == "compute 2.50"


# -- server bodies ------------------------------------------------------------------------------

BOUNDARIES = {
    # version: (member keys new at it, admin-only keys new at it)
    "2.3": (
        set(),
        {
            "OS-EXT-SRV-ATTR:reservation_id",
            "OS-EXT-SRV-ATTR:launch_index",
            "OS-EXT-SRV-ATTR:kernel_id",
            "OS-EXT-SRV-ATTR:ramdisk_id",
            "OS-EXT-SRV-ATTR:hostname",
            "OS-EXT-SRV-ATTR:root_device_name",
            "OS-EXT-SRV-ATTR:user_data",
        },
    ),
    "2.9": ({"locked"}, set()),
    "2.16": (set(), {"host_status"}),
    "2.19": ({"description"}, set()),
    "2.26": ({"tags"}, set()),
    "2.63": ({"trusted_image_certificates"}, set()),
    "2.71": ({"server_groups"}, set()),
    "2.73": ({"locked_reason"}, set()),
    "2.90": ({"OS-EXT-SRV-ATTR:hostname"}, set()),
    "2.96": ({"pinned_availability_zone"}, set()),
}


def before(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) - 1}"


def test_server_show_and_list_at_each_boundary(cloud: Cloud) -> None:
    server_id, _ = active_server(
        cloud, description="the web tier", user_data="aGVsbG8=", availability_zone="site-b"
    )
    for version, (member_keys, admin_keys) in BOUNDARIES.items():
        old, new = show(cloud, server_id, before(version)), show(cloud, server_id, version)
        assert not member_keys & set(old), (version, member_keys & set(old))
        assert member_keys <= set(new), (version, member_keys - set(new))
        old_admin = show(cloud, server_id, before(version), admin=True)
        new_admin = show(cloud, server_id, version, admin=True)
        assert not admin_keys & set(old_admin), version
        assert admin_keys <= set(new_admin), version
        assert not admin_keys - member_keys - {"OS-EXT-SRV-ATTR:hostname"} & set(new), version
        for who in (cloud.demo, cloud.admin):
            for v in (before(version), version):
                query = "?all_tenants=1" if who is cloud.admin else ""
                listed = cloud.client.get(f"{V}/servers/detail{query}", headers=at(who, v))
                assert listed.status_code == 200
                servers = tempest_valid("servers", "list_servers_detail", v, listed)["servers"]
                assert "server_groups" not in servers[0]  # 2.71: show and update only
                brief = cloud.client.get(f"{V}/servers{query}", headers=at(who, v))
                tempest_valid("servers", "list_servers", v, brief)
    latest = show(cloud, server_id, MAX, admin=True)
    assert latest["locked"] is False and latest["locked_reason"] is None
    assert latest["description"] == "the web tier" and latest["tags"] == []
    assert latest["host_status"] in ("UP", "UNKNOWN")  # as the health loop has it
    assert latest["server_groups"] == [] and latest["trusted_image_certificates"] is None
    assert latest["pinned_availability_zone"] == "site-b"
    assert latest["OS-EXT-SRV-ATTR:hostname"] == "mv-vm"
    assert latest["OS-EXT-SRV-ATTR:user_data"] == "aGVsbG8="
    assert latest["OS-EXT-SRV-ATTR:launch_index"] == 0
    assert latest["OS-EXT-SRV-ATTR:reservation_id"].startswith("r-")
    assert latest["OS-EXT-SRV-ATTR:root_device_name"] == "/dev/vda"
    # 2.47: the embedded flavor instead of its id and link
    assert show(cloud, server_id, "2.46")["flavor"]["id"] == "1"
    flavor = show(cloud, server_id, "2.47")["flavor"]
    assert flavor == {
        "original_name": "m1.tiny",
        "vcpus": 1,
        "ram": 512,
        "disk": 1,
        "ephemeral": 0,
        "swap": 0,
        "extra_specs": {},
    }
    # 2.16: a site that is disabled shows in host_status
    with cloud.service.db.session() as session:
        site = session.get(Site, "site-b")
        assert site is not None
        site.enabled = False
    assert show(cloud, server_id, "2.16", admin=True)["host_status"] == "MAINTENANCE"
    # 2.96: a server created without a zone is pinned to none
    unpinned = boot(cloud, MAX, None, networks="none", name="free")
    assert unpinned.status_code == 202, unpinned.text
    cloud.wait_idle()  # (a server waiting on its image shows isthmus:pending_reason)
    assert show(cloud, unpinned.json()["server"]["id"], MAX)["pinned_availability_zone"] is None


def test_server_create_fields_per_microversion(cloud: Cloud) -> None:
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="mv-net")
    cloud.wait_idle()
    before_all = settled(cloud)
    refused = [
        ("2.18", {"networks": [{"uuid": net}], "description": "x"}, "'description' was unexpected"),
        ("2.19", {"networks": [{"uuid": net}], "description": "a\x07b"}, "description"),
        ("2.37", {}, "'networks' is a required property"),
        ("2.37", {"networks": "some"}, "networks must be 'auto', 'none'"),
        ("2.51", {"networks": "none", "tags": ["a"]}, "'tags' was unexpected"),
        ("2.52", {"networks": "none", "tags": ["a/b"]}, "tag"),
        ("2.57", {"networks": "none", "personality": []}, "'personality' was unexpected"),
        ("2.89", {"networks": "none", "hostname": "web"}, "'hostname' was unexpected"),
        ("2.90", {"networks": "none", "hostname": "web.example.org"}, "hostname"),
        ("2.90", {"networks": "none", "hostname": "-web"}, "hostname"),
        ("2.94", {"networks": "none", "hostname": "web", "max_count": 2}, "more than one"),
    ]
    for version, extra, message in refused:
        response = boot(cloud, version, None, **extra)
        assert response.status_code == 400, (version, extra, response.text)
        assert message in response.json()["badRequest"]["message"], (version, response.text)
    assert_unchanged(cloud, before_all)
    # accepted at their microversion
    made = boot(
        cloud,
        "2.94",
        None,
        networks="auto",
        description="d",
        tags=["blue", "green", "blue"],
        hostname="web-1.example.org",
    )
    assert made.status_code == 202, made.text
    cloud.wait_idle()  # (a server waiting on its image shows isthmus:pending_reason)
    shown = show(cloud, made.json()["server"]["id"], "2.94")
    assert shown["description"] == "d" and shown["tags"] == ["blue", "green"]
    assert shown["OS-EXT-SRV-ATTR:hostname"] == "web-1.example.org"
    assert show(cloud, made.json()["server"]["id"], "2.1")["addresses"]  # auto: default network
    bare = boot(cloud, "2.37", None, networks="none", name="Web Server_1.")
    assert bare.status_code == 202, bare.text
    cloud.wait_idle()  # (a server waiting on its image shows isthmus:pending_reason)
    plain = show(cloud, bare.json()["server"]["id"], "2.90")
    assert plain["addresses"] == {} and plain["description"] is None
    assert plain["OS-EXT-SRV-ATTR:hostname"] == "web-server-1"  # Nova's sanitised name


def test_server_update_per_microversion(cloud: Cloud) -> None:
    server_id, _ = active_server(cloud)
    url = f"{V}/servers/{server_id}"
    cloud.wait_idle()
    unchanged = settled(cloud)
    for version, body in (
        ("2.18", {"description": "x"}),
        ("2.19", {"description": 5}),
        ("2.89", {"hostname": "web"}),
        ("2.90", {"hostname": "a_b"}),
        ("2.93", {"hostname": "a.b"}),
    ):
        response = cloud.client.put(url, headers=at(cloud.demo, version), json={"server": body})
        assert response.status_code == 400, (version, body, response.text)
    assert_unchanged(cloud, unchanged)
    updated = cloud.client.put(
        url, headers=at(cloud.demo, "2.19"), json={"server": {"description": "new"}}
    )
    assert updated.status_code == 200, updated.text
    body = tempest_valid("servers", "update_server", "2.19", updated)["server"]
    assert body["description"] == "new" and "OS-EXT-STS:vm_state" not in body
    # 2.75: the update answers the whole server, as show does
    full = cloud.client.put(
        url, headers=at(cloud.demo, "2.75"), json={"server": {"name": "renamed"}}
    ).json()["server"]
    assert full["name"] == "renamed" and full["OS-EXT-STS:vm_state"] == "active"
    assert full["server_groups"] == [] and "key_name" in full
    assert set(full) == set(show(cloud, server_id, "2.75"))
    named = cloud.client.put(
        url, headers=at(cloud.demo, "2.94"), json={"server": {"hostname": "db.example.org"}}
    )
    assert named.status_code == 200, named.text
    assert named.json()["server"]["OS-EXT-SRV-ATTR:hostname"] == "db.example.org"
    assert show(cloud, server_id, "2.90")["OS-EXT-SRV-ATTR:hostname"] == "db.example.org"


def test_server_list_filters_per_microversion(cloud: Cloud) -> None:
    server_id, _ = active_server(cloud)
    ids = lambda version, query: [  # noqa: E731
        s["id"]
        for s in cloud.client.get(f"{V}/servers?{query}", headers=at(cloud.demo, version)).json()[
            "servers"
        ]
    ]
    # 2.5: a member's ip6 filter (no server has an IPv6 address here)
    assert ids("2.4", "ip6=fd00") == [server_id]  # dropped below 2.5
    assert ids("2.5", "ip6=fd00") == []
    # 2.66: changes-before
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert ids("2.65", f"changes-before={past}") == [server_id]  # not a filter yet
    assert ids("2.66", f"changes-before={past}") == []
    assert ids("2.66", f"changes-before={future}") == [server_id]
    backwards = cloud.client.get(
        f"{V}/servers?changes-since={future}&changes-before={past}",
        headers=at(cloud.demo, "2.66"),
    )
    assert backwards.status_code == 400
    # 2.73: locked
    assert ids("2.72", "locked=true") == [server_id]
    assert ids("2.73", "locked=true") == []
    assert ids("2.73", "locked=false") == [server_id]
    bad = cloud.client.get(f"{V}/servers?locked=maybe", headers=at(cloud.demo, "2.73"))
    assert bad.status_code == 400


# -- flavors ---------------------------------------------------------------------------------------


def test_flavor_microversions(cloud: Cloud) -> None:
    client = cloud.client

    def flavor(version: str, who: dict[str, str] | None = None) -> Any:
        response = client.get(f"{V}/flavors/1", headers=at(who or cloud.demo, version))
        return tempest_valid("flavors", "create_update_get_flavor_details", version, response)[
            "flavor"
        ]

    assert "description" not in flavor("2.54") and flavor("2.55")["description"] is None
    assert "extra_specs" not in flavor("2.60") and flavor("2.61")["extra_specs"] == {}
    assert flavor("2.74")["swap"] == "" and flavor("2.75")["swap"] == 0
    for version in ("2.54", "2.55"):
        listed = client.get(f"{V}/flavors", headers=at(cloud.demo, version))
        brief = tempest_valid("flavors", "list_flavors", version, listed)["flavors"]
        assert ("description" in brief[0]) == (version == "2.55")
        detail = client.get(f"{V}/flavors/detail", headers=at(cloud.demo, version))
        tempest_valid("flavors", "list_flavors_details", version, detail)
    new = {"name": "mv.small", "ram": 256, "vcpus": 1, "disk": 1, "id": "mv-1"}
    cloud.wait_idle()
    unchanged = settled(cloud)
    old_create = client.post(
        f"{V}/flavors",
        headers=at(cloud.admin, "2.54"),
        json={"flavor": {**new, "description": "d"}},
    )
    assert old_create.status_code == 400
    assert (
        client.put(
            f"{V}/flavors/1", headers=at(cloud.admin, "2.54"), json={"flavor": {"description": "x"}}
        ).status_code
        == 404
    )  # no flavor update before 2.55
    assert (
        client.put(
            f"{V}/flavors/1", headers=at(cloud.demo, "2.55"), json={"flavor": {"description": "x"}}
        ).status_code
        == 403
    )
    assert (
        client.put(
            f"{V}/flavors/1", headers=at(cloud.admin, "2.55"), json={"flavor": {"name": "x"}}
        ).status_code
        == 400
    )
    assert_unchanged(cloud, unchanged)
    created = client.post(
        f"{V}/flavors",
        headers=at(cloud.admin, "2.55"),
        json={"flavor": {**new, "description": "d"}},
    )
    assert created.status_code == 200, created.text
    assert created.json()["flavor"]["description"] == "d"
    updated = client.put(
        f"{V}/flavors/1", headers=at(cloud.admin, "2.55"), json={"flavor": {"description": "tiny"}}
    )
    assert updated.status_code == 200, updated.text
    tempest_valid("flavors", "create_update_get_flavor_details", "2.55", updated)
    assert flavor("2.55")["description"] == "tiny"
    spec = client.post(
        f"{V}/flavors/1/os-extra_specs",
        headers=cloud.admin,
        json={"extra_specs": {"hw:cpu_policy": "shared"}},
    )
    assert spec.status_code == 200, spec.text
    assert flavor("2.61")["extra_specs"] == {"hw:cpu_policy": "shared"}


# -- key pairs -------------------------------------------------------------------------------------

PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl mv@test"
)


def test_keypair_microversions(cloud: Cloud) -> None:
    client = cloud.client
    url = f"{V}/os-keypairs"

    def create(version: str, who: dict[str, str], **keypair: Any) -> Any:
        return client.post(url, headers=at(who, version), json={"keypair": keypair})

    # 2.2: type, 201 on create and 204 on delete
    old = create("2.1", cloud.demo, name="k21", public_key=PUBLIC_KEY)
    assert old.status_code == 200 and "type" not in old.json()["keypair"]
    tempest_valid("keypairs", "create_keypair", "2.1", old)
    assert create("2.1", cloud.demo, name="k21b", type="ssh").status_code == 400
    new = create("2.2", cloud.demo, name="k22", public_key=PUBLIC_KEY)
    assert new.status_code == 201 and new.json()["keypair"]["type"] == "ssh"
    tempest_valid("keypairs", "create_keypair", "2.2", new)
    x509 = create("2.2", cloud.demo, name="cert", type="x509")
    assert x509.status_code == 201, x509.text
    generated = x509.json()["keypair"]
    assert generated["type"] == "x509" and "BEGIN CERTIFICATE" in generated["public_key"]
    assert re.fullmatch(r"([0-9a-f]{2}:){19}[0-9a-f]{2}", generated["fingerprint"])
    imported = create(
        "2.2", cloud.demo, name="cert2", type="x509", public_key=generated["public_key"]
    )
    assert imported.json()["keypair"]["fingerprint"] == generated["fingerprint"]
    assert create("2.2", cloud.demo, name="c3", type="x509", public_key="nope").status_code == 400
    shown = client.get(f"{url}/k22", headers=at(cloud.demo, "2.2"))
    assert tempest_valid("keypairs", "get_keypair", "2.2", shown)["keypair"]["type"] == "ssh"
    listed = client.get(url, headers=at(cloud.demo, "2.2"))
    tempest_valid("keypairs", "list_keypairs", "2.2", listed)
    assert client.delete(f"{url}/k21", headers=at(cloud.demo, "2.1")).status_code == 202
    assert client.delete(f"{url}/k22", headers=at(cloud.demo, "2.2")).status_code == 204
    # 2.10: an admin acts for another user; a member may not
    demo_user = client.get(f"{url}/cert", headers=at(cloud.demo, "2.10")).json()["keypair"][
        "user_id"
    ]
    for_demo = create("2.10", cloud.admin, name="given", public_key=PUBLIC_KEY, user_id=demo_user)
    assert for_demo.status_code == 201, for_demo.text
    assert client.get(f"{url}/given", headers=at(cloud.demo, "2.10")).status_code == 200
    assert client.get(f"{url}/given", headers=at(cloud.admin, "2.10")).status_code == 404
    assert (
        client.get(f"{url}/given?user_id={demo_user}", headers=at(cloud.admin, "2.10")).status_code
        == 200
    )
    assert (
        create("2.9", cloud.admin, name="x", public_key=PUBLIC_KEY, user_id=demo_user).status_code
        == 400
    )
    assert (
        create(
            "2.10", cloud.demo, name="theirs", public_key=PUBLIC_KEY, user_id="someone-else"
        ).status_code
        == 403
    )
    assert (
        client.get(f"{url}?user_id=someone-else", headers=at(cloud.demo, "2.10")).status_code == 403
    )
    assert (
        client.delete(
            f"{url}/given?user_id={demo_user}", headers=at(cloud.admin, "2.10")
        ).status_code
        == 204
    )
    # 2.35: limit and marker
    names = sorted(
        k["keypair"]["name"] for k in client.get(url, headers=cloud.demo).json()["keypairs"]
    )
    assert len(names) >= 2
    unpaged = client.get(f"{url}?limit=1", headers=at(cloud.demo, "2.34")).json()
    assert len(unpaged["keypairs"]) == len(names) and "keypairs_links" not in unpaged
    page = client.get(f"{url}?limit=1", headers=at(cloud.demo, "2.35")).json()
    assert [k["keypair"]["name"] for k in page["keypairs"]] == names[:1]
    assert "marker=" in page["keypairs_links"][0]["href"]
    rest = client.get(f"{url}?marker={names[0]}", headers=at(cloud.demo, "2.35")).json()
    assert [k["keypair"]["name"] for k in rest["keypairs"]] == names[1:]
    assert client.get(f"{url}?marker=nope", headers=at(cloud.demo, "2.35")).status_code == 400
    # 2.92: the public key is required; '@' and '.' in names
    cloud.wait_idle()
    unchanged = settled(cloud)
    assert create("2.92", cloud.demo, name="gen").status_code == 400
    assert create("2.91", cloud.demo, name="a@b.c", public_key=PUBLIC_KEY).status_code == 400
    assert_unchanged(cloud, unchanged)
    assert create("2.91", cloud.demo, name="gen").status_code == 201
    dotted = create("2.92", cloud.demo, name="a@b.c", public_key=PUBLIC_KEY)
    assert dotted.status_code == 201, dotted.text


# -- limits and quotas -----------------------------------------------------------------------------


def test_limits_and_quota_sets_drop_fields(cloud: Cloud) -> None:
    client = cloud.client
    for version, gone in (
        ("2.36", {"maxSecurityGroups", "maxTotalFloatingIps", "totalFloatingIpsUsed"}),
        ("2.39", {"maxImageMeta"}),
        ("2.57", {"maxPersonality", "maxPersonalitySize"}),
    ):
        old = client.get(f"{V}/limits", headers=at(cloud.demo, before(version)))
        new = client.get(f"{V}/limits", headers=at(cloud.demo, version))
        old_abs = tempest_valid("limits", "get_limit", before(version), old)["limits"]["absolute"]
        new_abs = tempest_valid("limits", "get_limit", version, new)["limits"]["absolute"]
        assert gone <= set(old_abs) and not gone & set(new_abs), version
    project = project_id(cloud.service, "demo")
    quota_url = f"{V}/os-quota-sets/{project}"
    for version, gone in (
        ("2.36", {"floating_ips", "fixed_ips", "security_groups", "security_group_rules"}),
        ("2.57", {"injected_files", "injected_file_content_bytes", "injected_file_path_bytes"}),
    ):
        old = client.get(quota_url, headers=at(cloud.demo, before(version)))
        new = client.get(quota_url, headers=at(cloud.demo, version))
        assert gone <= set(
            tempest_valid("quotas", "get_quota_set", before(version), old)["quota_set"]
        )
        assert not gone & set(tempest_valid("quotas", "get_quota_set", version, new)["quota_set"])
        detail = client.get(f"{quota_url}/detail", headers=at(cloud.demo, version))
        assert not gone & set(detail.json()["quota_set"])
    refused = client.put(
        quota_url, headers=at(cloud.admin, "2.36"), json={"quota_set": {"floating_ips": 5}}
    )
    assert refused.status_code == 400
    taken = client.put(
        quota_url, headers=at(cloud.admin, "2.35"), json={"quota_set": {"floating_ips": 5}}
    )
    assert taken.status_code == 200, taken.text


# -- volume attachments ---------------------------------------------------------------------------


def _volume_in(cloud: Cloud, zone: str) -> str:
    made = cloud.client.post(
        "/volume/v3/volumes",
        headers=cloud.demo,
        json={"volume": {"size": 1, "name": "mv-vol", "availability_zone": zone}},
    )
    assert made.status_code == 202, made.text
    volume_id = made.json()["volume"]["id"]
    cloud.wait_idle()
    return str(volume_id)


def test_volume_attachment_microversions(cloud: Cloud) -> None:
    server_id, _ = active_server(cloud, availability_zone="site-a")
    volume_id = _volume_in(cloud, "site-a")
    url = f"{V}/servers/{server_id}/os-volume_attachments"
    cloud.wait_idle()
    unchanged = settled(cloud)
    for version, extra in (
        ("2.48", {"tag": "disk"}),
        ("2.49", {"tag": "disk"}),  # a driver that cannot tag: Nova's 400
        ("2.78", {"delete_on_termination": False}),
        ("2.79", {"delete_on_termination": "yes"}),
    ):
        response = cloud.client.post(
            url,
            headers=at(cloud.demo, version),
            json={"volumeAttachment": {"volumeId": volume_id, **extra}},
        )
        assert response.status_code == 400, (version, response.text)
    assert_unchanged(cloud, unchanged)
    attached = cloud.client.post(
        url,
        headers=at(cloud.demo, "2.89"),
        json={"volumeAttachment": {"volumeId": volume_id, "delete_on_termination": False}},
    )
    assert attached.status_code == 200, attached.text
    body = tempest_valid("servers", "attach_volume", "2.89", attached)["volumeAttachment"]
    assert body["id"] == volume_id and body["tag"] is None
    cloud.wait_idle()
    for version in ("2.69", "2.70", "2.78", "2.79", "2.88", "2.89"):
        listed = cloud.client.get(url, headers=at(cloud.demo, version))
        (item,) = tempest_valid("servers", "list_volume_attachments", version, listed)[
            "volumeAttachments"
        ]
        shown = cloud.client.get(f"{url}/{volume_id}", headers=at(cloud.demo, version))
        one = tempest_valid("servers", "show_volume_attachment", version, shown)["volumeAttachment"]
        assert item == one
        minor = int(version.split(".")[1])
        assert ("tag" in item) == (minor >= 70)
        assert ("delete_on_termination" in item) == (minor >= 79)
        assert ("id" in item) == (minor < 89)
        assert ("attachment_id" in item) == (minor >= 89)
    first = cloud.client.get(url, headers=at(cloud.demo, "2.89")).json()["volumeAttachments"][0]
    again = cloud.client.get(url, headers=at(cloud.demo, "2.89")).json()["volumeAttachments"][0]
    assert first["attachment_id"] == again["attachment_id"] != first["bdm_uuid"]
    server = show(cloud, server_id, "2.3")
    assert server["os-extended-volumes:volumes_attached"] == [
        {"id": volume_id, "delete_on_termination": False}
    ]
    assert show(cloud, server_id, "2.2")["os-extended-volumes:volumes_attached"] == [
        {"id": volume_id}
    ]


@pytest.mark.parametrize("version", ["2.1", MAX])
def test_errors_keep_their_shape_at_any_version(cloud: Cloud, version: str) -> None:
    response = cloud.client.get(f"{V}/flavors/none", headers=at(cloud.demo, version))
    assert response.status_code == 404
    assert response.json()["itemNotFound"]["code"] == 404


def test_tag_filters_and_requested_host(cloud: Cloud) -> None:
    made = {}
    for name, tags in (("red", ["a", "b"]), ("green", ["b"]), ("plain", [])):
        response = boot(cloud, "2.52", None, name=name, networks="none", tags=tags)
        assert response.status_code == 202, response.text
        made[name] = response.json()["server"]["id"]

    def names(version: str, query: str) -> list[str]:
        listed = cloud.client.get(f"{V}/servers?{query}", headers=at(cloud.demo, version))
        assert listed.status_code == 200, listed.text
        return sorted(s["name"] for s in listed.json()["servers"])

    # 2.26: tags (all of), tags-any, not-tags (not all of), not-tags-any (none of)
    assert names("2.25", "tags=a,b") == ["green", "plain", "red"]  # not a filter yet
    assert names("2.26", "tags=a,b") == ["red"]
    assert names("2.26", "tags-any=a,b") == ["green", "red"]
    assert names("2.26", "not-tags=a,b") == ["green", "plain"]
    assert names("2.26", "not-tags-any=a") == ["green", "plain"]
    # 2.74: an admin names the host (a site) the server goes to
    admin_boot = {"name": "placed", "flavorRef": "1", "imageRef": image_id(cloud)}
    url = f"{V}/servers"
    before_all = settled(cloud)
    for version, who, extra, status in (
        ("2.73", cloud.admin, {"host": "site-c"}, 400),
        ("2.74", cloud.demo, {"host": "site-c"}, 403),
        ("2.74", cloud.admin, {"host": "nowhere"}, 400),
        ("2.74", cloud.admin, {"host": "site-c", "hypervisor_hostname": "site-a"}, 400),
        ("2.74", cloud.admin, {"host": "site-c", "availability_zone": "site-a"}, 400),
    ):
        server = {**admin_boot, "networks": "none", **extra}
        response = cloud.client.post(url, headers=at(who, version), json={"server": server})
        assert response.status_code == status, (version, extra, response.text)
    assert (
        cloud.client.post(url, headers=at(cloud.demo, MAX), json={}).json()["badRequest"]["message"]
        == "Invalid input for field/attribute server. 'server' is a required property."
    )
    assert_unchanged(cloud, before_all)
    for extra in ({"host": "site-c"}, {"hypervisor_hostname": "site-c"}):
        server = {**admin_boot, "networks": "none", **extra}
        placed = cloud.client.post(url, headers=at(cloud.admin, "2.74"), json={"server": server})
        assert placed.status_code == 202, placed.text
        cloud.wait_idle()
        shown = show(cloud, placed.json()["server"]["id"], MAX, admin=True)
        assert shown["OS-EXT-SRV-ATTR:host"] == "site-c"
        assert shown["pinned_availability_zone"] is None  # a host is not a pinned zone
