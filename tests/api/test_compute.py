"""Compute v2.1: version discovery and microversions, servers (create, list,
show, update, delete, actions, metadata), placement, validation, quotas and
tenant isolation. Flavors, key pairs, zones, limits and volume attachments are
in test_compute_extras.py; the real CLI and openstacksdk in test_compute_cli.py."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import func, select

from isthmus.store.tables import IpAllocation, MacAllocation, Resource, Site, Work
from tests.support import Cloud, add_network, project_id
from tests.waiting import wait_for

V = "/compute/v2.1"


# -- helpers ------------------------------------------------------------------------------------


def image_id(cloud: Cloud) -> str:
    with cloud.service.db.read() as session:
        return session.scalar(select(Resource.id).where(Resource.kind == "image")) or ""


def demo_network(cloud: Cloud, cidr: str = "10.0.0.0/24", name: str = "net") -> str:
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), cidr, name)
    return net


def boot(
    cloud: Cloud, headers: dict[str, str], net: str | None, name: str = "vm", **extra: Any
) -> Any:
    server: dict[str, Any] = {"name": name, "flavorRef": "1", "imageRef": image_id(cloud)}
    if net is not None:
        server["networks"] = [{"uuid": net}]
    server.update(extra)
    return cloud.client.post(f"{V}/servers", headers=headers, json={"server": server})


def boot_ok(cloud: Cloud, net: str | None, name: str = "vm", **extra: Any) -> str:
    response = boot(cloud, cloud.demo, net, name, **extra)
    assert response.status_code == 202, response.text
    return response.json()["server"]["id"]


def show(cloud: Cloud, server_id: str, headers: dict[str, str] | None = None) -> Any:
    response = cloud.client.get(f"{V}/servers/{server_id}", headers=headers or cloud.demo)
    assert response.status_code == 200, response.text
    return response.json()["server"]


def action(cloud: Cloud, server_id: str, body: dict[str, Any]) -> Any:
    return cloud.client.post(f"{V}/servers/{server_id}/action", headers=cloud.demo, json=body)


def footprint(cloud: Cloud) -> tuple[Any, ...]:
    """Everything a failed create must leave as it was (once the engine is idle)."""
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Resource)),
            session.scalar(select(func.count()).select_from(IpAllocation)),
            session.scalar(select(func.count()).select_from(MacAllocation)),
            session.scalar(select(func.count()).select_from(Work)),
            [
                (s.name, dict(s.allocated or {}))
                for s in session.scalars(select(Site).order_by(Site.name))
            ],
        )


# -- versions and microversions ---------------------------------------------------------------


def test_version_documents_and_microversion_negotiation(cloud: Cloud) -> None:
    client = cloud.client
    for path in ("/compute", "/compute/"):
        versions = client.get(path).json()["versions"]
        assert [v["id"] for v in versions] == ["v2.1"]
        assert versions[0]["min_version"] == "2.1"
    for path in (V, f"{V}/"):
        doc = client.get(path).json()["version"]
        assert doc["version"] == "2.96" and doc["min_version"] == "2.1"
        assert doc["links"][0]["href"].endswith("/compute/v2.1/")
    plain = client.get(f"{V}/flavors", headers=cloud.demo)
    assert plain.headers["OpenStack-API-Version"] == "compute 2.1"
    assert plain.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert "OpenStack-API-Version" in plain.headers["Vary"]
    for header, served in (
        ({"OpenStack-API-Version": "compute 2.1"}, "2.1"),
        ({"OpenStack-API-Version": "compute latest"}, "2.96"),
        ({"X-OpenStack-Nova-API-Version": "2.1"}, "2.1"),
        ({"OpenStack-API-Version": "volume 3.5"}, "2.1"),  # not ours: default
    ):
        response = client.get(f"{V}/flavors", headers={**cloud.demo, **header})
        assert response.status_code == 200
        assert response.headers["OpenStack-API-Version"] == f"compute {served}"
    for value in ("compute 2.97", "compute 3.0", "compute 2.0"):
        too_new = client.get(f"{V}/flavors", headers={**cloud.demo, "OpenStack-API-Version": value})
        assert too_new.status_code == 406
        assert "Minimum is 2.1 and maximum is 2.96" in too_new.json()["computeFault"]["message"]
    legacy = client.get(
        f"{V}/flavors", headers={**cloud.demo, "X-OpenStack-Nova-API-Version": "2.100"}
    )
    assert legacy.status_code == 406
    bad = client.get(f"{V}/flavors", headers={**cloud.demo, "OpenStack-API-Version": "compute x"})
    assert bad.status_code == 400
    assert "invalid format" in bad.json()["badRequest"]["message"]
    malformed = client.post(f"{V}/servers", headers=cloud.demo, content=b"{not json")
    assert malformed.status_code == 400 and "badRequest" in malformed.json()
    assert malformed.headers["OpenStack-API-Version"] == "compute 2.1"
    unauthenticated = client.get(f"{V}/servers")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["OpenStack-API-Version"] == "compute 2.1"


# -- create, show --------------------------------------------------------------------------------


def test_create_goes_build_then_active_with_nova_fields(cloud: Cloud) -> None:
    net = demo_network(cloud)
    response = boot(cloud, cloud.demo, net, metadata={"role": "web"}, user_data="aGVsbG8=")
    assert response.status_code == 202, response.text
    created = response.json()["server"]
    assert created["adminPass"] and created["OS-DCF:diskConfig"] == "MANUAL"
    assert created["security_groups"] == [{"name": "default"}]
    assert response.headers["Location"].endswith(f"/compute/v2.1/servers/{created['id']}")
    request_id = response.headers["X-OpenStack-Request-Id"]  # Tempest reads it
    assert request_id.startswith("req-") and response.headers["X-Compute-Request-Id"] == request_id
    first = show(cloud, created["id"])
    assert first["status"] in ("BUILD", "ACTIVE")
    cloud.wait_idle()
    server = show(cloud, created["id"])
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-STS:vm_state"] == "active"
    assert server["OS-EXT-STS:task_state"] is None
    assert server["OS-EXT-STS:power_state"] == 1
    assert server["OS-SRV-USG:launched_at"]
    assert server["metadata"] == {"role": "web"}
    assert server["flavor"]["id"] == "1" and server["image"]["id"] == image_id(cloud)
    assert server["OS-EXT-AZ:availability_zone"] in ("site-a", "site-b", "site-c")
    assert not [key for key in server if key.startswith("isthmus:")]  # Nova's body only
    assert server["tenant_id"] == project_id(cloud.service, "demo")
    assert server["hostId"] and "OS-EXT-SRV-ATTR:host" not in server
    (address,) = server["addresses"]["net"]
    assert address["version"] == 4 and address["addr"].startswith("10.0.0.")
    assert address["OS-EXT-IPS:type"] == "fixed"
    assert address["OS-EXT-IPS-MAC:mac_addr"].startswith("fa:16:3e")
    assert "fault" not in server and "isthmus:pending_reason" not in server
    as_admin = show(cloud, created["id"], cloud.admin)
    assert as_admin["OS-EXT-SRV-ATTR:host"] == server["OS-EXT-AZ:availability_zone"]
    ips = cloud.client.get(f"{V}/servers/{created['id']}/ips", headers=cloud.demo).json()
    assert ips == {"addresses": {"net": [{"version": 4, "addr": address["addr"]}]}}
    by_net = cloud.client.get(f"{V}/servers/{created['id']}/ips/net", headers=cloud.demo)
    assert by_net.json() == {"net": ips["addresses"]["net"]}
    other = cloud.client.get(f"{V}/servers/{created['id']}/ips/nope", headers=cloud.demo)
    assert other.status_code == 404 and "not a member" in other.text
    interfaces = cloud.client.get(
        f"{V}/servers/{created['id']}/os-interface", headers=cloud.demo
    ).json()["interfaceAttachments"]
    assert interfaces[0]["net_id"] == net
    assert interfaces[0]["fixed_ips"][0]["ip_address"] == address["addr"]


def test_server_waiting_for_a_down_site_shows_why(cloud: Cloud) -> None:
    net = demo_network(cloud)
    health = cloud.service.health
    health.stop()  # keep the site "up" in the store so the engine tries and records why
    driver = cloud.service.sites.get("site-c")
    driver.set_down(True)
    try:
        server_id = boot_ok(cloud, net, availability_zone="site-c")
        server = wait_for(
            lambda: "isthmus:pending_reason" in (s := show(cloud, server_id)) and s,
            timeout=10,
            interval=0.05,
            what="the server to show its isthmus:pending_reason",
        )
        assert server["status"] == "BUILD"
        assert server["OS-EXT-STS:task_state"] == "scheduling"
        assert "site-c" in server["isthmus:pending_reason"]
        assert server["OS-EXT-AZ:availability_zone"] == "site-c"
    finally:
        driver.set_down(False)
        health.check_all()  # the site is back: its waiting work runs now
        health.start()
    cloud.wait_idle()
    server = show(cloud, server_id)
    assert server["status"] == "ACTIVE" and "isthmus:pending_reason" not in server


def test_server_the_site_refuses_goes_error_with_a_fault(cloud: Cloud) -> None:
    huge = {"flavor": {"name": "huge", "ram": 1024, "vcpus": 100, "disk": 1, "id": "huge"}}
    assert cloud.client.post(f"{V}/flavors", headers=cloud.admin, json=huge).status_code == 200
    net = demo_network(cloud)
    # no site has 100 vCPUs: unpinned placement says so at once ...
    unplaced = boot(cloud, cloud.demo, net, "nowhere", flavorRef="huge")
    assert unplaced.status_code == 409 and "No valid host" in unplaced.text
    # ... a pinned server goes to its zone, which refuses it: ERROR with Nova's fault
    server_id = boot_ok(cloud, net, "too-big", flavorRef="huge", availability_zone="site-a")
    cloud.wait_idle()
    server = show(cloud, server_id)
    assert server["status"] == "ERROR" and server["OS-EXT-STS:vm_state"] == "error"
    assert server["fault"]["code"] == 500 and "No valid host" in server["fault"]["message"]
    assert server["fault"]["created"]
    assert cloud.client.delete(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 204
    cloud.wait_idle()
    assert cloud.client.get(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 404


def test_availability_zone_pins_and_placement_spreads(cloud: Cloud) -> None:
    net = demo_network(cloud)
    spread = boot(cloud, cloud.demo, net, "many", max_count=3)  # the most free site each
    assert spread.status_code == 202, spread.text
    pinned = boot_ok(cloud, net, "pinned", availability_zone="site-b")
    cloud.wait_idle()
    assert show(cloud, pinned)["OS-EXT-AZ:availability_zone"] == "site-b"
    servers = cloud.client.get(f"{V}/servers/detail?name=^many-", headers=cloud.demo).json()[
        "servers"
    ]
    assert sorted(s["name"] for s in servers) == ["many-1", "many-2", "many-3"]
    assert {s["status"] for s in servers} == {"ACTIVE"}
    assert len({s["OS-EXT-AZ:availability_zone"] for s in servers}) == 3
    nova_form = boot_ok(cloud, net, "hosted", availability_zone="site-a:some-host")
    assert show(cloud, nova_form)["OS-EXT-AZ:availability_zone"] == "site-a"


def test_default_network_selection(cloud: Cloud) -> None:
    no_nics = boot_ok(cloud, None, "lonely")  # the project has no network: no NICs
    assert show(cloud, no_nics)["addresses"] == {}
    net = demo_network(cloud)
    only = boot_ok(cloud, None, "auto")
    assert list(show(cloud, only)["addresses"]) == ["net"]
    empty = boot_ok(cloud, None, "empty", networks=[])  # what the CLI sends without --network
    assert list(show(cloud, empty)["addresses"]) == ["net"]
    none = boot_ok(cloud, None, "none", networks="none")
    assert show(cloud, none)["addresses"] == {}
    demo_network(cloud, "10.1.0.0/24", "second")
    before = footprint(cloud)
    ambiguous = boot(cloud, cloud.demo, None, "ambiguous")
    assert ambiguous.status_code == 409
    assert "Multiple possible networks found" in ambiguous.json()["conflictingRequest"]["message"]
    assert footprint(cloud) == before
    assert net


def test_fixed_ip_and_explicit_port(cloud: Cloud) -> None:
    net = demo_network(cloud)
    fixed = boot(
        cloud, cloud.demo, None, "fixed", networks=[{"uuid": net, "fixed_ip": "10.0.0.50"}]
    )
    assert fixed.status_code == 202, fixed.text
    server = show(cloud, fixed.json()["server"]["id"])
    assert server["addresses"]["net"][0]["addr"] == "10.0.0.50"
    taken = boot(
        cloud, cloud.demo, None, "again", networks=[{"uuid": net, "fixed_ip": "10.0.0.50"}]
    )
    assert taken.status_code == 400 and "already in use" in taken.text
    # an explicit port (made in the store, as the Network API would) is used and kept
    from isthmus.store import ports

    project = project_id(cloud.service, "demo")
    with cloud.service.db.session() as session:
        network = session.get(Resource, net)
        assert network is not None
        port = ports.create_port(session, network, project_id=project, name="mine")
        port_id = port.id
    with_port = boot(cloud, cloud.demo, None, "ported", networks=[{"port": port_id}])
    assert with_port.status_code == 202, with_port.text
    server_id = with_port.json()["server"]["id"]
    in_use = boot(cloud, cloud.demo, None, "thief", networks=[{"port": port_id}])
    assert in_use.status_code == 409 and "still in use" in in_use.text
    cloud.wait_idle()
    assert show(cloud, server_id)["status"] == "ACTIVE"
    assert cloud.client.delete(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 204
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        kept = session.get(Resource, port_id)
        assert kept is not None and not kept.deleting
        assert kept.device_id is None and kept.site is None
        assert (
            session.scalar(
                select(func.count()).select_from(Resource).where(Resource.kind == "port")
            )
            == 2
        )  # the explicit one and the fixed-IP server's own port


# -- validation, quotas ------------------------------------------------------------------------


def test_bad_input_is_400_and_leaves_nothing_behind(cloud: Cloud) -> None:
    net = demo_network(cloud)
    boot_ok(cloud, net, "existing")
    cloud.wait_idle()
    before = footprint(cloud)
    image = image_id(cloud)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "imageRef": image, "networks": [{"uuid": net}]}, "flavorRef"),
        ({"name": "x", "flavorRef": "nope", "imageRef": image}, "flavor nope"),
        ({"name": "x", "flavorRef": "1", "imageRef": "0" * 32}, "image"),
        ({"name": "x", "flavorRef": "1"}, "imageRef"),
        ({"flavorRef": "1", "imageRef": image}, "name"),
        ({"name": "x", "flavorRef": "1", "imageRef": image, "networks": [{"uuid": "nn"}]}, "nn"),
        (
            {"name": "x", "flavorRef": "1", "imageRef": image, "availability_zone": "site-z"},
            "site-z",
        ),
        ({"name": "x", "flavorRef": "1", "imageRef": image, "user_data": "not base64!"}, "base 64"),
        ({"name": "x", "flavorRef": "1", "imageRef": image, "key_name": "missing"}, "key_name"),
        (
            {
                "name": "x",
                "flavorRef": "1",
                "imageRef": image,
                "networks": [{"uuid": net, "fixed_ip": "192.168.9.9"}],
            },
            "not in a subnet",
        ),
        ({"name": "x", "flavorRef": "1", "imageRef": image, "metadata": {"k": 1}}, "metadata"),
        (
            {"name": "x", "flavorRef": "1", "imageRef": image, "security_groups": [{"name": "q"}]},
            "Security group q",
        ),
        ({"name": "x", "flavorRef": "1", "imageRef": image, "min_count": 0}, "min_count"),
        ({"name": "x", "flavorRef": "1", "imageRef": image, "min_count": 2.5}, "min_count"),
        ({"name": "x", "flavorRef": "1", "imageRef": image, "max_count": "2.5"}, "max_count"),
    ]
    for server, needle in cases:
        response = cloud.client.post(f"{V}/servers", headers=cloud.demo, json={"server": server})
        assert response.status_code == 400, (server, response.text)
        assert needle in response.json()["badRequest"]["message"], (needle, response.text)
    assert cloud.client.post(f"{V}/servers", headers=cloud.demo, json={}).status_code == 400
    assert footprint(cloud) == before


def test_over_quota_is_413_and_partial_counts_fit(cloud: Cloud) -> None:
    net = demo_network(cloud)
    demo = project_id(cloud.service, "demo")
    response = cloud.client.put(
        f"{V}/os-quota-sets/{demo}",
        headers=cloud.admin,
        json={"quota_set": {"instances": 3, "cores": 10}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["quota_set"]["instances"] == 3
    several = boot(cloud, cloud.demo, net, "q", min_count=1, max_count=5)
    assert several.status_code == 202  # 3 of 5 fit: Nova creates as many as allowed
    listed = cloud.client.get(f"{V}/servers", headers=cloud.demo).json()["servers"]
    assert sorted(s["name"] for s in listed) == ["q-1", "q-2", "q-3"]
    before = footprint(cloud)
    over = boot(cloud, cloud.demo, net, "one-more")
    assert over.status_code == 413
    assert "Quota exceeded for instances" in over.json()["overLimit"]["message"]
    assert footprint(cloud) == before
    cloud.client.put(
        f"{V}/os-quota-sets/{demo}", headers=cloud.admin, json={"quota_set": {"instances": 10}}
    )
    too_big = boot(cloud, cloud.demo, net, "big", flavorRef="5")  # 8 vCPUs, 3 used of 10
    assert too_big.status_code == 413 and "cores" in too_big.text
    assert footprint(cloud) == before


# -- list --------------------------------------------------------------------------------------


def test_list_filters_sorting_and_pagination(cloud: Cloud) -> None:
    net = demo_network(cloud)
    boot_ok(cloud, net, "web", max_count=4)
    boot_ok(cloud, net, "db", flavorRef="2", availability_zone="site-c")
    cloud.wait_idle()
    client = cloud.client
    brief = client.get(f"{V}/servers", headers=cloud.demo).json()["servers"]
    assert len(brief) == 5 and set(brief[0]) == {"id", "name", "links"}

    def names(query: str, headers: dict[str, str] | None = None) -> list[str]:
        response = client.get(f"{V}/servers/detail?{query}", headers=headers or cloud.demo)
        assert response.status_code == 200, response.text
        return [s["name"] for s in response.json()["servers"]]

    assert sorted(names("name=web")) == ["web-1", "web-2", "web-3", "web-4"]
    assert names("name=^d.$") == ["db"]
    assert names("flavor=2") == ["db"]
    assert names("availability_zone=site-c") == ["db"] or "db" in names("availability_zone=site-c")
    assert len(names(f"image={image_id(cloud)}")) == 5
    assert len(names("status=ACTIVE")) == 5 and names("status=SHUTOFF") == []
    assert names("sort_key=display_name&sort_dir=asc") == ["db", "web-1", "web-2", "web-3", "web-4"]
    assert names("ip=10.0.0.") and names("ip=192.168.") == []
    assert len(names("changes-since=2000-01-01T00:00:00Z")) == 5
    assert names("changes-since=2999-01-01T00:00:00Z") == []
    # pagination: limit + marker, with a next link that works
    page = client.get(f"{V}/servers?limit=2&sort_key=display_name&sort_dir=asc", headers=cloud.demo)
    body = page.json()
    assert [s["name"] for s in body["servers"]] == ["db", "web-1"]
    (link,) = body["servers_links"]
    assert link["rel"] == "next" and "marker=" in link["href"]
    seen = [s["name"] for s in body["servers"]]
    while "servers_links" in body:
        href = body["servers_links"][0]["href"]
        body = client.get(href[href.index("/compute/") :], headers=cloud.demo).json()
        seen += [s["name"] for s in body["servers"]]
    assert seen == ["db", "web-1", "web-2", "web-3", "web-4"]
    filtered_page = client.get(f"{V}/servers?limit=2&name=web", headers=cloud.demo).json()
    assert len(filtered_page["servers"]) == 2 and "servers_links" in filtered_page
    assert client.get(f"{V}/servers?marker=nope", headers=cloud.demo).status_code == 400
    assert client.get(f"{V}/servers?limit=x", headers=cloud.demo).status_code == 400
    assert client.get(f"{V}/servers?sort_key=bogus", headers=cloud.demo).status_code == 400
    # projects: admin sees all with all_tenants, a member may not ask
    assert client.get(f"{V}/servers?all_tenants=1", headers=cloud.demo).status_code == 403
    assert names("", cloud.admin) == []
    assert len(names("all_tenants=True", cloud.admin)) == 5
    demo = project_id(cloud.service, "demo")
    assert len(names(f"all_tenants=1&project_id={demo}", cloud.admin)) == 5
    assert len(names(f"tenant_id={demo}", cloud.admin)) == 5


# -- update, actions, delete ---------------------------------------------------------------------


def test_update_and_metadata(cloud: Cloud) -> None:
    net = demo_network(cloud)
    server_id = boot_ok(cloud, net, metadata={"a": "1"})
    cloud.wait_idle()
    client = cloud.client
    renamed = client.put(
        f"{V}/servers/{server_id}",
        headers=cloud.demo,
        json={"server": {"name": "renamed", "accessIPv4": "192.0.2.7"}},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["server"]["name"] == "renamed"
    assert renamed.json()["server"]["accessIPv4"] == "192.0.2.7"
    bad = client.put(f"{V}/servers/{server_id}", headers=cloud.demo, json={"server": {"x": 1}})
    assert bad.status_code == 400
    url = f"{V}/servers/{server_id}/metadata"
    assert client.get(url, headers=cloud.demo).json() == {"metadata": {"a": "1"}}
    merged = client.post(url, headers=cloud.demo, json={"metadata": {"b": "2"}})
    assert merged.json() == {"metadata": {"a": "1", "b": "2"}}
    replaced = client.put(url, headers=cloud.demo, json={"metadata": {"c": "3"}})
    assert replaced.json() == {"metadata": {"c": "3"}}
    item = client.put(f"{url}/d", headers=cloud.demo, json={"meta": {"d": "4"}})
    assert item.status_code == 200 and item.json() == {"meta": {"d": "4"}}
    assert client.get(f"{url}/d", headers=cloud.demo).json() == {"meta": {"d": "4"}}
    mismatch = client.put(f"{url}/e", headers=cloud.demo, json={"meta": {"d": "4"}})
    assert mismatch.status_code == 400
    assert client.delete(f"{url}/c", headers=cloud.demo).status_code == 204
    assert client.get(f"{url}/c", headers=cloud.demo).status_code == 404
    assert client.delete(f"{url}/c", headers=cloud.demo).status_code == 404
    too_many = {f"k{i}": "v" for i in range(129)}
    assert client.put(url, headers=cloud.demo, json={"metadata": too_many}).status_code == 413
    assert show(cloud, server_id)["metadata"] == {"d": "4"}
    cloud.wait_idle()
    with cloud.service.db.read() as session:  # the site got the new name and metadata
        resource = session.get(Resource, server_id)
        assert resource is not None
        site_obj = cloud.service.sites.get(resource.site or "").state.find("server", server_id)
        assert site_obj is not None and site_obj.spec["name"] == "renamed"
        assert dict(site_obj.spec["metadata"]) == {"d": "4"}


def test_start_stop_reboot_and_wrong_state_conflicts(cloud: Cloud) -> None:
    net = demo_network(cloud)
    server_id = boot_ok(cloud, net)
    cloud.wait_idle()
    started = action(cloud, server_id, {"os-start": None})
    assert started.status_code == 409
    assert (
        started.json()["conflictingRequest"]["message"]
        == f"Cannot 'start' instance {server_id} while it is in vm_state active"
    )
    assert action(cloud, server_id, {"os-stop": None}).status_code == 202
    pending = show(cloud, server_id)
    assert pending["OS-EXT-STS:task_state"] in ("powering-off", None)
    again = action(cloud, server_id, {"os-stop": None})
    assert again.status_code == 409
    cloud.wait_idle()
    stopped = show(cloud, server_id)
    assert stopped["status"] == "SHUTOFF" and stopped["OS-EXT-STS:power_state"] == 4
    assert stopped["OS-EXT-STS:vm_state"] == "stopped" and stopped["OS-EXT-STS:task_state"] is None
    soft = action(cloud, server_id, {"reboot": {"type": "SOFT"}})
    assert soft.status_code == 409 and "vm_state stopped" in soft.text
    assert action(cloud, server_id, {"os-start": None}).status_code == 202
    cloud.wait_idle()
    assert show(cloud, server_id)["status"] == "ACTIVE"
    assert action(cloud, server_id, {"reboot": {"type": "SOFT"}}).status_code == 202
    rebooting = show(cloud, server_id)
    assert rebooting["status"] in ("REBOOT", "ACTIVE")
    cloud.wait_idle()
    assert show(cloud, server_id)["status"] == "ACTIVE"
    assert action(cloud, server_id, {"reboot": {"type": "HARD"}}).status_code == 202
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        resource = session.get(Resource, server_id)
        assert resource is not None and resource.spec["reboot_count"] == 2
    assert action(cloud, server_id, {"reboot": {"type": "FAST"}}).status_code == 400
    # (pause is an action now: tests/api/test_server_actions.py; one Nova lacks is 400)
    assert action(cloud, server_id, {"levitate": None}).status_code == 400
    assert show(cloud, server_id)["status"] == "ACTIVE"


def test_delete_shows_deleting_then_404_and_frees_everything(cloud: Cloud) -> None:
    net = demo_network(cloud)
    server_id = boot_ok(cloud, net)
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]
    client = cloud.client
    driver = cloud.service.sites.get(site or "")
    driver.set_down(True)  # the site cannot delete it yet: the server shows as deleting
    cloud.service.health.check_all()
    try:
        assert client.delete(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 204
        deleting = show(cloud, server_id)
        assert deleting["OS-EXT-STS:task_state"] == "deleting" and deleting["status"] == "ACTIVE"
        assert [s["id"] for s in client.get(f"{V}/servers", headers=cloud.demo).json()["servers"]]
        stop = action(cloud, server_id, {"os-stop": None})
        assert stop.status_code == 409 and "task_state deleting" in stop.text
        again = client.delete(f"{V}/servers/{server_id}", headers=cloud.demo)
        assert again.status_code == 204
    finally:
        driver.set_down(False)
        cloud.service.health.check_all()
    cloud.wait_idle()
    assert client.get(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 404
    assert client.delete(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 404
    with cloud.service.db.read() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Resource)
                .where(Resource.kind.in_(["server", "port"]))
            )
            == 0
        )
        assert session.scalar(select(func.count()).select_from(IpAllocation)) == 0
        allocated = session.get(Site, site).allocated  # type: ignore[union-attr]
        assert allocated.get("servers", 0) == 0 and allocated.get("vcpus", 0) == 0
    assert cloud.service.sites.get(site or "").inventory() == [] or all(
        o.kind in ("network", "subnet", "security_group", "image")
        for o in cloud.service.sites.get(site or "").inventory()
    )


# -- isolation ------------------------------------------------------------------------------------


def test_other_project_gets_404_everywhere(cloud: Cloud) -> None:
    net = demo_network(cloud)
    server_id = boot_ok(cloud, net)
    cloud.wait_idle()
    other = cloud.new_member("other")
    client = cloud.client
    base = f"{V}/servers/{server_id}"
    requests = [
        ("get", base, None),
        ("put", base, {"server": {"name": "stolen"}}),
        ("delete", base, None),
        ("post", f"{base}/action", {"os-stop": None}),
        ("post", f"{base}/action", {"reboot": {"type": "HARD"}}),
        ("get", f"{base}/metadata", None),
        ("post", f"{base}/metadata", {"metadata": {"x": "y"}}),
        ("put", f"{base}/metadata", {"metadata": {"x": "y"}}),
        ("get", f"{base}/metadata/x", None),
        ("put", f"{base}/metadata/x", {"meta": {"x": "y"}}),
        ("delete", f"{base}/metadata/x", None),
        ("get", f"{base}/os-interface", None),
        ("get", f"{base}/os-volume_attachments", None),
        ("post", f"{base}/os-volume_attachments", {"volumeAttachment": {"volumeId": "v"}}),
        ("get", f"{base}/os-volume_attachments/v", None),
        ("delete", f"{base}/os-volume_attachments/v", None),
    ]
    for method, url, body in requests:
        kwargs: dict[str, Any] = {"headers": other}
        if body is not None:
            kwargs["json"] = body
        response = client.request(method.upper(), url, **kwargs)
        assert response.status_code == 404, (method, url, response.text)
    for path in ("servers", "servers/detail", "servers/detail?all_tenants=0"):
        assert client.get(f"{V}/{path}", headers=other).json()["servers"] == []
    server = show(cloud, server_id)
    assert server["name"] == "vm" and server["status"] == "ACTIVE"
    # the other project cannot boot on the demo project's network either
    foreign = boot(cloud, other, net, "intruder")
    assert foreign.status_code == 400 and "could not be found" in foreign.text


def test_user_data_and_key_name_reach_the_site(cloud: Cloud) -> None:
    net = demo_network(cloud)
    key = cloud.client.post(
        f"{V}/os-keypairs", headers=cloud.demo, json={"keypair": {"name": "k1"}}
    ).json()["keypair"]
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    server_id = boot_ok(cloud, net, key_name="k1", user_data=user_data)
    cloud.wait_idle()
    server = show(cloud, server_id)
    assert server["key_name"] == "k1"
    with cloud.service.db.read() as session:
        resource = session.get(Resource, server_id)
        assert resource is not None
        site_obj = cloud.service.sites.get(resource.site or "").state.find("server", server_id)
    assert site_obj is not None
    assert site_obj.spec["public_key"] == key["public_key"]
    assert site_obj.spec["user_data"] == user_data


def test_limit_zero_lists_no_servers_as_nova_does(cloud: Cloud) -> None:
    response = cloud.client.get("/compute/v2.1/servers?limit=0", headers=cloud.demo)
    assert response.status_code == 200
    assert response.json() == {"servers": []}
