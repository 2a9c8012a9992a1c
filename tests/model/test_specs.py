"""model/specs.py: each spec is built from a stored intent by its one `from_intent`, with
its defaults written down once; a server is sized in its site as placement claimed it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from isthmus.model import kinds
from isthmus.model.specs import (
    SPEC_TYPES,
    FixedIp,
    FloatingIpSpec,
    ImageSpec,
    NetworkSpec,
    PortSpec,
    RouterGateway,
    RouterInterface,
    RouterSpec,
    SecurityGroupSpec,
    SecurityRule,
    ServerSize,
    ServerSpec,
    SnapshotSpec,
    SubnetSpec,
    VolumeSpec,
)
from isthmus.store.placement import server_need
from isthmus.store.tables import Resource


def intent(
    kind: str,
    spec: dict[str, Any] | None = None,
    *,
    id: str = "",
    name: str = "",
    parent_id: str | None = None,
    device_id: str | None = None,
) -> Resource:
    """A stored intent row as the store holds it (not added to any session)."""
    return Resource(
        id=id or f"{kind}-1",
        kind=kind,
        name=name,
        parent_id=parent_id,
        device_id=device_id,
        spec=spec or {},
    )


def test_every_kind_a_site_holds_has_one_spec_type_named_by_its_kind() -> None:
    assert set(SPEC_TYPES) == set(kinds.SITE_KINDS)
    for kind, spec_type in SPEC_TYPES.items():
        assert spec_type.kind == kind
        assert callable(getattr(spec_type, "from_intent", None)), spec_type


def test_specs_are_frozen_values() -> None:
    spec = NetworkSpec.from_intent(intent("network"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.mtu = 9000  # type: ignore[misc]
    assert spec == NetworkSpec.from_intent(intent("network"))


def test_network_and_subnet() -> None:
    net = intent("network", {"mtu": 1400, "segmentation_id": 4242}, id="n1", name="blue")
    assert NetworkSpec.from_intent(net, ["65000:4242"]) == NetworkSpec(
        isthmus_id="n1", name="blue", mtu=1400, segmentation_id=4242, route_targets=("65000:4242",)
    )
    bare = NetworkSpec.from_intent(intent("network"))
    assert (bare.mtu, bare.segmentation_id, bare.route_targets) == (1450, None, ())

    subnet = SubnetSpec.from_intent(
        intent("subnet", {"cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}, parent_id="n1")
    )
    assert (subnet.network_id, subnet.cidr, subnet.gateway_ip) == ("n1", "10.0.0.0/24", "10.0.0.1")
    assert (subnet.ip_version, subnet.enable_dhcp) == (4, True)
    v6 = SubnetSpec.from_intent(
        intent("subnet", {"cidr": "fd00::/64", "ip_version": 6, "enable_dhcp": False})
    )
    assert (v6.ip_version, v6.enable_dhcp, v6.gateway_ip, v6.network_id) == (6, False, None, "")
    with pytest.raises(KeyError):  # a subnet without a CIDR is no subnet
        SubnetSpec.from_intent(intent("subnet"))


def test_security_group_with_its_rules_in_order() -> None:
    rules = [
        intent(
            "security_group_rule",
            {
                "direction": "ingress",
                "protocol": "tcp",
                "port_range_min": 22,
                "port_range_max": 22,
                "remote_ip_prefix": "0.0.0.0/0",
            },
        ),
        intent("security_group_rule", {"direction": "ingress", "remote_group_id": "g2"}),
        intent("security_group_rule", {"direction": "egress", "ethertype": "IPv6"}),
        intent("security_group_rule", {"direction": "ingress", "remote_group_id": "g2"}),
        intent("security_group_rule", {"direction": "ingress", "remote_group_id": "g0"}),
    ]
    members = (("g2", ("10.0.0.5",)),)
    group = SecurityGroupSpec.from_intent(
        intent("security_group", id="g1", name="web"), rules, members
    )
    assert group.isthmus_id == "g1" and group.remote_group_members == members
    assert group.rules[0] == SecurityRule("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0", None)
    assert group.rules[2] == SecurityRule("egress", "IPv6")
    assert [r.remote_group_id for r in group.rules] == [None, "g2", None, "g2", "g0"]
    assert SecurityGroupSpec.remote_groups(rules) == ["g0", "g2"]


def test_port() -> None:
    port = PortSpec.from_intent(
        intent(
            "port",
            {
                "mac_address": "fa:16:3e:00:00:01",
                "fixed_ips": [
                    {"subnet_id": "s1", "ip_address": "10.0.0.2"},
                    {"subnet_id": "s6", "ip_address": "fd00::2"},
                ],
                "security_groups": ["g1", "g2"],
                "admin_state_up": False,
                "device_owner": "compute:site-a",  # not the driver's business
            },
            parent_id="n1",
        )
    )
    assert port.network_id == "n1" and port.mac_address == "fa:16:3e:00:00:01"
    assert port.fixed_ips == (FixedIp("s1", "10.0.0.2"), FixedIp("s6", "fd00::2"))
    assert port.security_group_ids == ("g1", "g2") and port.admin_state_up is False
    bare = PortSpec.from_intent(intent("port"))
    assert (bare.fixed_ips, bare.security_group_ids, bare.admin_state_up) == ((), (), True)


def test_image_defaults_for_empty_fields() -> None:
    image = ImageSpec.from_intent(
        intent("image", {"disk_format": None, "container_format": "", "size": None})
    )
    assert (image.disk_format, image.container_format, image.size, image.checksum) == (
        "raw",
        "bare",
        0,
        "",
    )
    full = ImageSpec.from_intent(
        intent("image", {"disk_format": "qcow2", "size": 42, "checksum": "ab", "data_path": "/d"})
    )
    assert (full.disk_format, full.size, full.checksum, full.data_path) == ("qcow2", 42, "ab", "/d")


def test_a_server_is_sized_in_its_site_as_placement_claimed_it() -> None:
    for spec in ({"vcpus": 2, "ram_mb": 2048, "disk_gb": 20}, {"vcpus": 4}, {}):
        server = ServerSpec.from_intent(intent("server", spec))
        size = ServerSize.from_intent(spec)
        assert (server.vcpus, server.ram_mb, server.disk_gb) == (
            size.vcpus,
            size.ram_mb,
            size.disk_gb,
        )
        assert server_need(spec) == {**size.as_spec(), "servers": 1} == size.need()
    # the defaults, once: a server written without a size takes one vCPU, 512 MiB, 1 GiB
    assert ServerSize.from_intent({}) == ServerSize(1, 512, 1)
    assert server_need({}) == {"vcpus": 1, "ram_mb": 512, "disk_gb": 1, "servers": 1}
    # a flavor's own names (Nova's): a missing one is 0
    assert ServerSize.from_flavor({"vcpus": 2, "ram": 1024}) == ServerSize(2, 1024, 0)
    assert ServerSize.from_intent(ServerSize(3, 300, 30).as_spec()) == ServerSize(3, 300, 30)


def test_server_from_its_intent_and_its_ports_in_nic_order() -> None:
    spec = {
        "vcpus": 2,
        "ram_mb": 1024,
        "disk_gb": 10,
        "flavor": {"name": "m1.small", "vcpus": 2},
        "image_id": "img",
        "key_name": "mine",
        "public_key": "ssh-ed25519 AAAA",
        "user_data": "I2Nsb3VkLWNvbmZpZw==",
        "metadata": {"b": "2", "a": "1"},
        "power_on": False,
        "reboot_count": 3,
        "availability_zone": "site-a",  # placement's, not the site's
    }
    ports = [
        intent("port", {"nic_index": 1}, id="p-b"),
        intent("port", {"nic_index": 0}, id="p-z"),
        intent("port", {"nic_index": 1}, id="p-a"),
    ]
    server = ServerSpec.from_intent(
        intent("server", spec, id="s1", name="vm"), ServerSpec.nic_order(ports)
    )
    assert server == ServerSpec(
        isthmus_id="s1",
        name="vm",
        vcpus=2,
        ram_mb=1024,
        disk_gb=10,
        flavor_name="m1.small",
        image_id="img",
        port_ids=("p-z", "p-a", "p-b"),
        key_name="mine",
        public_key="ssh-ed25519 AAAA",
        user_data="I2Nsb3VkLWNvbmZpZw==",
        metadata=(("a", "1"), ("b", "2")),
        power_on=False,
        reboot_count=3,
    )
    bare = ServerSpec.from_intent(intent("server"))
    assert (bare.flavor_name, bare.image_id, bare.port_ids, bare.metadata) == (None, None, (), ())
    assert (bare.power_on, bare.reboot_count) == (True, 0)


def test_volume_and_snapshot_take_their_server_and_volume_from_the_columns() -> None:
    volume = VolumeSpec.from_intent(
        intent("volume", {"size": 5, "volume_type": "fast", "device": "/dev/vdb"}, device_id="s1")
    )
    assert (volume.size_gb, volume.volume_type, volume.attached_server_id, volume.device) == (
        5,
        "fast",
        "s1",
        "/dev/vdb",
    )
    detached = VolumeSpec.from_intent(intent("volume", {"snapshot_id": "snap"}))
    assert (detached.size_gb, detached.attached_server_id, detached.snapshot_id) == (
        1,
        None,
        "snap",
    )
    assert SnapshotSpec.from_intent(intent("snapshot", parent_id="v1")).volume_id == "v1"
    assert SnapshotSpec.from_intent(intent("snapshot")).volume_id == ""


def test_router_interfaces_gateway_and_floating_ip() -> None:
    network = intent("network", {"segmentation_id": 77}, id="n1")
    subnet = intent("subnet", {"cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}, id="s1")
    port = intent("port", {"mac_address": "fa:16:3e:00:00:09"}, id="p1")
    interface = RouterInterface.from_intent(port, network, subnet, "10.0.0.1")
    assert interface == RouterInterface(
        "p1", "n1", "s1", "10.0.0.0/24", "10.0.0.1", "fa:16:3e:00:00:09", 77
    )
    router = intent(
        "router",
        {"gateway": {"network_id": "ext", "enable_snat": False}, "admin_state_up": False},
        id="r1",
        name="edge",
    )
    ext_subnet = intent("subnet", {"cidr": "172.24.4.0/24", "gateway_ip": "172.24.4.1"})
    gateway = RouterGateway.from_intent(router, port, ext_subnet, "172.24.4.10")
    assert gateway == RouterGateway(
        "ext", "p1", "172.24.4.0/24", "172.24.4.10", "fa:16:3e:00:00:09", "172.24.4.1", False
    )
    spec = RouterSpec.from_intent(router, [interface], gateway)
    assert (spec.interfaces, spec.external_gateway, spec.admin_state_up) == (
        (interface,),
        gateway,
        False,
    )
    assert RouterSpec.from_intent(intent("router")).admin_state_up is True

    fip = FloatingIpSpec.from_intent(
        intent(
            "floating_ip",
            {
                "floating_ip_address": "172.24.4.20",
                "floating_network_id": "ext",
                "router_id": None,
                "port_id": None,
                "fixed_ip_address": None,
            },
        )
    )
    assert (fip.router_id, fip.port_id, fip.fixed_ip_address) == ("", "", "")
    assert fip.floating_ip_address == "172.24.4.20" and fip.floating_network_id == "ext"
