"""model/ipam.py without HTTP: subnets and pools as Neutron validates them, the order
addresses are handed out in, and the MAC spellings and values a port may have."""

from __future__ import annotations

import ipaddress
import random

import pytest

from isthmus.errors import BadRequest, Conflict
from isthmus.model import ipam


def _error_type(exc: pytest.ExceptionInfo[BadRequest] | pytest.ExceptionInfo[Conflict]) -> str:
    return exc.value.error_type


# -- subnets and addresses -------------------------------------------------------------------


def test_parse_cidr_takes_a_network_and_refuses_host_bits_versions_and_tiny_ones() -> None:
    assert ipam.parse_cidr("10.0.0.0/24") == ipaddress.ip_network("10.0.0.0/24")
    assert ipam.parse_cidr("fd00::/64", 6).version == 6
    for cidr in ("10.0.0.1/24", "banana", "10.0.0.0/33"):
        with pytest.raises(BadRequest) as refused:
            ipam.parse_cidr(cidr)
        assert _error_type(refused) == "InvalidInput" and cidr in refused.value.message
    with pytest.raises(BadRequest, match="is not an IPv6 subnet"):
        ipam.parse_cidr("10.0.0.0/24", 6)
    assert ipam.parse_cidr("10.0.0.0/30").prefixlen == 30  # two hosts: still fine
    for too_small in ("10.0.0.0/31", "10.0.0.1/32", "fd00::/127"):
        with pytest.raises(BadRequest, match="too small"):
            ipam.parse_cidr(too_small)


def test_parse_address_checks_it_is_in_the_subnet() -> None:
    network = ipam.parse_cidr("10.0.0.0/24")
    assert ipam.parse_address("10.0.0.7", network) == ipaddress.ip_address("10.0.0.7")
    assert ipam.parse_address("192.168.1.1") == ipaddress.ip_address("192.168.1.1")
    with pytest.raises(BadRequest) as outside:
        ipam.parse_address("10.0.1.7", network)
    assert _error_type(outside) == "InvalidIpForSubnet"
    with pytest.raises(BadRequest) as invalid:
        ipam.parse_address("10.0.0.300")
    assert _error_type(invalid) == "InvalidInput"


