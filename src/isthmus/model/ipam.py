"""Address management, pure: validate subnets and pick free addresses and MACs.

Isthmus allocates every fixed IP and MAC itself (global IPAM), so addresses stay
unique across all sites; the store's unique keys catch a race between two
allocations of the same address and the caller retries.
"""

from __future__ import annotations

import ipaddress
import random
import re
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
    # Every address here has the subnet's IP version (the API parses the gateway with it),
    # so comparing them as integers orders them exactly as the addresses themselves.
    if int(first) < int(gw):
        pools.append({"start": str(first), "end": str(gw - 1)})
    if int(gw) < int(last):
        pools.append({"start": str(gw + 1), "end": str(last)})
    if not (int(first) <= int(gw) <= int(last)):
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
        if int(start) > int(end):
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
        if int(start_b) <= int(end_a):
            raise BadRequest("Found overlapping allocation pools.", "OverlappingAllocationPools")
    if gateway is not None:
        gw = ipaddress.ip_address(gateway)
        for start, end in parsed:
            if int(start) <= int(gw) <= int(end):
                raise BadRequest(
                    f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.",
                    "GatewayConflictWithAllocationPools",
                )
    return [{"start": str(s), "end": str(e)} for s, e in parsed]


def pool_addresses(pools: Iterable[dict[str, str]]) -> Iterator[IPAddress]:
    for pool in pools:
        current = ipaddress.ip_address(pool["start"])
        end = ipaddress.ip_address(pool["end"])
        while int(current) <= int(end):
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


# The spellings Neutron accepts (netaddr's EUI-48 formats), case-insensitive: six groups
# of 1-2 hex digits (":" or "-"), three of 1-4 (":", "-" or "."), two of 5-6 (":" or "-"),
# or 11-12 bare hex digits. Nothing else, no surrounding whitespace.
_MAC_SPELLINGS = (
    (re.compile(r"([0-9a-f]{1,2})([:-])" + r"([0-9a-f]{1,2})\2" * 4 + r"([0-9a-f]{1,2})"), 2),
    (re.compile(r"([0-9a-f]{1,4})([:.-])([0-9a-f]{1,4})\2([0-9a-f]{1,4})"), 4),
    (re.compile(r"([0-9a-f]{5,6})([:-])([0-9a-f]{5,6})"), 6),
    (re.compile(r"([0-9a-f]{11,12})"), 12),
)


def normalize_mac(mac: Any) -> str:
    """A port MAC in Neutron's form (`fa:16:3e:0a:1b:2c`), or 400 in Neutron's words.

    Refused: anything not spelled as Neutron (netaddr) spells a MAC; the zero MAC and the
    broadcast MAC (Neutron's `INVALID_MAC_ADDRESSES`); and, stricter than Neutron, every
    other group (multicast) address, with the low bit of the first octet set: a port's
    MAC is a NIC's own unicast address (the kernel refuses a multicast one on the embedded
    data plane's interfaces, and a switch never learns it)."""
    digits = None
    if isinstance(mac, str):
        lowered = mac.lower()
        for pattern, width in _MAC_SPELLINGS:
            match = pattern.fullmatch(lowered)
            if match:
                groups = [g for g in match.groups() if g not in (":", "-", ".")]
                digits = "".join(g.zfill(width) for g in groups)
                break
    value = int(digits, 16) if digits else 0
    if not digits or value == 0 or (value >> 40) & 1:
        raise BadRequest(
            f"Invalid input for mac_address. Reason: '{mac}' is not a valid MAC address.",
            "HTTPBadRequest",
        )
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def filter_mac(value: str) -> str:
    """A MAC filter value in the stored spelling, or as given (lowercased) when it is no
    port MAC at all (it then matches nothing), as Neutron sanitizes filters."""
    try:
        return normalize_mac(value)
    except BadRequest:
        return value.lower()


def random_mac(rng: random.Random | None = None) -> str:
    """A fresh port MAC under OpenStack's prefix; a unicast address by construction
    (the prefix's first octet is even, and normalize_mac checks the whole of it)."""
    rng = rng or random.SystemRandom()
    return normalize_mac(MAC_PREFIX + "".join(f":{rng.randrange(256):02x}" for _ in range(3)))


# -- subnet pools (subnet_allocation): one address space over every site ------------------

# Neutron's bounds per IP version: (default min_prefixlen, longest prefix)
POOL_PREFIXLEN = {4: (8, 32), 6: (64, 128)}


