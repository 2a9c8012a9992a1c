"""Network v2.0 subnet pools and address scopes: one address space over all sites
(subnets from a pool never overlap, whichever network, project or site zone they
are for), Neutron's bounds and defaults, default pools, scopes joining, the errors
of each refusal (which change nothing), and tags on pools."""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.api.test_network import api, create, fails, snapshot
from tests.support import Cloud


def _subnet(
    cloud: Cloud, network_id: str, headers: dict[str, str] | None = None, **attrs: Any
) -> Any:
    body = {"subnet": {"network_id": network_id, "ip_version": 4, **attrs}}
    return api(cloud, "POST", "/subnets", headers, body)


def test_pool_defaults_and_allocation_over_all_sites(cloud: Cloud) -> None:
    pool = create(
        cloud,
        "subnetpools",
        "subnetpool",
        cloud.admin,
        name="global",
        prefixes=["10.200.0.0/24", "10.200.1.0/24", "10.201.0.0/16"],
        default_prefixlen=26,
        shared=True,
    )
    assert pool["prefixes"] == ["10.200.0.0/23", "10.201.0.0/16"]
    assert (pool["ip_version"], pool["min_prefixlen"], pool["max_prefixlen"]) == (4, 8, 32)
    assert pool["default_prefixlen"] == 26 and pool["shared"] is True
    assert pool["is_default"] is False and pool["address_scope_id"] is None

    # subnets for networks in different sites (zone hints), by two projects
    other = cloud.new_member("other")
    cidrs = []
    for index, (headers, zone) in enumerate(
        [(cloud.demo, "site-a"), (other, "site-b"), (cloud.demo, "site-c"), (other, "site-a")]
    ):
        network = create(
            cloud, "networks", "network", headers, name=f"n{index}", availability_zone_hints=[zone]
        )
        subnet = api(
            cloud,
            "POST",
            "/subnets",
            headers,
            {"subnet": {"network_id": network["id"], "ip_version": 4, "subnetpool_id": pool["id"]}},
            201,
        )["subnet"]
        assert subnet["subnetpool_id"] == pool["id"]
        cidrs.append(ipaddress.ip_network(subnet["cidr"]))
    assert [str(c) for c in cidrs] == [
        "10.200.0.0/26",
        "10.200.0.64/26",
        "10.200.0.128/26",
        "10.200.0.192/26",
    ]
    network = create(cloud, "networks", "network", name="big")
    big = _subnet(cloud, network["id"], subnetpool_id=pool["id"], prefixlen=24)["subnet"]
    assert big["cidr"] == "10.200.1.0/24" and big["gateway_ip"] == "10.200.1.1"
    assert big["allocation_pools"] == [{"start": "10.200.1.2", "end": "10.200.1.254"}]
    network2 = create(cloud, "networks", "network", name="chosen")
    chosen = _subnet(cloud, network2["id"], subnetpool_id=pool["id"], cidr="10.201.7.0/24")
    assert chosen["subnet"]["cidr"] == "10.201.7.0/24"
    following = _subnet(cloud, network2["id"], subnetpool_id=pool["id"], prefixlen=24)["subnet"]
    assert following["cidr"] == "10.201.6.0/24"  # best fit, as Neutron: the smallest free block
    all_cidrs = [
        ipaddress.ip_network(s["cidr"])
        for s in api(cloud, "GET", "/subnets", cloud.admin, status=200)["subnets"]
    ]
    assert not any(a.overlaps(b) for i, a in enumerate(all_cidrs) for b in all_cidrs[i + 1 :])

    net3 = create(cloud, "networks", "network", name="refused")
    plain = create(cloud, "networks", "network", name="plain")
    _subnet(cloud, plain["id"], cidr="172.31.0.0/24")
    before = snapshot(cloud)
    for attrs, status, error in (
        ({"cidr": "10.200.0.0/26"}, 409, "SubnetAllocationError"),  # taken
        ({"cidr": "192.168.0.0/24"}, 409, "SubnetAllocationError"),  # outside the pool
        ({"prefixlen": 4}, 400, "MinPrefixSubnetAllocationError"),
        ({"prefixlen": 31}, 400, "InvalidInput"),  # no room for addresses
        ({"prefixlen": 12}, 409, "SubnetAllocationError"),  # bigger than any free block
        ({"prefixlen": 24, "cidr": "10.201.9.0/24"}, 400, "BadRequest"),
        ({"subnetpool_id": "missing"}, 404, "SubnetPoolNotFound"),
        ({"ip_version": 6}, 400, "BadRequest"),
    ):
        body = {"network_id": net3["id"], "ip_version": 4, "subnetpool_id": pool["id"], **attrs}
        fails(cloud, "POST", "/subnets", status, error, body={"subnet": body})
    fails(
        cloud,
        "POST",
        "/subnets",
        400,
        "NetworkSubnetPoolAffinityError",
        body={"subnet": {"network_id": plain["id"], "ip_version": 4, "subnetpool_id": pool["id"]}},
    )
    fails(cloud, "DELETE", f"/subnetpools/{pool['id']}", 400, "SubnetPoolDeleteError", cloud.admin)
    fails(  # a member sees the shared pool but may not change it
        cloud,
        "PUT",
        f"/subnetpools/{pool['id']}",
        403,
        "PolicyNotAuthorized",
        body={"subnetpool": {"name": "mine"}},
    )
    assert snapshot(cloud) == before


