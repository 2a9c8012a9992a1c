"""Tenant isolation of the Network API: a member of another project gets 404 for
every resource of `demo` on every endpoint, never sees them in lists, and changes
nothing; shared and external networks stay visible (read-only) to everyone."""

from __future__ import annotations

from typing import Any

from tests.api.test_network import api, create, fails, make_network, project_of, snapshot
from tests.support import Cloud


def _demo_world(cloud: Cloud) -> dict[str, Any]:
    public = create(
        cloud, "networks", "network", cloud.admin, name="public", **{"router:external": True}
    )
    create(
        cloud,
        "subnets",
        "subnet",
        cloud.admin,
        network_id=public["id"],
        cidr="172.24.4.0/24",
        ip_version=4,
    )
    network, subnet = make_network(cloud, cidr="10.80.0.0/24")
    port = create(cloud, "ports", "port", network_id=network["id"])
    router = create(
        cloud, "routers", "router", name="r", external_gateway_info={"network_id": public["id"]}
    )
    api(
        cloud,
        "PUT",
        f"/routers/{router['id']}/add_router_interface",
        body={"subnet_id": subnet["id"]},
        status=200,
    )
    group = create(cloud, "security-groups", "security_group", name="web")
    rule = create(
        cloud,
        "security-group-rules",
        "security_group_rule",
        security_group_id=group["id"],
        direction="ingress",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
    )
    fip = create(
        cloud, "floatingips", "floatingip", floating_network_id=public["id"], port_id=port["id"]
    )
    api(cloud, "PUT", f"/networks/{network['id']}/tags/demo", status=201)
    return {
        "public": public,
        "network": network,
        "subnet": subnet,
        "port": port,
        "router": router,
        "group": group,
        "rule": rule,
        "fip": fip,
    }


