"""The real `openstack` CLI (python-openstackclient + openstacksdk) against the
Network API over HTTP: networks, IPv4/IPv6 subnets, ports, routers with an
external gateway, security groups and rules, floating IPs, availability zones,
extensions, and deleting all of it. Commands run in batches (one CLI process
each) to keep the test fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fixtures.openstack_cli import BatchItem, run_openstack_batch
from tests.support import Cloud


def _batch(cloud: Cloud, name: str, commands: list[str]) -> list[BatchItem]:
    assert cloud.clouds_yaml is not None
    return run_openstack_batch(commands, Path(cloud.clouds_yaml), name, timeout=180)


def _ok(item: BatchItem) -> None:
    """A command without -f json: it must not have reported an error."""
    assert "Error" not in item.stderr and "error" not in item.stderr.lower(), (
        f"{item.command}\n{item.stdout}\n{item.stderr}"
    )


def test_openstack_cli_network_workflow(live_cloud: Cloud) -> None:
    admin = _batch(
        live_cloud,
        "isthmus",
        [
            "network create --external public -f json",
            "subnet create --network public --subnet-range 172.24.4.0/24 public-sub -f json",
        ],
    )
    public = admin[0].json()
    assert public["router:external"] is True and public["provider:network_type"] == "vxlan"
    assert admin[1].json()["cidr"] == "172.24.4.0/24"

    demo = _batch(
        live_cloud,
        "isthmus-demo",
        [
            "network create blue -f json",
            "subnet create --network blue --subnet-range 10.0.0.0/24 blue-v4 -f json",
            "subnet create --network blue --ip-version 6 --ipv6-ra-mode slaac"
            " --ipv6-address-mode slaac --subnet-range fd00:1::/64 blue-v6 -f json",
            "port create --network blue --fixed-ip subnet=blue-v4,ip-address=10.0.0.50 p1 -f json",
            "port list --network blue -f json",
            "router create r1 -f json",
            "router add subnet r1 blue-v4",
            "router set --external-gateway public r1",
            "router show r1 -f json",
            "security group create web -f json",
            "security group rule create --protocol tcp --dst-port 22 web -f json",
            "security group rule list web -f json",
            "floating ip create public -f json",
            "network list -f json",
            "network show blue -f json",
            "availability zone list --network --long -f json",
            "extension list --network -f json",
        ],
    )
    network = demo[0].json()
    assert network["name"] == "blue" and network["status"] == "ACTIVE" and network["mtu"] == 1450
    v4, v6 = demo[1].json(), demo[2].json()
    assert v4["gateway_ip"] == "10.0.0.1" and v4["ip_version"] == 4
    assert v6["ip_version"] == 6 and v6["ipv6_ra_mode"] == "slaac"
    assert v6["ipv6_address_mode"] == "slaac"
    port = demo[3].json()
    addresses = {f["ip_address"] for f in port["fixed_ips"]}
    assert "10.0.0.50" in addresses and port["status"] == "DOWN"
    ports = demo[4].json()
    assert [p["Name"] for p in ports] == ["p1"]
    assert demo[5].json()["name"] == "r1"
    _ok(demo[6])
    _ok(demo[7])
    router = demo[8].json()
    gateway: Any = router["external_gateway_info"]
    assert gateway["network_id"] == public["id"]
    assert gateway["external_fixed_ips"][0]["ip_address"].startswith("172.24.4.")
    assert len(router["interfaces_info"]) == 1
    assert router["interfaces_info"][0]["ip_address"] == "10.0.0.1"
    group = demo[9].json()
    assert group["name"] == "web"
    rule = demo[10].json()
    assert (rule["protocol"], rule["port_range_min"], rule["port_range_max"]) == ("tcp", 22, 22)
    assert rule["remote_ip_prefix"] == "0.0.0.0/0"
    assert any(r["IP Protocol"] == "tcp" for r in demo[11].json())
    fip = demo[12].json()
    address = fip["floating_ip_address"]
    assert address.startswith("172.24.4.") and fip["status"] == "DOWN"
    assert {n["Name"] for n in demo[13].json()} == {"blue", "public"}
    shown = demo[14].json()
    assert sorted(shown["subnets"]) == sorted([v4["id"], v6["id"]])
    zones = demo[15].json()
    assert {z["Zone Name"] for z in zones} == {"site-a", "site-b", "site-c"}
    assert {z["Zone Resource"] for z in zones} == {"network", "router"}
    aliases = {e["Alias"] for e in demo[16].json()}
    assert {"router", "security-group", "external-net", "availability_zone"} <= aliases

    steps = _batch(
        live_cloud,
        "isthmus-demo",
        [
            f"floating ip set --port p1 {address}",
            f"floating ip show {address} -f json",
            f"floating ip unset --port {address}",
            f"floating ip show {address} -f json",
            f"floating ip delete {address}",
            "router remove subnet r1 blue-v4",
            "router unset --external-gateway r1",
            "router delete r1",
            "security group delete web",
            "port delete p1",
            "subnet delete blue-v6",
            "network delete blue",
            "network list -f json",
            "floating ip list -f json",
            "router list -f json",
        ],
    )
    _ok(steps[0])
    associated = steps[1].json()
    # p1 has no server, so no site applies the NAT: DOWN, as in Neutron until an agent
    # applied it (tests/api/test_network_l3_sites.py has it go ACTIVE)
    assert associated["status"] == "DOWN" and associated["port_id"] == port["id"]
    assert associated["fixed_ip_address"] in addresses
    _ok(steps[2])
    assert steps[3].json()["status"] == "DOWN"
    for item in steps[4:12]:
        _ok(item)
    assert [n["Name"] for n in steps[12].json()] == ["public"]
    assert steps[13].json() == [] and steps[14].json() == []

    final = _batch(
        live_cloud,
        "isthmus",
        ["network delete public", "network list -f json", "port list -f json"],
    )
    _ok(final[0])
    assert final[1].json() == [] and final[2].json() == []