def test_pool_validation_policy_and_default(cloud: Cloud) -> None:
    before = snapshot(cloud)
    for attrs, status, error in (
        ({"name": "p", "prefixes": []}, 400, "EmptySubnetPoolPrefixList"),
        ({"name": "p", "prefixes": ["10.0.0.0/8", "fd00::/48"]}, 400, "PrefixVersionMismatch"),
        ({"name": "p", "prefixes": ["nonsense"]}, 400, None),
        (
            {"name": "p", "prefixes": ["10.0.0.0/8"], "min_prefixlen": 30, "max_prefixlen": 24},
            400,
            "IllegalSubnetPoolPrefixBounds",
        ),
        (
            {"name": "p", "prefixes": ["10.0.0.0/8"], "max_prefixlen": 33},
            400,
            "IllegalSubnetPoolPrefixBounds",
        ),
        (
            {"name": "p", "prefixes": ["10.0.0.0/8"], "default_prefixlen": 4},
            400,
            "IllegalSubnetPoolPrefixBounds",
        ),
        ({"name": "", "prefixes": ["10.0.0.0/8"]}, 400, None),
        ({"prefixes": ["10.0.0.0/8"]}, 400, None),
        ({"name": "p", "prefixes": ["10.0.0.0/8"], "shared": True}, 403, "PolicyNotAuthorized"),
        ({"name": "p", "prefixes": ["10.0.0.0/8"], "is_default": True}, 403, "PolicyNotAuthorized"),
        ({"name": "p", "prefixes": ["10.0.0.0/8"], "ip_version": 4}, 400, None),
    ):
        fails(cloud, "POST", "/subnetpools", status, error, body={"subnetpool": attrs})
    assert snapshot(cloud) == before

    v6 = create(cloud, "subnetpools", "subnetpool", name="six", prefixes=["fd00:1::/48"])
    assert (
        v6["ip_version"],
        v6["min_prefixlen"],
        v6["default_prefixlen"],
        v6["max_prefixlen"],
    ) == (6, 64, 64, 128)
    default = create(
        cloud,
        "subnetpools",
        "subnetpool",
        cloud.admin,
        name="default",
        prefixes=["10.128.0.0/16"],
        is_default=True,
        default_prefixlen=24,
    )
    before = snapshot(cloud)
    fails(
        cloud,
        "POST",
        "/subnetpools",
        400,
        "InvalidInput",
        cloud.admin,
        {"subnetpool": {"name": "second", "prefixes": ["10.129.0.0/16"], "is_default": True}},
    )
    # prefixes only grow
    fails(
        cloud,
        "PUT",
        f"/subnetpools/{default['id']}",
        400,
        "IllegalSubnetPoolPrefixUpdate",
        cloud.admin,
        {"subnetpool": {"prefixes": ["10.128.0.0/17"]}},
    )
    fails(
        cloud,
        "PUT",
        f"/subnetpools/{default['id']}",
        404,
        "SubnetPoolNotFound",
        body={"subnetpool": {"name": "mine"}},
    )
    assert snapshot(cloud) == before
    grown = api(
        cloud,
        "PUT",
        f"/subnetpools/{default['id']}",
        cloud.admin,
        {"subnetpool": {"prefixes": ["10.128.0.0/16", "10.130.0.0/16"], "name": "grown"}},
        200,
    )["subnetpool"]
    assert grown["prefixes"] == ["10.128.0.0/16", "10.130.0.0/16"] and grown["name"] == "grown"

    network = create(cloud, "networks", "network", name="n")
    from_default = _subnet(cloud, network["id"], use_default_subnetpool=True)["subnet"]
    assert from_default["subnetpool_id"] == default["id"]
    assert from_default["cidr"] == "10.128.0.0/24"
    # the default pool is not shared: a member does not see it
    assert [p["id"] for p in api(cloud, "GET", "/subnetpools", status=200)["subnetpools"]] == [
        v6["id"]
    ]


