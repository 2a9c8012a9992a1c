"""The real `openstack` CLI on the Neutron depth of issue 10: address scopes and
subnet pools (`subnet create --subnet-pool`), extra routes (`router set --route`,
`router unset --route`), allowed address pairs (`port set --allowed-address`), port
security, and tags (`network set --tag`, `network list --tags`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tests.fixtures.openstack_cli import BatchItem, run_openstack_batch
from tests.support import Cloud


def _batch(cloud: Cloud, name: str, commands: list[str]) -> list[BatchItem]:
    assert cloud.clouds_yaml is not None
    return run_openstack_batch(commands, Path(cloud.clouds_yaml), name, timeout=180)


def _ok(item: BatchItem) -> None:
    assert "error" not in item.stderr.lower(), f"{item.command}\n{item.stdout}\n{item.stderr}"


def test_openstack_cli_pools_routes_pairs_and_tags(live_cloud: Cloud) -> None:
    admin = _batch(
        live_cloud,
        "isthmus",
        [
            "address scope create --ip-version 4 --share world -f json",
            "subnet pool create --pool-prefix 10.210.0.0/16 --default-prefix-length 24"
            " --share --address-scope world global -f json",
        ],
    )
    scope = admin[0].json()
    assert scope["ip_version"] == 4 and scope["shared"] is True
    pool = admin[1].json()
    assert pool["prefixes"] == ["10.210.0.0/16"] and pool["address_scope_id"] == scope["id"]

    demo = _batch(
        live_cloud,
        "isthmus-demo",
        [
            "network create red -f json",
            "network set --tag alpha --tag beta red",
            "network show red -f json",
            "network create green -f json",
            "network list --tags alpha -f json",
            "subnet create --network red --subnet-pool global red-a -f json",
            "subnet create --network green --subnet-pool global --prefix-length 26 green-a -f json",
            "router create rr -f json",
            "router add subnet rr red-a",
            "router set --route destination=192.168.50.0/24,gateway=10.210.0.10 rr",
            "router show rr -f json",
            "router set --route destination=192.168.60.0/24,gateway=10.99.0.1 rr",
            "router unset --route destination=192.168.50.0/24,gateway=10.210.0.10 rr",
            "router show rr -f json",
            "port create --network red pp -f json",
            "port set --allowed-address ip-address=10.210.0.77 pp",
            "port show pp -f json",
            "port create --network green --disable-port-security --no-security-group open -f json",
            "subnet pool list -f json",
        ],
    )
    network = demo[0].json()
    _ok(demo[1])
    assert sorted(demo[2].json()["tags"]) == ["alpha", "beta"]
    assert [n["Name"] for n in demo[4].json()] == ["red"]
    red_a, green_a = demo[5].json(), demo[6].json()
    assert red_a["cidr"] == "10.210.0.0/24" and red_a["subnetpool_id"] == pool["id"]
    assert ipaddress.ip_network(green_a["cidr"]).prefixlen == 26
    assert not ipaddress.ip_network(green_a["cidr"]).overlaps(ipaddress.ip_network(red_a["cidr"]))
    _ok(demo[8])
    _ok(demo[9])
    routes = demo[10].json()["routes"]
    assert routes == [{"destination": "192.168.50.0/24", "nexthop": "10.210.0.10"}]
    # a nexthop on no subnet of the router: Neutron's 400, nothing changed
    assert "nexthop is not connected" in demo[11].stderr
    _ok(demo[12])
    assert demo[13].json()["routes"] == []
    port = demo[14].json()
    _ok(demo[15])
    pairs = demo[16].json()["allowed_address_pairs"]
    assert pairs == [{"ip_address": "10.210.0.77", "mac_address": port["mac_address"]}]
    unsecured = demo[17].json()
    assert unsecured["port_security_enabled"] is False and unsecured["security_group_ids"] == []
    assert [p["Name"] for p in demo[18].json()] == ["global"]
    assert network["port_security_enabled"] is True
