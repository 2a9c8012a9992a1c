"""The input boundary (api/boundary.py) and unexpected errors (api/errors.py):
text no response or database can hold is refused with 400 naming the field, nothing
is written and every list still answers; a handler that fails answers the service's
500 on a connection that stays open, with one log record naming the request id."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, make_service, serve_in_thread

SURROGATE = "\ud800"
LISTS = (
    "/network/v2.0/networks",
    "/network/v2.0/subnets",
    "/network/v2.0/ports",
    "/network/v2.0/routers",
    "/network/v2.0/security-groups",
    "/network/v2.0/security-group-rules",
    "/network/v2.0/floatingips",
    "/volume/v3/volumes/detail",
    "/volume/v3/snapshots/detail",
    "/image/v2/images",
    "/compute/v2.1/servers/detail",
    "/compute/v2.1/os-keypairs",
    "/compute/v2.1/flavors/detail",
    "/identity/v3/projects",
    "/identity/v3/users",
)


@pytest.fixture
def quiet_cloud(tmp_path: Path, db_url: str) -> Iterator[Cloud]:
    """A cloud whose engine does not run, so the store changes only through requests."""
    service = make_service(tmp_path / "data", db_url)
    yield Cloud(service)
    service.db.dispose()


def send(cloud: Cloud, method: str, path: str, body: Any, **headers: str) -> httpx.Response:
    """`body` as JSON text with surrogates escaped ("\\ud800"), as a careless client sends."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **cloud.admin, **headers}
    return cloud.client.request(method, path, content=content, headers=headers)


def made(response: httpx.Response, key: str) -> str:
    assert response.status_code < 300, response.text
    return str(response.json()[key]["id"])


