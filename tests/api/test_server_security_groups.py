"""GET /servers/{id}/os-security-groups: a server's groups are its ports' groups, in
Nova's security group shape with the ingress rules only (Ansible's openstack.cloud.server
reads it on every run to compare the groups it wants with the server's)."""

from __future__ import annotations

from typing import Any

from tests.api.test_compute import V, boot_ok, demo_network
from tests.support import Cloud

N = "/network/v2.0"


def post(cloud: Cloud, path: str, key: str, **fields: Any) -> dict[str, Any]:
    response = cloud.client.post(f"{N}/{path}", headers=cloud.demo, json={key: fields})
    assert response.status_code == 201, response.text
    return dict(response.json()[key])


def groups_of(cloud: Cloud, server_id: str, headers: dict[str, str] | None = None) -> Any:
    return cloud.client.get(
        f"{V}/servers/{server_id}/os-security-groups", headers=headers or cloud.demo
    )


def test_a_servers_groups_in_novas_shape(cloud: Cloud) -> None:
    net = demo_network(cloud)
    web = post(cloud, "security-groups", "security_group", name="web", description="for web")
    ssh = post(
        cloud, "security-group-rules", "security_group_rule", security_group_id=web["id"],
        direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22,
        remote_ip_prefix="10.9.0.0/16",
    )  # fmt: skip
    peers = post(
        cloud, "security-group-rules", "security_group_rule", security_group_id=web["id"],
        direction="ingress", ethertype="IPv6", remote_group_id=web["id"],
    )  # fmt: skip
    project = web["project_id"]
    server = boot_ok(cloud, net, "vm", security_groups=[{"name": "web"}])
    plain = boot_ok(cloud, net, "plain")

    answer = groups_of(cloud, server)
    assert answer.status_code == 200, answer.text
    (group,) = answer.json()["security_groups"]
    assert {k: group[k] for k in ("id", "name", "description", "tenant_id")} == {
        "id": web["id"], "name": "web", "description": "for web", "tenant_id": project,
    }  # fmt: skip
    # the two egress rules Neutron adds to every group are not Nova's to show
    assert sorted(group["rules"], key=lambda r: r["ip_protocol"] or "") == [
        {
            "id": peers["id"], "parent_group_id": web["id"], "ip_protocol": None,
            "from_port": None, "to_port": None, "ip_range": {},
            "group": {"name": "web", "tenant_id": project},
        },
        {
            "id": ssh["id"], "parent_group_id": web["id"], "ip_protocol": "tcp",
            "from_port": 22, "to_port": 22, "ip_range": {"cidr": "10.9.0.0/16"}, "group": {},
        },
    ]  # fmt: skip
    (default,) = groups_of(cloud, plain).json()["security_groups"]
    assert default["name"] == "default"
    # the default group's ingress rule admits its own members
    assert [r["group"] for r in default["rules"]] == [{"name": "default", "tenant_id": project}] * 2


def test_missing_or_foreign_server_is_novas_404(cloud: Cloud) -> None:
    server = boot_ok(cloud, demo_network(cloud), "vm")
    missing = groups_of(cloud, "6f0f2b0e-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json() == {
        "itemNotFound": {
            "code": 404,
            "message": "Instance 6f0f2b0e-0000-4000-8000-000000000000 could not be found.",
        }
    }
    other = cloud.new_member("other")
    assert groups_of(cloud, server, other).status_code == 404
    assert groups_of(cloud, server, cloud.admin).status_code == 200
