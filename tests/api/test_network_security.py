"""Network v2.0 security groups and rules: the default group, CRUD, Neutron's
rule validation and 409s, and rule changes reaching the sites a group is in."""

from __future__ import annotations

from typing import Any

from isthmus.store.tables import Binding, Resource
from tests.api.test_network import api, create, fails, make_network, project_of, snapshot
from tests.support import Cloud, add_server


def _rule(cloud: Cloud, group_id: str, **attrs: Any) -> dict[str, Any]:
    body = {"security_group_id": group_id, "direction": "ingress", **attrs}
    return create(cloud, "security-group-rules", "security_group_rule", **body)


def test_default_group_and_group_crud(cloud: Cloud) -> None:
    groups = api(cloud, "GET", "/security-groups", status=200)["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    default = groups[0]
    assert default["project_id"] == default["tenant_id"] == project_of(cloud, cloud.demo)
    assert default["stateful"] is True and default["description"] == "Default security group"
    rules = default["security_group_rules"]
    assert sorted((r["direction"], r["ethertype"]) for r in rules) == [
        ("egress", "IPv4"),
        ("egress", "IPv6"),
        ("ingress", "IPv4"),
        ("ingress", "IPv6"),
    ]
    assert all(r["belongs_to_default_sg"] for r in rules)
    ingress = [r for r in rules if r["direction"] == "ingress"]
    assert {r["remote_group_id"] for r in ingress} == {default["id"]}
    path = f"/security-groups/{default['id']}"
    fails(cloud, "DELETE", path, 409, "SecurityGroupCannotRemoveDefault")
    fails(cloud, "PUT", path, 409, body={"security_group": {"name": "renamed"}})
    fails(cloud, "POST", "/security-groups", 409, body={"security_group": {"name": "default"}})
    api(cloud, "PUT", path, body={"security_group": {"description": "mine"}}, status=200)

    web = create(cloud, "security-groups", "security_group", name="web", description="d")
    assert web["description"] == "d" and web["revision_number"] == 1
    assert sorted(
        (r["direction"], r["ethertype"], r["protocol"]) for r in web["security_group_rules"]
    ) == [("egress", "IPv4", None), ("egress", "IPv6", None)]
    renamed = api(
        cloud,
        "PUT",
        f"/security-groups/{web['id']}",
        body={"security_group": {"name": "www"}},
        status=200,
    )["security_group"]
    assert renamed["name"] == "www" and renamed["revision_number"] == 2
    for reserved in ("default", "Default"):  # no second default group by renaming either
        fails(
            cloud,
            "PUT",
            f"/security-groups/{web['id']}",
            409,
            "SecurityGroupDefaultAlreadyExists",
            body={"security_group": {"name": reserved}},
        )
    listed = api(cloud, "GET", "/security-groups?name=www&fields=id", status=200)
    assert listed == {"security_groups": [{"id": web["id"]}]}
    fails(cloud, "POST", "/security-groups", 400, body={"security_group": {"stateful": False}})
    fails(cloud, "POST", "/security-groups", 400, body={"security_group": {"rules": []}})
    api(cloud, "DELETE", f"/security-groups/{web['id']}", status=204)
    fails(cloud, "GET", f"/security-groups/{web['id']}", 404, "SecurityGroupNotFound")
    rules_left = api(cloud, "GET", "/security-group-rules", status=200)["security_group_rules"]
    assert {r["security_group_id"] for r in rules_left} == {default["id"]}


def test_rule_validation_normalisation_and_duplicates(cloud: Cloud) -> None:
    group = create(cloud, "security-groups", "security_group", name="g")
    gid = group["id"]
    ssh = _rule(
        cloud,
        gid,
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix="0.0.0.0/0",
        ethertype="IPv4",
    )
    assert (ssh["protocol"], ssh["port_range_min"], ssh["port_range_max"]) == ("tcp", 22, 22)
    assert ssh["remote_ip_prefix"] == "0.0.0.0/0" and ssh["security_group_id"] == gid
    host = _rule(
        cloud, gid, protocol="6", port_range_min=80, port_range_max=81, remote_ip_prefix="10.0.0.5"
    )
    assert host["protocol"] == "6" and host["remote_ip_prefix"] == "10.0.0.5/32"
    net = _rule(
        cloud,
        gid,
        protocol="udp",
        remote_ip_prefix="10.1.2.3/24",
        port_range_min=1,
        port_range_max=65535,
    )
    assert net["remote_ip_prefix"] == "10.1.2.3/24" and net["normalized_cidr"] == "10.1.2.0/24"
    assert (net["port_range_min"], net["port_range_max"]) == (None, None)  # whole range
    icmp6 = _rule(
        cloud, gid, protocol="icmp", ethertype="ipv6", port_range_min=128, port_range_max=0
    )
    assert (icmp6["protocol"], icmp6["ethertype"]) == ("ipv6-icmp", "IPv6")
    remote = _rule(
        cloud, gid, direction="egress", protocol=None, remote_group_id=gid, ethertype="IPv6"
    )
    assert remote["remote_group_id"] == gid and remote["protocol"] is None
    shown = api(cloud, "GET", f"/security-groups/{gid}", status=200)["security_group"]
    assert len(shown["security_group_rules"]) == 7
    assert shown["revision_number"] == 6  # every rule bumped the group

    before = snapshot(cloud)
    bad: list[tuple[dict[str, Any], int, str | None]] = [
        (
            {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
            409,
            "SecurityGroupRuleExists",
        ),
        (
            {
                "protocol": "tcp",
                "port_range_min": 22,
                "port_range_max": 22,
                "remote_ip_prefix": "::/0",
                "ethertype": "IPv6",
            },
            201,
            None,
        ),
        ({"protocol": "bogus"}, 400, "SecurityGroupRuleInvalidProtocol"),
        ({"protocol": 256}, 400, "SecurityGroupRuleInvalidProtocol"),
        (
            {"protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
            400,
            "SecurityGroupInvalidPortRange",
        ),
        (
            {"protocol": "tcp", "port_range_min": 0, "port_range_max": 80},
            400,
            "SecurityGroupInvalidPortValue",
        ),
        ({"protocol": "tcp", "port_range_min": 70000, "port_range_max": 70000}, 400, None),
        ({"protocol": "tcp", "port_range_min": 5}, 400, "SecurityGroupInvalidPortRange"),
        (
            {"port_range_min": 22, "port_range_max": 22},
            400,
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        ({"protocol": "icmp", "port_range_min": 300}, 400, "SecurityGroupInvalidIcmpValue"),
        ({"protocol": "icmp", "port_range_max": 3}, 400, "SecurityGroupMissingIcmpType"),
        (
            {"protocol": "gre", "port_range_min": 1, "port_range_max": 2},
            400,
            "SecurityGroupInvalidProtocolForPort",
        ),
        ({"remote_ip_prefix": "fd00::/64"}, 400, "SecurityGroupRuleParameterConflict"),
        ({"remote_ip_prefix": "not-a-prefix"}, 400, None),
        (
            {"protocol": "ipv6-icmp", "ethertype": "IPv4"},
            400,
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            {"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": gid},
            400,
            "SecurityGroupMultipleRemoteEntites",
        ),
        ({"remote_group_id": "missing"}, 404, "SecurityGroupNotFound"),
        ({"direction": "sideways"}, 400, None),
        ({"ethertype": "IPv5"}, 400, None),
        ({"colour": "red"}, 400, None),
    ]
    created_ok = 0
    for extra, status, error_type in bad:
        body = {"security_group_rule": {"security_group_id": gid, "direction": "ingress", **extra}}
        if status == 201:
            api(cloud, "POST", "/security-group-rules", body=body, status=201)
            created_ok += 1
            before = snapshot(cloud)
            continue
        fails(cloud, "POST", "/security-group-rules", status, error_type, body=body)
    fails(
        cloud,
        "POST",
        "/security-group-rules",
        404,
        "SecurityGroupNotFound",
        body={"security_group_rule": {"security_group_id": "missing", "direction": "ingress"}},
    )
    assert snapshot(cloud) == before and created_ok == 1

    listed = api(
        cloud, "GET", f"/security-group-rules?security_group_id={gid}&protocol=tcp", status=200
    )
    assert len(listed["security_group_rules"]) == 2
    api(cloud, "DELETE", f"/security-group-rules/{ssh['id']}", status=204)
    fails(cloud, "GET", f"/security-group-rules/{ssh['id']}", 404, "SecurityGroupRuleNotFound")
    after = api(cloud, "GET", f"/security-groups/{gid}", status=200)["security_group"]
    assert after["revision_number"] == shown["revision_number"] + 2  # one create, one delete
    _rule(cloud, gid, protocol="tcp", port_range_min=22, port_range_max=22)  # no longer a duplicate


def test_group_in_use_and_remote_group_cascade(cloud: Cloud) -> None:
    network, _ = make_network(cloud)
    used = create(cloud, "security-groups", "security_group", name="used")
    other = create(cloud, "security-groups", "security_group", name="other")
    referencing = _rule(
        cloud,
        other["id"],
        protocol="tcp",
        port_range_min=1,
        port_range_max=9,
        remote_group_id=used["id"],
    )
    port = create(cloud, "ports", "port", network_id=network["id"], security_groups=[used["id"]])
    fails(cloud, "DELETE", f"/security-groups/{used['id']}", 409, "SecurityGroupInUse")
    api(cloud, "DELETE", f"/ports/{port['id']}", status=204)
    api(cloud, "DELETE", f"/security-groups/{used['id']}", status=204)
    fails(cloud, "GET", f"/security-group-rules/{referencing['id']}", 404)
    shown = api(cloud, "GET", f"/security-groups/{other['id']}", status=200)["security_group"]
    assert len(shown["security_group_rules"]) == 2


def test_rule_changes_reach_the_sites_of_the_group(cloud: Cloud) -> None:
    network, _ = make_network(cloud, cidr="10.40.0.0/24")
    add_server(cloud.service, project_of(cloud, cloud.demo), network["id"], az="site-c")
    cloud.wait_idle()
    default = api(cloud, "GET", "/security-groups?name=default", status=200)["security_groups"][0]
    with cloud.service.db.read() as session:
        binding = session.get(Binding, (default["id"], "site-c"))
        assert binding is not None
        applied = binding.applied_generation
    rule = _rule(cloud, default["id"], protocol="tcp", port_range_min=443, port_range_max=443)
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        group = session.get(Resource, default["id"])
        binding = session.get(Binding, (default["id"], "site-c"))
        assert group is not None and binding is not None
        assert binding.applied_generation == group.generation > applied
    api(cloud, "DELETE", f"/security-group-rules/{rule['id']}", status=204)
    cloud.wait_idle()
    with cloud.service.db.read() as session:
        group = session.get(Resource, default["id"])
        binding = session.get(Binding, (default["id"], "site-c"))
        assert group is not None and binding is not None
        assert binding.applied_generation == group.generation
