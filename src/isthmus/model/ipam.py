"""Address management, pure: validate subnets and pick free addresses and MACs.

Isthmus allocates every fixed IP and MAC itself (global IPAM), so addresses stay
unique across all sites; the store's unique keys catch a race between two
allocations of the same address and the caller retries.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Iterator
from typing import Any

from isthmus.errors import BadRequest, Conflict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAC_PREFIX = "fa:16:3e"  # the prefix OpenStack clouds use for port MACs


def parse_cidr(cidr: str, ip_version: int | None = None) -> IPNetwork:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise BadRequest(
            f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet ({exc}).",
            "InvalidInput",
        ) from exc
    if ip_version is not None and network.version != ip_version:
        raise BadRequest(
            f"Invalid input: cidr {cidr} is not an IPv{ip_version} subnet.", "InvalidInput"
        )
    if (network.version == 4 and network.prefixlen > 30) or (
        network.version == 6 and network.prefixlen > 126
    ):
        raise BadRequest(
            f"Invalid input: cidr {cidr} is too small to hold addresses.", "InvalidInput"
        )
    return network


def parse_address(address: str, network: IPNetwork | None = None) -> IPAddress:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise BadRequest(
            f"Invalid input: '{address}' is not a valid IP address.", "InvalidInput"
        ) from exc
    if network is not None and ip not in network:
        raise BadRequest(
            f"IP address {address} is not a valid IP for the subnet {network}.",
            "InvalidIpForSubnet",
        )
    return ip


def default_gateway(network: IPNetwork) -> str:
    return str(next(network.hosts()))


def default_pools(network: IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    """Neutron's default: every host address except the gateway, as ranges."""
    first = network.network_address + 1
    last = network.broadcast_address - (1 if network.version == 4 else 0)
    pools: list[dict[str, str]] = []
    if gateway is None:
        return [{"start": str(first), "end": str(last)}]
    gw = ipaddress.ip_address(gateway)
    if first < gw:
        pools.append({"start": str(first), "end": str(gw - 1)})
    if gw < last:
        pools.append({"start": str(gw + 1), "end": str(last)})
    if not (first <= gw <= last):
        pools = [{"start": str(first), "end": str(last)}]
    return pools


def validate_pools(
    network: IPNetwork, pools: Iterable[dict[str, Any]], gateway: str | None
) -> list[dict[str, str]]:
    """Pools inside the subnet, not overlapping each other or the gateway."""
    parsed: list[tuple[IPAddress, IPAddress]] = []
    for pool in pools:
        try:
            start = parse_address(str(pool["start"]), network)
            end = parse_address(str(pool["end"]), network)
        except KeyError as exc:
            raise BadRequest(
                "Invalid input: an allocation pool needs 'start' and 'end'.", "InvalidInput"
            ) from exc
        if start > end:
            raise BadRequest(
                f"Invalid allocation pool {start}-{end}: start is after end.",
                "InvalidAllocationPool",
            )
        if start == network.network_address or (
            network.version == 4 and end == network.broadcast_address
        ):
            raise BadRequest(
                f"Invalid allocation pool {start}-{end}: it includes the network"
                " or broadcast address.",
                "InvalidAllocationPool",
            )
        parsed.append((start, end))
    parsed.sort()
    for (_, end_a), (start_b, _) in zip(parsed, parsed[1:], strict=False):
        if start_b <= end_a:
            raise BadRequest("Found overlapping allocation pools.", "OverlappingAllocationPools")
    if gateway is not None:
        gw = ipaddress.ip_address(gateway)
        for start, end in parsed:
            if start <= gw <= end:
                raise BadRequest(
                    f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.",
                    "GatewayConflictWithAllocationPools",
                )
    return [{"start": str(s), "end": str(e)} for s, e in parsed]


def pool_addresses(pools: Iterable[dict[str, str]]) -> Iterator[IPAddress]:
    for pool in pools:
        current = ipaddress.ip_address(pool["start"])
        end = ipaddress.ip_address(pool["end"])
        while current <= end:
            yield current
            current += 1


def next_free(pools: list[dict[str, str]], taken: set[str], subnet_id: str) -> str:
    """The lowest free address of the pools (Neutron hands them out in order)."""
    for address in pool_addresses(pools):
        if str(address) not in taken:
            return str(address)
    raise Conflict(
        f"No more IP addresses available for subnet {subnet_id}.", "IpAddressGenerationFailure"
    )


def random_mac(rng: random.Random | None = None) -> str:
    rng = rng or random.SystemRandom()
    return MAC_PREFIX + "".join(f":{rng.randrange(256):02x}" for _ in range(3))


def normalize_mac(mac: str) -> str:
    parts = mac.lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts
    ):
        raise BadRequest(
            f"Invalid input for mac_address. Reason: '{mac}' is not a valid MAC address.",
            "InvalidInput",
        )
    if int(parts[0], 16) & 1:
        raise BadRequest(
            f"Invalid input for mac_address: {mac} is a multicast address.", "InvalidInput"
        )
    return ":".join(parts)
