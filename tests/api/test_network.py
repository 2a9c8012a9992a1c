"""Network v2.0 (Neutron): versions, extensions, availability zones, networks,
lists (filters, fields, paging, sorting), quotas and tags. The helpers at the top
are shared by the other tests/api/test_network*.py modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from isthmus.store.tables import IpAllocation, MacAllocation, Quota, Resource, Site
from tests.support import Cloud

N = "/network/v2.0"


def api(
    cloud: Cloud,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: Any = None,
    status: int | None = None,
) -> Any:
    """Call the Network API (path below /network/v2.0); check the status if given."""
    url = path if path.startswith(("/network/", "http")) or path == "/network" else N + path
    response = cloud.client.request(method, url, headers=headers or cloud.demo, json=body)
    if status is not None:
        assert response.status_code == status, f"{method} {path}: {response.text}"
    return response.json() if response.content else None


def fails(
    cloud: Cloud,
    method: str,
    path: str,
    status: int,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> dict[str, Any]:
    """A call that must fail with `status` (and Neutron error `error_type`)."""
    error = api(cloud, method, path, headers, body, status)["NeutronError"]
    assert set(error) == {"type", "message", "detail"}
    if error_type is not None:
        assert error["type"] == error_type, error
    return error


def create(
    cloud: Cloud, collection: str, key: str, headers: dict[str, str] | None = None, **attrs: Any
) -> dict[str, Any]:
    return api(cloud, "POST", f"/{collection}", headers, {key: attrs}, 201)[key]


def make_network(
    cloud: Cloud,
    headers: dict[str, str] | None = None,
    cidr: str = "10.0.0.0/24",
    name: str = "net",
    **subnet_attrs: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    network = create(cloud, "networks", "network", headers, name=name)
    version = 6 if ":" in cidr else 4
    subnet = create(
        cloud,
        "subnets",
        "subnet",
        headers,
        network_id=network["id"],
        cidr=cidr,
        ip_version=version,
        name=f"{name}-sub",
        **subnet_attrs,
    )
    return network, subnet


def snapshot(cloud: Cloud) -> tuple[Any, ...]:
    """Everything a bad request must leave alone: resources and their revisions,
    addresses, MACs, quotas."""
    with cloud.service.db.read() as session:
        resources = sorted(
            tuple(row)
            for row in session.execute(
                select(Resource.id, Resource.generation, Resource.deleting, Resource.name)
            )
        )
        addresses = sorted(session.execute(select(IpAllocation.ip_address)).scalars())
        macs = sorted(session.execute(select(MacAllocation.mac_address)).scalars())
        limits = sorted(tuple(r) for r in session.execute(select(Quota.resource, Quota.hard_limit)))
    return tuple(resources), tuple(addresses), tuple(macs), tuple(limits)


def project_of(cloud: Cloud, headers: dict[str, str]) -> str:
    token = headers["X-Auth-Token"]
    body = cloud.client.get(
        "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": token}
    ).json()
    return body["token"]["project"]["id"]


# -- versions and extensions -----------------------------------------------------------------


def test_versions_resources_and_extensions(cloud: Cloud) -> None:
    for path in ("/network", "/network/"):
        versions = cloud.client.get(path).json()["versions"]
        assert [(v["id"], v["status"]) for v in versions] == [("v2.0", "CURRENT")]
        assert versions[0]["links"][0]["href"].endswith("/network/v2.0/")
    collections = {r["collection"] for r in api(cloud, "GET", "/", status=200)["resources"]}
    assert {"networks", "subnets", "ports", "routers", "floatingips"} <= collections

    aliases = {e["alias"] for e in api(cloud, "GET", "/extensions", status=200)["extensions"]}
    required = {
        "availability_zone",
        "network_availability_zone",
        "router_availability_zone",
        "security-group",
        "router",
        "external-net",
        "standard-attr-description",
        "standard-attr-timestamp",
        "standard-attr-tag",
        "quotas",
        "pagination",
        "sorting",
        "project-id",
        "net-mtu",
        "provider",
        "binding",
    }
    assert required <= aliases
    assert not {"extra_dhcp_opt", "ip-substring-filtering"} & aliases
    shown = api(cloud, "GET", "/extensions/router", status=200)["extension"]
    assert shown["name"] == "Neutron L3 Router"
    fails(cloud, "GET", "/extensions/extra_dhcp_opt", 404)
    assert cloud.client.get(f"{N}/networks").status_code == 401


def test_availability_zones_one_per_site_and_state(cloud: Cloud) -> None:
    zones = api(cloud, "GET", "/availability_zones", status=200)["availability_zones"]
    assert {(z["name"], z["resource"]) for z in zones} == {
        (site, resource)
        for site in ("site-a", "site-b", "site-c")
        for resource in ("network", "router")
    }
    assert {z["state"] for z in zones} == {"available"}
    routers = api(cloud, "GET", "/availability_zones?resource=router", status=200)
    assert {z["resource"] for z in routers["availability_zones"]} == {"router"}
    with cloud.service.db.session() as session:
        site = session.get(Site, "site-b")
        assert site is not None
        site.enabled = False
    zones = api(cloud, "GET", "/availability_zones?name=site-b", status=200)["availability_zones"]
    assert {z["state"] for z in zones} == {"unavailable"}


# -- networks --------------------------------------------------------------------------------


def test_network_crud_and_body(cloud: Cloud) -> None:
    network = create(cloud, "networks", "network", name="blue", description="d")
    assert network["status"] == "ACTIVE"
    assert network["admin_state_up"] is True
    assert network["shared"] is False and network["router:external"] is False
    assert network["mtu"] == 1450 and network["subnets"] == []
    assert network["availability_zones"] == [] and network["availability_zone_hints"] == []
    assert network["tenant_id"] == network["project_id"] == project_of(cloud, cloud.demo)
    assert network["revision_number"] == 1 and network["tags"] == []
    assert network["created_at"].endswith("Z") and network["updated_at"].endswith("Z")
    assert network["ipv4_address_scope"] is None and network["is_default"] is False
    assert "provider:network_type" not in network  # admin-only
    as_admin = api(cloud, "GET", f"/networks/{network['id']}", cloud.admin, status=200)
    assert as_admin["network"]["provider:network_type"] == "vxlan"
    assert as_admin["network"]["provider:segmentation_id"] >= 1001  # allocated at create

    updated = api(
        cloud,
        "PUT",
        f"/networks/{network['id']}",
        body={"network": {"name": "green", "mtu": 1400, "admin_state_up": False}},
        status=200,
    )["network"]
    assert (updated["name"], updated["mtu"], updated["admin_state_up"]) == ("green", 1400, False)
    assert updated["revision_number"] == 2
    shown = api(cloud, "GET", f"/networks/{network['id']}?fields=id&fields=name", status=200)
    assert shown == {"network": {"id": network["id"], "name": "green"}}

    api(cloud, "DELETE", f"/networks/{network['id']}", status=204)
    fails(cloud, "GET", f"/networks/{network['id']}", 404, "NetworkNotFound")
    fails(cloud, "DELETE", f"/networks/{network['id']}", 404, "NetworkNotFound")


def test_network_admin_attributes_and_validation_change_nothing(cloud: Cloud) -> None:
    network = create(cloud, "networks", "network", name="n")
    before = snapshot(cloud)
    bad = [
        ({"network": {"name": "x", "shared": True}}, 403),
        ({"network": {"name": "x", "router:external": True}}, 403),
        ({"network": {"provider:segmentation_id": 7}}, 403),
        ({"network": {"mtu": 9000}}, 400),
        ({"network": {"mtu": 10}}, 400),
        ({"network": {"colour": "red"}}, 400),
        ({"network": {"status": "DOWN"}}, 400),
        ({"network": {"availability_zone_hints": ["nowhere"]}}, 404),
        ({"network": {"admin_state_up": "maybe"}}, 400),
        ({"network": {"name": "x" * 300}}, 400),
        ({"network": "nope"}, 400),
        ({}, 400),
        ({"networks": []}, 400),
    ]
    for body, status in bad:
        fails(cloud, "POST", "/networks", status, body=body)
    fails(cloud, "PUT", f"/networks/{network['id']}", 400, body={"network": {"mtu": 99999}})
    fails(cloud, "PUT", f"/networks/{network['id']}", 403, body={"network": {"shared": True}})
    fails(
        cloud,
        "PUT",
        f"/networks/{network['id']}",
        400,
        body={"network": {"availability_zone_hints": ["site-a"]}},
    )
    fails(cloud, "POST", "/networks", 400, body={"network": {"project_id": "someone-else"}})
    assert snapshot(cloud) == before

    admin_net = create(
        cloud,
        "networks",
        "network",
        cloud.admin,
        name="public",
        shared=True,
        availability_zone_hints=["site-a", "site-b"],
        **{
            "router:external": True,
            "provider:network_type": "vxlan",
            "provider:segmentation_id": 42,
        },
    )
    assert admin_net["availability_zone_hints"] == ["site-a", "site-b"]
    assert admin_net["provider:segmentation_id"] == 42
    fails(
        cloud,
        "POST",
        "/networks",
        409,
        headers=cloud.admin,
        body={"network": {"provider:network_type": "vxlan", "provider:segmentation_id": 42}},
    )
    fails(
        cloud,
        "POST",
        "/networks",
        400,
        headers=cloud.admin,
        body={"network": {"provider:network_type": "vlan"}},
    )
    # a member sees the shared/external network but may not change it
    seen = api(cloud, "GET", f"/networks/{admin_net['id']}", status=200)["network"]
    assert seen["shared"] is True and "provider:segmentation_id" not in seen
    fails(cloud, "PUT", f"/networks/{admin_net['id']}", 403, body={"network": {"name": "mine"}})
    fails(cloud, "DELETE", f"/networks/{admin_net['id']}", 403)
    plain = create(cloud, "networks", "network", shared=False, **{"router:external": False})
    assert plain["shared"] is False  # the default value is not an admin-only setting
    demo_project = project_of(cloud, cloud.demo)
    for_demo = create(cloud, "networks", "network", cloud.admin, project_id=demo_project)
    assert for_demo["project_id"] == demo_project
    bulk = api(
        cloud,
        "POST",
        "/networks",
        body={"networks": [{"name": "b1"}, {"name": "b2"}]},
        status=201,
    )["networks"]
    assert [n["name"] for n in bulk] == ["b1", "b2"]


def test_list_filters_fields_paging_and_sorting(cloud: Cloud) -> None:
    names = ["delta", "alpha", "echo", "charlie", "bravo"]
    created = {n: create(cloud, "networks", "network", name=n) for n in names}
    create(cloud, "networks", "network", cloud.admin, name="shared-one", shared=True)

    def listed(query: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return api(cloud, "GET", f"/networks?{query}", headers, status=200)

    both = listed("name=alpha&name=echo")["networks"]
    assert sorted(n["name"] for n in both) == ["alpha", "echo"]
    assert listed(f"id={created['bravo']['id']}")["networks"][0]["name"] == "bravo"
    assert [n["name"] for n in listed("shared=true")["networks"]] == ["shared-one"]
    assert len(listed("shared=False")["networks"]) == 5
    assert listed("router:external=True")["networks"] == []
    project = project_of(cloud, cloud.demo)
    assert len(listed(f"tenant_id={project}")["networks"]) == 5
    assert len(listed(f"project_id={project}&name=alpha")["networks"]) == 1
    trimmed = listed("name=alpha&fields=id&fields=name")["networks"]
    assert trimmed == [{"id": created["alpha"]["id"], "name": "alpha"}]
    assert set(listed("fields=id,mtu")["networks"][0]) == {"id", "mtu"}

    ordered = listed("sort_key=name&sort_dir=asc")["networks"]
    assert [n["name"] for n in ordered] == sorted([*names, "shared-one"])
    descending = listed("sort_key=name&sort_dir=desc&shared=false")["networks"]
    assert [n["name"] for n in descending] == sorted(names, reverse=True)

    seen: list[str] = []
    query = "sort_key=name&sort_dir=asc&limit=2&shared=false"
    page = listed(query)
    while True:
        seen += [n["name"] for n in page["networks"]]
        links = {link["rel"]: link["href"] for link in page.get("networks_links", [])}
        if "next" not in links:
            break
        assert "limit=2" in links["next"] and "marker=" in links["next"]
        page = cloud.client.get(links["next"], headers=cloud.demo).json()
    assert seen == sorted(names)
    last = listed(f"limit=10&shared=false&marker={created['charlie']['id']}")["networks"]
    assert [n["name"] for n in last] == ["bravo"]  # creation order after charlie

    fails(cloud, "GET", "/networks?sort_key=name&sort_dir=up", 400)
    fails(cloud, "GET", "/networks?sort_key=subnets", 400)
    fails(cloud, "GET", "/networks?sort_key=name&sort_key=id&sort_dir=asc", 400)
    fails(cloud, "GET", "/networks?limit=-1", 400)
    fails(cloud, "GET", "/networks?limit=1&marker=gone", 404, "NetworkNotFound")
    # admin lists every project; the other member only its own plus shared ones
    assert len(listed("", cloud.admin)["networks"]) == 6
    other = cloud.new_member("other")
    assert [n["name"] for n in listed("", other)["networks"]] == ["shared-one"]


# -- quotas ----------------------------------------------------------------------------------


def test_quotas_show_details_update_and_enforce(cloud: Cloud) -> None:
    project = project_of(cloud, cloud.demo)
    quota = api(cloud, "GET", f"/quotas/{project}", status=200)["quota"]
    assert quota["network"] == 100 and quota["floatingip"] == 50
    assert set(quota) >= {"subnet", "port", "router", "security_group", "security_group_rule"}
    default = api(cloud, "GET", f"/quotas/{project}/default", status=200)["quota"]
    assert default["port"] == 500
    make_network(cloud)
    details = api(cloud, "GET", f"/quotas/{project}/details", status=200)["quota"]
    assert details["network"] == {"limit": 100, "used": 1, "reserved": 0}
    assert details["security_group"]["used"] == 1  # the default group
    admin_project = project_of(cloud, cloud.admin)
    fails(cloud, "GET", f"/quotas/{admin_project}", 403)
    fails(cloud, "PUT", f"/quotas/{project}", 403, body={"quota": {"network": 5}})

    before = snapshot(cloud)
    for bad in ({"widgets": 5}, {"network": -5}, {"network": "many"}):
        fails(cloud, "PUT", f"/quotas/{project}", 400, headers=cloud.admin, body={"quota": bad})
    assert snapshot(cloud) == before
    updated = api(
        cloud,
        "PUT",
        f"/quotas/{project}",
        cloud.admin,
        {"quota": {"network": 1, "port": 2, "security_group_rule": "7"}},
        200,
    )["quota"]
    assert (updated["network"], updated["port"], updated["security_group_rule"]) == (1, 2, 7)
    listed = api(cloud, "GET", "/quotas", cloud.admin, status=200)["quotas"]
    assert [q["project_id"] for q in listed] == [project]

    before = snapshot(cloud)
    fails(cloud, "POST", "/networks", 413, body={"network": {"name": "second"}})
    assert snapshot(cloud) == before
    network = api(cloud, "GET", "/networks", status=200)["networks"][0]
    api(cloud, "POST", "/ports", body={"port": {"network_id": network["id"]}}, status=201)
    api(cloud, "POST", "/ports", body={"port": {"network_id": network["id"]}}, status=201)
    fails(cloud, "POST", "/ports", 413, body={"port": {"network_id": network["id"]}})

    api(cloud, "DELETE", f"/quotas/{project}", cloud.admin, status=204)
    assert api(cloud, "GET", f"/quotas/{project}", status=200)["quota"]["network"] == 100
    create(cloud, "networks", "network", name="second")


# -- tags ------------------------------------------------------------------------------------


def test_tags_replace_add_remove_and_filter(cloud: Cloud) -> None:
    red = create(cloud, "networks", "network", name="red")
    blue = create(cloud, "networks", "network", name="blue")
    path = f"/networks/{red['id']}/tags"
    assert api(cloud, "PUT", path, body={"tags": ["a", "b", "a"]}, status=200) == {
        "tags": ["a", "b"]
    }
    api(cloud, "PUT", f"{path}/c", status=201)
    api(cloud, "PUT", f"/networks/{blue['id']}/tags/b", status=201)
    assert api(cloud, "GET", path, status=200) == {"tags": ["a", "b", "c"]}
    api(cloud, "GET", f"{path}/a", status=204)
    fails(cloud, "GET", f"{path}/zzz", 404, "TagNotFound")
    shown = api(cloud, "GET", f"/networks/{red['id']}", status=200)["network"]
    assert shown["tags"] == ["a", "b", "c"] and shown["revision_number"] == 3

    def names(query: str) -> list[str]:
        found = api(cloud, "GET", f"/networks?{query}", status=200)["networks"]
        return sorted(n["name"] for n in found)

    assert names("tags=a,b") == ["red"]
    assert names("tags=b") == ["blue", "red"]
    assert names("tags-any=c,b") == ["blue", "red"]
    assert names("not-tags=a,b") == ["blue"]
    assert names("not-tags-any=c") == ["blue"]

    api(cloud, "DELETE", f"{path}/a", status=204)
    fails(cloud, "DELETE", f"{path}/a", 404, "TagNotFound")
    fails(cloud, "PUT", path, 400, body={"tags": "a"})
    fails(cloud, "PUT", path, 400, body={"tags": ["x,y"]})
    api(cloud, "DELETE", path, status=204)
    assert api(cloud, "GET", path, status=200) == {"tags": []}
    fails(cloud, "GET", "/widgets/x/tags", 404)
    fails(cloud, "GET", "/networks/missing/tags", 404, "NetworkNotFound")