def test_other_project_gets_404_everywhere_and_changes_nothing(cloud: Cloud) -> None:
    world = _demo_world(cloud)
    other = cloud.new_member("other")
    net, sub, port = world["network"]["id"], world["subnet"]["id"], world["port"]["id"]
    router, group, rule = world["router"]["id"], world["group"]["id"], world["rule"]["id"]
    fip = world["fip"]["id"]
    before = snapshot(cloud)

    per_resource = [
        ("networks", net, "network", "NetworkNotFound"),
        ("subnets", sub, "subnet", "SubnetNotFound"),
        ("ports", port, "port", "PortNotFound"),
        ("routers", router, "router", "RouterNotFound"),
        ("security-groups", group, "security_group", "SecurityGroupNotFound"),
        ("floatingips", fip, "floatingip", "FloatingIPNotFound"),
    ]
    for collection, resource_id, key, error_type in per_resource:
        path = f"/{collection}/{resource_id}"
        fails(cloud, "GET", path, 404, error_type, headers=other)
        fails(cloud, "PUT", path, 404, error_type, headers=other, body={key: {"description": "x"}})
        fails(cloud, "DELETE", path, 404, error_type, headers=other)
        fails(cloud, "GET", f"{path}/tags", 404, error_type, headers=other)
        fails(cloud, "PUT", f"{path}/tags", 404, error_type, headers=other, body={"tags": ["x"]})
        fails(cloud, "PUT", f"{path}/tags/x", 404, error_type, headers=other)
        fails(cloud, "DELETE", f"{path}/tags/demo", 404, error_type, headers=other)
        fails(cloud, "DELETE", f"{path}/tags", 404, error_type, headers=other)
    rule_path = f"/security-group-rules/{rule}"
    fails(cloud, "GET", rule_path, 404, "SecurityGroupRuleNotFound", headers=other)
    fails(cloud, "DELETE", rule_path, 404, "SecurityGroupRuleNotFound", headers=other)
    for verb in ("add", "remove"):
        for body in ({"subnet_id": sub}, {"port_id": port}):
            fails(
                cloud,
                "PUT",
                f"/routers/{router}/{verb}_router_interface",
                404,
                "RouterNotFound",
                headers=other,
                body=body,
            )

    # the other project's own resources cannot reach demo's either
    own_router = create(cloud, "routers", "router", other, name="mine")
    own_group = create(cloud, "security-groups", "security_group", other, name="mine")
    public = world["public"]["id"]
    own_fip = create(cloud, "floatingips", "floatingip", other, floating_network_id=public)
    before = snapshot(cloud)
    attempts: list[tuple[str, str, dict[str, Any], str]] = [
        (
            "PUT",
            f"/routers/{own_router['id']}/add_router_interface",
            {"subnet_id": sub},
            "SubnetNotFound",
        ),
        (
            "PUT",
            f"/routers/{own_router['id']}/add_router_interface",
            {"port_id": port},
            "PortNotFound",
        ),
        (
            "POST",
            "/subnets",
            {"subnet": {"network_id": net, "cidr": "10.99.0.0/24"}},
            "NetworkNotFound",
        ),
        ("POST", "/ports", {"port": {"network_id": net}}, "NetworkNotFound"),
        (
            "POST",
            "/security-group-rules",
            {"security_group_rule": {"security_group_id": group, "direction": "ingress"}},
            "SecurityGroupNotFound",
        ),
        (
            "POST",
            "/security-group-rules",
            {
                "security_group_rule": {
                    "security_group_id": own_group["id"],
                    "direction": "ingress",
                    "remote_group_id": group,
                }
            },
            "SecurityGroupNotFound",
        ),
        ("PUT", f"/floatingips/{own_fip['id']}", {"floatingip": {"port_id": port}}, "PortNotFound"),
        (
            "POST",
            "/floatingips",
            {"floatingip": {"floating_network_id": public, "port_id": port}},
            "PortNotFound",
        ),
    ]
    for method, path, body, error_type in attempts:
        fails(cloud, method, path, 404, error_type, headers=other, body=body)
    fails(cloud, "GET", f"/quotas/{project_of(cloud, cloud.demo)}", 403, headers=other)
    assert snapshot(cloud) == before

    demo_ids = {net, sub, port, router, group, rule, fip}
    for collection in (
        "networks",
        "subnets",
        "ports",
        "routers",
        "security-groups",
        "security-group-rules",
        "floatingips",
    ):
        items = api(cloud, "GET", f"/{collection}", other, status=200)[collection.replace("-", "_")]
        assert not demo_ids & {i["id"] for i in items}, collection
    listed = api(cloud, "GET", "/networks", other, status=200)["networks"]
    assert [n["id"] for n in listed] == [public]  # external networks are visible
    # ... and their subnets, flagged as such (extension subnet-external-network)
    subnets = api(cloud, "GET", f"/subnets?network_id={public}", other, status=200)["subnets"]
    assert [s["router:external"] for s in subnets] == [True]
    shown = api(cloud, "GET", f"/subnets/{subnets[0]['id']}", other, status=200)["subnet"]
    assert shown["router:external"] is True
    assert api(cloud, "GET", f"/subnets/{sub}", status=200)["subnet"]["router:external"] is False
    fails(
        cloud, "PUT", f"/subnets/{sub}", 400, body={"subnet": {"router:external": True}}
    )  # read-only, as the extension defines it
    assert api(cloud, "GET", f"/networks/{net}", cloud.admin, status=200)["network"]["id"] == net


def test_shared_network_is_usable_but_not_owned(cloud: Cloud) -> None:
    shared = create(cloud, "networks", "network", cloud.admin, name="shared", shared=True)
    subnet = create(
        cloud,
        "subnets",
        "subnet",
        cloud.admin,
        network_id=shared["id"],
        cidr="10.90.0.0/24",
        ip_version=4,
    )
    other = cloud.new_member("other")
    seen = api(cloud, "GET", f"/subnets/{subnet['id']}", other, status=200)["subnet"]
    assert seen["network_id"] == shared["id"]
    fails(
        cloud,
        "POST",
        "/subnets",
        403,
        headers=other,
        body={"subnet": {"network_id": shared["id"], "cidr": "10.91.0.0/24"}},
    )
    fails(
        cloud, "PUT", f"/subnets/{subnet['id']}", 403, headers=other, body={"subnet": {"name": "x"}}
    )
    mine = create(cloud, "ports", "port", other, network_id=shared["id"])
    theirs = create(cloud, "ports", "port", network_id=shared["id"])
    other_ports = api(cloud, "GET", "/ports", other, status=200)["ports"]
    assert [p["id"] for p in other_ports] == [mine["id"]]
    fails(cloud, "GET", f"/ports/{theirs['id']}", 404, "PortNotFound", headers=other)
    fails(
        cloud,
        "PUT",
        f"/networks/{shared['id']}",
        409,
        "InvalidSharedSetting",
        headers=cloud.admin,
        body={"network": {"shared": False}},
    )