def test_default_gateway_and_pools_are_neutrons() -> None:
    v4 = ipam.parse_cidr("10.0.0.0/24")
    assert ipam.default_gateway(v4) == "10.0.0.1"
    # the gateway first: one pool after it, the broadcast address left out
    assert ipam.default_pools(v4, "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    # a gateway in the middle splits the range in two
    assert ipam.default_pools(v4, "10.0.0.100") == [
        {"start": "10.0.0.1", "end": "10.0.0.99"},
        {"start": "10.0.0.101", "end": "10.0.0.254"},
    ]
    # no gateway, or one outside the hosts: every host address
    whole = [{"start": "10.0.0.1", "end": "10.0.0.254"}]
    assert ipam.default_pools(v4, None) == whole
    assert ipam.default_pools(v4, "10.0.0.255") == whole
    # IPv6 has no broadcast: the last address is a host
    v6 = ipam.parse_cidr("fd00::/126")
    assert ipam.default_pools(v6, ipam.default_gateway(v6)) == [
        {"start": "fd00::2", "end": "fd00::3"}
    ]


def test_validate_pools_sorts_them_and_refuses_what_neutron_refuses() -> None:
    network = ipam.parse_cidr("10.0.0.0/24")
    pools = [{"start": "10.0.0.50", "end": "10.0.0.60"}, {"start": "10.0.0.10", "end": "10.0.0.20"}]
    assert ipam.validate_pools(network, pools, "10.0.0.1") == [
        {"start": "10.0.0.10", "end": "10.0.0.20"},
        {"start": "10.0.0.50", "end": "10.0.0.60"},
    ]
    refused = {
        "InvalidAllocationPool": [
            [{"start": "10.0.0.20", "end": "10.0.0.10"}],  # start after end
            [{"start": "10.0.0.0", "end": "10.0.0.10"}],  # the network address
            [{"start": "10.0.0.200", "end": "10.0.0.255"}],  # the broadcast address
        ],
        "OverlappingAllocationPools": [
            [{"start": "10.0.0.10", "end": "10.0.0.20"}, {"start": "10.0.0.20", "end": "10.0.0.30"}]
        ],
        "GatewayConflictWithAllocationPools": [[{"start": "10.0.0.1", "end": "10.0.0.9"}]],
        "InvalidIpForSubnet": [[{"start": "10.0.0.10", "end": "10.0.1.9"}]],
        "InvalidInput": [[{"start": "10.0.0.10"}]],
    }
    for error_type, cases in refused.items():
        for case in cases:
            with pytest.raises(BadRequest) as failure:
                ipam.validate_pools(network, case, "10.0.0.1")
            assert _error_type(failure) == error_type, case


def test_next_free_hands_out_the_lowest_free_address_in_pool_order() -> None:
    pools = [{"start": "10.0.0.2", "end": "10.0.0.3"}, {"start": "10.0.0.10", "end": "10.0.0.10"}]
    assert ipam.next_free(pools, set(), "sub") == "10.0.0.2"
    assert ipam.next_free(pools, {"10.0.0.2"}, "sub") == "10.0.0.3"
    assert ipam.next_free(pools, {"10.0.0.2", "10.0.0.3"}, "sub") == "10.0.0.10"
    assert list(map(str, ipam.pool_addresses(pools))) == ["10.0.0.2", "10.0.0.3", "10.0.0.10"]
    with pytest.raises(Conflict) as full:
        ipam.next_free(pools, {"10.0.0.2", "10.0.0.3", "10.0.0.10"}, "sub-1")
    assert _error_type(full) == "IpAddressGenerationFailure" and "sub-1" in full.value.message


# -- MACs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelled",
    [
        "fa:16:3e:0a:1b:2c",
        "FA:16:3E:0A:1B:2C",
        "fa-16-3e-0a-1b-2c",
        "fa:16:3e:a:1b:2c",  # netaddr accepts one-digit groups
        "fa16.3e0a.1b2c",  # three groups of four (Cisco)
        "fa16:3e0a:1b2c",
        "fa163e:0a1b2c",  # two groups of six
        "fa163e0a1b2c",  # bare
    ],
)
def test_normalize_mac_accepts_netaddrs_spellings_into_one_form(spelled: str) -> None:
    assert ipam.normalize_mac(spelled) == "fa:16:3e:0a:1b:2c"


@pytest.mark.parametrize(
    "refused",
    [
        "00:00:00:00:00:00",  # the zero MAC
        "ff:ff:ff:ff:ff:ff",  # broadcast
        "01:00:5e:00:00:01",  # multicast: low bit of the first octet
        "fb:16:3e:0a:1b:2c",
        " fa:16:3e:0a:1b:2c",  # no surrounding whitespace
        "fa:16:3e-0a:1b:2c",  # one separator only
        "fa:16:3e:0a:1b",  # five groups
        "fa:16:3e:0a:1b:2c:3d",
        "fa:16:3e:0a:1b:2g",
        "",
        None,
        12,
    ],
)
def test_normalize_mac_refuses_zero_broadcast_multicast_and_odd_spellings(refused: object) -> None:
    with pytest.raises(BadRequest) as failure:
        ipam.normalize_mac(refused)
    assert "is not a valid MAC address" in failure.value.message


def test_filter_mac_normalizes_what_it_can_and_lowercases_the_rest() -> None:
    assert ipam.filter_mac("FA-16-3E-0A-1B-2C") == "fa:16:3e:0a:1b:2c"
    assert ipam.filter_mac("NOT-A-MAC") == "not-a-mac"


def test_random_macs_are_openstack_unicast_macs() -> None:
    rng = random.Random(7)
    macs = {ipam.random_mac(rng) for _ in range(200)}
    assert len(macs) > 190  # random enough to avoid a retry storm
    for mac in macs:
        assert mac.startswith(ipam.MAC_PREFIX + ":")
        assert ipam.normalize_mac(mac) == mac
    assert ipam.random_mac(random.Random(1)) == ipam.random_mac(random.Random(1))