def resources(cloud: Cloud) -> dict[str, str]:
    """One resource of each kind the refused requests refer to."""
    net = made(send(cloud, "POST", "/network/v2.0/networks", {"network": {"name": "n"}}), "network")
    subnet_body = {"subnet": {"network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4}}
    subnet = made(send(cloud, "POST", "/network/v2.0/subnets", subnet_body), "subnet")
    group_body = {"security_group": {"name": "g"}}
    group = made(send(cloud, "POST", "/network/v2.0/security-groups", group_body), "security_group")
    volume = made(send(cloud, "POST", "/volume/v3/volumes", {"volume": {"size": 1}}), "volume")
    image = send(cloud, "POST", "/image/v2/images", {"name": "i", "disk_format": "raw"})
    assert image.status_code == 201, image.text
    return {
        "net": net,
        "subnet": subnet,
        "group": group,
        "volume": volume,
        "image": image.json()["id"],
    }


def assert_refused(cloud: Cloud, response: httpx.Response, field: str | None = None) -> None:
    assert response.status_code == 400, response.text
    (error,) = response.json().values()  # {"badRequest"|"NeutronError"|"error": {...}}
    if field is not None:
        assert f"field/attribute {field}:" in error["message"], error["message"]


def assert_lists_answer(cloud: Cloud) -> None:
    for path in LISTS:
        response = cloud.client.get(path, headers=cloud.admin)
        assert response.status_code == 200, (path, response.text)


def refused_cases(ids: dict[str, str]) -> list[tuple[str, str, Any, str | None]]:
    """(method, path, body, field named) of requests with a lone surrogate in a value."""
    s = SURROGATE
    return [
        (
            "POST",
            "/network/v2.0/networks",
            {"network": {"name": "x", "description": s}},
            "network.description",
        ),
        (
            "PUT",
            f"/network/v2.0/networks/{ids['net']}",
            {"network": {"description": s}},
            "network.description",
        ),
        (
            "POST",
            "/network/v2.0/subnets",
            {
                "subnet": {
                    "network_id": ids["net"],
                    "cidr": "10.8.0.0/24",
                    "ip_version": 4,
                    "description": s,
                }
            },
            "subnet.description",
        ),
        (
            "POST",
            "/network/v2.0/ports",
            {"port": {"network_id": ids["net"], "description": s}},
            "port.description",
        ),
        (
            "POST",
            "/network/v2.0/routers",
            {"router": {"name": "r", "description": s}},
            "router.description",
        ),
        (
            "POST",
            "/network/v2.0/security-group-rules",
            {
                "security_group_rule": {
                    "security_group_id": ids["group"],
                    "direction": "ingress",
                    "description": s,
                }
            },
            "security_group_rule.description",
        ),
        (
            "POST",
            "/network/v2.0/networks",
            {"networks": [{"name": "a"}, {"name": "b" + s}]},
            "networks.1.name",
        ),
        (
            "POST",
            "/volume/v3/volumes",
            {"volume": {"size": 1, "description": s}},
            "volume.description",
        ),
        (
            "POST",
            f"/volume/v3/volumes/{ids['volume']}/metadata",
            {"metadata": {"k": s}},
            "metadata.k",
        ),
        (
            "POST",
            f"/volume/v3/volumes/{ids['volume']}/metadata",
            {"metadata": {s: "v"}},
            r"metadata.\ud800",
        ),
        ("POST", "/image/v2/images", {"name": "t", "tags": ["ok", s]}, "tags.1"),
        ("POST", "/image/v2/images", {"name": "p", "extra": s}, "extra"),
        (
            "PATCH",
            f"/image/v2/images/{ids['image']}",
            [{"op": "add", "path": "/tags/-", "value": s}],
            "tags.0",
        ),
        (
            "PATCH",
            f"/image/v2/images/{ids['image']}",
            [{"op": "add", "path": "/extra", "value": s}],
            "extra",
        ),
    ]


def test_lone_surrogates_are_refused_and_nothing_is_written(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    ids = resources(cloud)
    before = snapshot(cloud.service)
    for method, path, body, field in refused_cases(ids):
        headers = {}
        if method == "PATCH":
            headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
        response = send(cloud, method, path, body, **headers)
        assert_refused(cloud, response, field)
    # an image tag in the path: the percent-encoded UTF-8 of a surrogate is not UTF-8
    tag = cloud.client.put(f"/image/v2/images/{ids['image']}/tags/%ED%A0%80", headers=cloud.admin)
    assert tag.status_code == 400, tag.text
    assert difference(before, snapshot(cloud.service)) == ""
    assert_lists_answer(cloud)


def test_names_with_surrogates_nul_or_control_characters_are_refused(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    ids = resources(cloud)
    flavor = cloud.client.get("/compute/v2.1/flavors", headers=cloud.admin).json()["flavors"][0]
    before = snapshot(cloud.service)
    creates: list[tuple[str, str, Any]] = [
        ("/network/v2.0/networks", "network", {}),
        (
            "/network/v2.0/subnets",
            "subnet",
            {"network_id": ids["net"], "cidr": "10.7.0.0/24", "ip_version": 4},
        ),
        ("/network/v2.0/ports", "port", {"network_id": ids["net"]}),
        ("/network/v2.0/routers", "router", {}),
        ("/network/v2.0/security-groups", "security_group", {}),
        ("/volume/v3/volumes", "volume", {"size": 1}),
        ("/volume/v3/snapshots", "snapshot", {"volume_id": ids["volume"]}),
        ("/compute/v2.1/os-keypairs", "keypair", {}),
        (
            "/compute/v2.1/servers",
            "server",
            {"imageRef": ids["image"], "flavorRef": flavor["id"], "networks": "none"},
        ),
        ("/compute/v2.1/flavors", "flavor", {"ram": 64, "vcpus": 1, "disk": 1}),
        ("/identity/v3/projects", "project", {}),
        ("/identity/v3/users", "user", {}),
    ]
    for bad in (
        f"a{SURROGATE}",
        "a\x00b",
        "a\x01b",
        "tab\there",
        "line\nbreak",
        "del\x7f",
        "c1\x85",
    ):
        for path, key, extra in creates:
            response = send(cloud, "POST", path, {key: {**extra, "name": bad}})
            assert_refused(cloud, response, f"{key}.name")
        image = send(cloud, "POST", "/image/v2/images", {"name": bad})
        assert_refused(cloud, image, "name")
        rename = send(
            cloud,
            "PATCH",
            f"/image/v2/images/{ids['image']}",
            [{"op": "replace", "path": "/name", "value": bad}],
            **{"Content-Type": "application/openstack-images-v2.1-json-patch"},
        )
        assert_refused(cloud, rename, "name")
    assert difference(before, snapshot(cloud.service)) == ""
    assert_lists_answer(cloud)


def test_auth_with_a_surrogate_or_nul_in_the_user_name_is_400(quiet_cloud: Cloud) -> None:
    for name in (f"admin{SURROGATE}", "admin\x00"):
        user = {"name": name, "domain": {"id": "default"}, "password": "x"}
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
        response = send(quiet_cloud, "POST", "/identity/v3/auth/tokens", body)
        assert_refused(quiet_cloud, response, "auth.identity.password.user.name")
        assert "error" in response.json()  # Keystone's shape


def test_lengths_are_refused_with_the_field_named(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    ids = resources(cloud)
    before = snapshot(cloud.service)
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/identity/v3/projects", {"project": {"name": "p" * 65}}, "project.name"),
        ("POST", "/identity/v3/users", {"user": {"name": "u" * 256}}, "user.name"),
        ("POST", "/identity/v3/users", {"user": {"name": "u", "email": "e" * 256}}, "user.email"),
        (
            "POST",
            "/identity/v3/projects",
            {"project": {"name": "p", "domain_id": "d" * 65}},
            "project.domain_id",
        ),
        (
            "POST",
            "/network/v2.0/networks",
            {"network": {"description": "d" * 256}},
            "network.description",
        ),
        ("POST", "/network/v2.0/routers", {"router": {"name": "r" * 256}}, "router.name"),
        ("POST", "/network/v2.0/networks", {"network": {"tags": ["t" * 256]}}, "network.tags.0"),
        (
            "POST",
            f"/volume/v3/volumes/{ids['volume']}/metadata",
            {"metadata": {"k": "v" * 256}},
            "metadata.k",
        ),
        ("POST", "/image/v2/images", {"name": "i", "tags": ["t" * 256]}, "tags.0"),
    ]
    for method, path, body, field in cases:
        response = send(cloud, method, path, body)
        assert_refused(cloud, response, field)
        assert "longer than" in response.text
    assert difference(before, snapshot(cloud.service)) == ""
    # the limits themselves are accepted
    ok = send(cloud, "POST", "/identity/v3/projects", {"project": {"name": "p" * 64}})
    assert ok.status_code == 201, ok.text


def test_legitimate_text_still_passes_unchanged(quiet_cloud: Cloud) -> None:
    """Unicode names, newlines and tabs in descriptions, metadata under a key `name`."""
    cloud = quiet_cloud
    name = "réseau-网络-🚀 ok"
    description = "first line\nsecond\tline\r\n"
    body = {"network": {"name": name, "description": description}}
    created = send(cloud, "POST", "/network/v2.0/networks", body)
    assert created.status_code == 201, created.text
    assert created.json()["network"]["name"] == name
    assert created.json()["network"]["description"] == description
    volume = send(
        cloud,
        "POST",
        "/volume/v3/volumes",
        {"volume": {"size": 1, "name": name, "metadata": {"name": "multi\nline"}}},
    )
    assert volume.status_code == 202, volume.text
    assert volume.json()["volume"]["metadata"] == {"name": "multi\nline"}


def test_malformed_bodies_urls_and_sizes(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    before = snapshot(cloud.service)
    path = "/network/v2.0/networks"
    for raw in (
        b'{"network": {"name": "x"',
        b'{"network": {"mtu": NaN}}',
        b'{"network": {"mtu": Infinity}}',
        b'{"network": {"mtu": 1e400}}',
        b'{"network": {"name": "\xff"}}',
        b"[" * 40 + b"]" * 40,
        b"[" * 100000 + b"]" * 100000,
        b'{"network": {"mtu": 99999999999999999999}}',
    ):
        response = send(cloud, "POST", path, raw)
        assert response.status_code in (400, 413), response.text
        assert "NeutronError" in response.json()
    huge = send(cloud, "POST", path, {"network": {"name": "x", "description": "d" * 200_000}})
    assert huge.status_code == 413, huge.text
    nova = send(cloud, "POST", "/compute/v2.1/os-keypairs", b"{not json")
    assert nova.status_code == 400 and "badRequest" in nova.json()
    assert nova.headers["OpenStack-API-Version"] == "compute 2.1"
    for url in (f"{path}?name=%00", f"{path}?name=%FF", f"{path}/%00", f"{path}/%C0%80"):
        response = cloud.client.get(url, headers=cloud.admin)
        assert response.status_code == 400, (url, response.text)
    assert difference(before, snapshot(cloud.service)) == ""


# -- unexpected errors ---------------------------------------------------------------------


def test_an_unexpected_error_is_a_500_on_a_connection_that_stays_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real fault, not an injected one: a network row whose spec is not JSON (as a
    damaged or hand-edited database would hold) makes the network list fail."""
    service = make_service(tmp_path / "data", None)
    cloud = Cloud(service)
    server = serve_in_thread(cloud, tmp_path / "data")
    try:
        with httpx.Client(base_url=cloud.url, headers=cloud.admin) as client:
            first = client.post("/network/v2.0/networks", json={"network": {"name": "n"}})
            assert first.status_code == 201, first.text
            local = first.extensions["network_stream"].get_extra_info("client_addr")
            database = str(service.db.engine.url.database)
            with sqlite3.connect(database) as raw:
                raw.execute("UPDATE resources SET spec = '{not json' WHERE kind = 'network'")
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                failed = client.get("/network/v2.0/networks")
            assert failed.status_code == 500, failed.text
            assert failed.json()["NeutronError"]["type"] == "InternalServerError"
            request_id = failed.headers["X-OpenStack-Request-Id"]
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            line = errors[0].getMessage()
            assert line.startswith(f"{request_id} GET /network/v2.0/networks failed: "), line
            assert "\n" not in line and errors[0].exc_info is None, line
            after = client.get("/volume/v3/volumes", headers={"Connection": "keep-alive"})
            assert after.status_code == 200, after.text
            same = after.extensions["network_stream"].get_extra_info("client_addr")
            assert same == local, "the 500 dropped the keep-alive connection"
    finally:
        server.should_exit = True
        server.thread.join(timeout=10)
        service.db.dispose()


def test_identity_bodies_of_the_wrong_shape_or_a_taken_name_are_4xx(quiet_cloud: Cloud) -> None:
    """Found by the fuzzer (test_fuzz_openstack.py): these answered 500."""
    cloud = quiet_cloud
    K = "/identity/v3"
    made(send(cloud, "POST", f"{K}/projects", {"project": {"name": "taken"}}), "project")
    other = made(send(cloud, "POST", f"{K}/projects", {"project": {"name": "free"}}), "project")
    user = made(send(cloud, "POST", f"{K}/users", {"user": {"name": "u1"}}), "user")
    before = snapshot(cloud.service)
    taken = send(cloud, "PATCH", f"{K}/projects/{other}", {"project": {"name": "taken"}})
    assert taken.status_code == 409, taken.text
    assert "error" in taken.json()
    for body in ({"user": {"enabled": ""}}, {"user": {"enabled": [1]}}, {"user": "x"}):
        response = send(cloud, "PATCH", f"{K}/users/{user}", body)
        assert response.status_code == 400, (body, response.text)
    identity: dict[str, Any] = {"methods": ["password"]}
    for password in ({"user": {"name": {"a": 1}, "password": "x"}}, {"user": "admin"}, "x"):
        auth = {"auth": {"identity": {**identity, "password": password}}}
        response = send(cloud, "POST", f"{K}/auth/tokens", auth)
        assert response.status_code == 400, (password, response.text)
    assert difference(before, snapshot(cloud.service)) == ""


def test_a_handler_failing_mid_write_leaves_nothing_behind(
    quiet_cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injected by monkeypatching, in this process only: the last step of a
    server create (after placement claimed capacity, its port took an address and a
    MAC and the server row was added) and of a volume create fails unexpectedly. The
    answer is the service's 500 and the store is exactly as before."""
    cloud = quiet_cloud
    ids = resources(cloud)
    flavor = cloud.client.get("/compute/v2.1/flavors", headers=cloud.admin).json()["flavors"][0]
    images = cloud.client.get("/image/v2/images", headers=cloud.admin).json()["images"]
    active = next(image["id"] for image in images if image["status"] == "active")

    def broken_enqueue(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected failure")

    monkeypatch.setattr("isthmus.intent.servers.enqueue", broken_enqueue)
    monkeypatch.setattr("isthmus.intent.volumes.enqueue", broken_enqueue)
    before = snapshot(cloud.service)
    server = {
        "name": "half",
        "imageRef": active,
        "flavorRef": flavor["id"],
        "networks": [{"uuid": ids["net"]}],
    }
    for path, body, key in (
        ("/compute/v2.1/servers", {"server": server}, "computeFault"),
        ("/volume/v3/volumes", {"volume": {"size": 1, "name": "half"}}, "computeFault"),
    ):
        response = send(cloud, "POST", path, body)
        assert response.status_code == 500, response.text
        assert key in response.json()
        assert difference(before, snapshot(cloud.service)) == "", path
    assert_lists_answer(cloud)


def test_a_multiple_create_with_a_255_character_name_fits_the_column(
    quiet_cloud: Cloud,
) -> None:
    """Found by the fuzzer on PostgreSQL: `<name>-<n>` of a 255-character name was 257
    characters, a 500 there (SQLite does not check lengths)."""
    cloud = quiet_cloud
    flavor = cloud.client.get("/compute/v2.1/flavors", headers=cloud.admin).json()["flavors"][0]
    images = cloud.client.get("/image/v2/images", headers=cloud.admin).json()["images"]
    active = next(image["id"] for image in images if image["status"] == "active")
    server = {
        "name": "x" * 255,
        "imageRef": active,
        "flavorRef": flavor["id"],
        "networks": "none",
        "min_count": 2,
    }
    response = send(cloud, "POST", "/compute/v2.1/servers", {"server": server})
    assert response.status_code == 202, response.text
    listed = cloud.client.get("/compute/v2.1/servers", headers=cloud.admin).json()["servers"]
    assert sorted(s["name"] for s in listed) == ["x" * 253 + "-1", "x" * 253 + "-2"]