def pool_prefixes(prefixes: Any) -> tuple[int, list[str]]:
    """A pool's prefixes as Neutron keeps them: (IP version, the compacted CIDRs).
    400 for an empty list, a bad CIDR, or IPv4 and IPv6 mixed."""
    if not isinstance(prefixes, list) or not prefixes:
        raise BadRequest("Empty subnet pool prefix list.", "EmptySubnetPoolPrefixList")
    networks: list[IPNetwork] = []
    for prefix in prefixes:
        try:
            if not isinstance(prefix, str) or "/" not in prefix:
                raise ValueError(prefix)
            networks.append(ipaddress.ip_network(prefix, strict=False))
        except ValueError:
            raise BadRequest(
                f"Invalid input for prefixes. Reason: '{prefix}' is not a valid IP subnet.",
                "HTTPBadRequest",
            ) from None
    versions = {n.version for n in networks}
    if len(versions) > 1:
        raise BadRequest(
            "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.", "PrefixVersionMismatch"
        )
    version = versions.pop()
    merged = ipaddress.collapse_addresses(networks)  # type: ignore[type-var]
    return version, [str(n) for n in sorted(merged)]


def _illegal_bounds(kind: str, value: int, base_kind: str, base: int) -> BadRequest:
    return BadRequest(
        f"Illegal prefix bounds: {kind}={value}, {base_kind}={base}.",
        "IllegalSubnetPoolPrefixBounds",
    )


def prefix_bounds(
    version: int, minimum: int | None, maximum: int | None, default: int | None
) -> tuple[int, int, int]:
    """(min, max, default) prefix lengths of a pool, Neutron's defaults filled in
    (min 8 / 64, max 32 / 128, default = min) and checked as Neutron does."""
    low = POOL_PREFIXLEN[version][0] if minimum is None else minimum
    longest = POOL_PREFIXLEN[version][1]
    high = longest if maximum is None else maximum
    chosen = low if default is None else default
    if low < 0:
        raise BadRequest(
            f"Prefix '{low}' not supported in IPv{version} pool.", "UnsupportedMinSubnetPoolPrefix"
        )
    if low > high:
        raise _illegal_bounds("min_prefixlen", low, "max_prefixlen", high)
    if high > longest:
        raise _illegal_bounds("max_prefixlen", high, "ip_version_max", longest)
    if chosen < low:
        raise _illegal_bounds("default_prefixlen", chosen, "min_prefixlen", low)
    if chosen > high:
        raise _illegal_bounds("default_prefixlen", chosen, "max_prefixlen", high)
    return low, high, chosen


def prefixes_overlap(first: Iterable[str], second: Iterable[str]) -> bool:
    """Whether any CIDR of `first` overlaps one of `second`."""
    a = [ipaddress.ip_network(c) for c in first]
    b = [ipaddress.ip_network(c) for c in second]
    return any(x.version == y.version and x.overlaps(y) for x in a for y in b)


def covers(outer: Iterable[str], inner: Iterable[str]) -> bool:
    """Whether every CIDR of `inner` lies inside one of `outer` (a pool's prefixes
    may only grow)."""
    nets = [ipaddress.ip_network(c) for c in outer]
    return all(
        any(n.version == i.version and i.subnet_of(n) for n in nets)  # type: ignore[arg-type]
        for i in (ipaddress.ip_network(c) for c in inner)
    )


def free_prefixes(prefixes: Iterable[str], used: Iterable[str]) -> list[IPNetwork]:
    """What of the pool's `prefixes` no `used` CIDR (its subnets, in every site)
    covers, smallest blocks first (Neutron's best fit)."""
    free: list[IPNetwork] = [ipaddress.ip_network(p) for p in prefixes]
    for cidr in (ipaddress.ip_network(u) for u in used):
        remaining: list[IPNetwork] = []
        for block in free:
            if block.version != cidr.version or not block.overlaps(cidr):
                remaining.append(block)
            elif cidr.subnet_of(block) and cidr != block:  # type: ignore[arg-type]
                remaining.extend(block.address_exclude(cidr))  # type: ignore[arg-type]
        free = remaining
    return sorted(free, key=lambda n: (-n.prefixlen, int(n.network_address)))


def allocate_prefix(
    prefixes: Iterable[str],
    used: Iterable[str],
    prefixlen: int,
    wanted: IPNetwork | None = None,
) -> IPNetwork:
    """A CIDR of `prefixlen` from the pool: `wanted` if it is free, else the first
    free one of the smallest block that holds it; 409 SubnetAllocationError when
    the pool has no room (Neutron's reasons)."""
    free = free_prefixes(prefixes, used)
    if wanted is not None:
        if any(wanted.version == b.version and wanted.subnet_of(b) for b in free):  # type: ignore[arg-type]
            return wanted
        raise Conflict(
            "Failed to allocate subnet: Cannot allocate requested subnet from the available"
            " set of prefixes.",
            "SubnetAllocationError",
        )
    for block in free:
        if prefixlen >= block.prefixlen:
            return ipaddress.ip_network(f"{block.network_address}/{prefixlen}")
    raise Conflict(
        f"Failed to allocate subnet: Insufficient prefix space to allocate subnet size"
        f" /{prefixlen}.",
        "SubnetAllocationError",
    )