def test_address_scopes(cloud: Cloud) -> None:
    scope = create(cloud, "address-scopes", "address_scope", name="blue", ip_version=4)
    assert scope["ip_version"] == 4 and scope["shared"] is False
    first = create(
        cloud,
        "subnetpools",
        "subnetpool",
        name="a",
        prefixes=["10.50.0.0/16"],
        address_scope_id=scope["id"],
    )
    assert first["address_scope_id"] == scope["id"]
    network = create(cloud, "networks", "network", name="scoped")
    _subnet(cloud, network["id"], subnetpool_id=first["id"], prefixlen=24)
    shown = api(cloud, "GET", f"/networks/{network['id']}", status=200)["network"]
    assert shown["ipv4_address_scope"] == scope["id"] and shown["ipv6_address_scope"] is None
    listed = api(cloud, "GET", f"/networks?id={network['id']}", status=200)["networks"]
    assert listed[0]["ipv4_address_scope"] == scope["id"]
    second = create(cloud, "subnetpools", "subnetpool", name="b", prefixes=["10.50.128.0/17"])
    v6 = create(cloud, "address-scopes", "address_scope", name="six", ip_version=6)
    admin_scope = create(
        cloud, "address-scopes", "address_scope", cloud.admin, name="admins", ip_version=4
    )
    before = snapshot(cloud)
    fails(
        cloud,
        "PUT",
        f"/subnetpools/{second['id']}",
        409,
        "AddressScopePrefixConflict",
        body={"subnetpool": {"address_scope_id": scope["id"]}},
    )
    fails(
        cloud,
        "PUT",
        f"/subnetpools/{second['id']}",
        400,
        "IllegalSubnetPoolIpVersionAssociationToAddressScope",
        body={"subnetpool": {"address_scope_id": v6["id"]}},
    )
    fails(
        cloud,
        "PUT",
        f"/subnetpools/{second['id']}",
        404,
        "AddressScopeNotFound",
        body={"subnetpool": {"address_scope_id": admin_scope["id"]}},
    )
    fails(cloud, "DELETE", f"/address-scopes/{scope['id']}", 409, "AddressScopeInUse")
    fails(cloud, "POST", "/address-scopes", 400, None, body={"address_scope": {"name": "x"}})
    fails(cloud, "POST", "/address-scopes", 400, None, body={"address_scope": {"ip_version": 5}})
    fails(
        cloud,
        "POST",
        "/address-scopes",
        403,
        "PolicyNotAuthorized",
        body={"address_scope": {"ip_version": 4, "shared": True}},
    )
    assert snapshot(cloud) == before

    shared = create(
        cloud,
        "address-scopes",
        "address_scope",
        cloud.admin,
        name="shared",
        ip_version=4,
        shared=True,
    )
    joined = api(
        cloud,
        "PUT",
        f"/subnetpools/{second['id']}",
        body={"subnetpool": {"address_scope_id": shared["id"]}},
        status=200,
    )["subnetpool"]
    assert joined["address_scope_id"] == shared["id"]
    fails(
        cloud,
        "PUT",
        f"/address-scopes/{shared['id']}",
        400,
        "AddressScopeUpdateError",
        cloud.admin,
        {"address_scope": {"shared": False}},
    )
    left = api(
        cloud,
        "PUT",
        f"/subnetpools/{first['id']}",
        body={"subnetpool": {"address_scope_id": None}},
        status=200,
    )["subnetpool"]
    assert left["address_scope_id"] is None
    api(cloud, "DELETE", f"/address-scopes/{scope['id']}", status=204)
    fails(cloud, "GET", f"/address-scopes/{scope['id']}", 404, "AddressScopeNotFound")
    for subnet in api(cloud, "GET", f"/subnets?network_id={network['id']}", status=200)["subnets"]:
        api(cloud, "DELETE", f"/subnets/{subnet['id']}", status=204)
    api(cloud, "DELETE", f"/subnetpools/{first['id']}", status=204)
    aliases = {e["alias"] for e in api(cloud, "GET", "/extensions", status=200)["extensions"]}
    assert {
        "subnet_allocation",
        "address-scope",
        "default-subnetpools",
        "standard-attr-tag",
    } <= aliases


def test_tags_on_pools_and_scopes(cloud: Cloud) -> None:
    pool = create(cloud, "subnetpools", "subnetpool", name="t", prefixes=["10.90.0.0/16"])
    untagged = create(cloud, "subnetpools", "subnetpool", name="u", prefixes=["10.91.0.0/16"])
    scope = create(cloud, "address-scopes", "address_scope", name="s", ip_version=4)
    api(cloud, "PUT", f"/subnetpools/{pool['id']}/tags", body={"tags": ["red", "blue"]}, status=200)
    api(cloud, "PUT", f"/subnetpools/{pool['id']}/tags/green", status=201)
    assert api(cloud, "GET", f"/subnetpools/{pool['id']}/tags", status=200)["tags"] == [
        "red",
        "blue",
        "green",
    ]
    api(cloud, "DELETE", f"/subnetpools/{pool['id']}/tags/red", status=204)
    api(cloud, "PUT", f"/address-scopes/{scope['id']}/tags", body={"tags": ["x"]}, status=200)

    def names(query: str) -> list[str]:
        return [
            p["name"] for p in api(cloud, "GET", f"/subnetpools?{query}", status=200)["subnetpools"]
        ]

    assert names("tags=blue,green") == ["t"]
    assert names("tags-any=green,nothing") == ["t"]
    assert names("not-tags=blue") == ["u"]
    assert names("not-tags-any=green") == ["u"]
    assert [
        s["tags"] for s in api(cloud, "GET", "/address-scopes?tags=x", status=200)["address_scopes"]
    ] == [["x"]]
    assert untagged["tags"] == []
