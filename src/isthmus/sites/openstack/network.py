"""Neutron kinds: network, subnet, security group (with its rules), port.

- network: MTU as the spec says when the site has `net-mtu-writable`; the
  segmentation id is the site's own business (the fabric joins sites later).
- subnet: same CIDR and gateway as Isthmus chose. Isthmus sets every fixed IP
  explicitly, so the site's allocation pool is ONE address, the last usable one
  of the CIDR: Neutron wants a pool, and whatever the site hands out by itself
  (a DHCP port) then takes an address the global IPAM gives out last.
- security group: the site's rules are made equal to the spec's (extra ones,
  including Neutron's default egress rules, are deleted; missing ones added).
  A rule's remote group maps to the site's group of that Isthmus id; a remote
  group absent from the site has no member there, so that rule is left out
  (listed in `details["skipped_rules"]`) until the group comes.
- port: the MAC and fixed IPs Isthmus chose, security groups mapped to the
  site's ids.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from isthmus.model.specs import NetworkSpec, PortSpec, SecurityGroupSpec, SubnetSpec
from isthmus.sites.base import Observed
from isthmus.sites.openstack.common import Kind, SpecT, field, site_name, tag_of

if TYPE_CHECKING:
    from openstack.connection import Connection

PROTOCOL_NAMES = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "icmpv6": "ipv6-icmp"}
ANY_PREFIXES = ("0.0.0.0/0", "::/0")
RuleKey = tuple[str, str, str | None, int | None, int | None, str | None, str | None]


class NeutronKind(Kind[SpecT]):
    """Neutron objects: listed per project, tagged after create when the site can."""

    def project_filter(self, conn: Connection) -> dict[str, Any]:
        return {"project_id": conn.current_project_id}

    def extensions(self) -> set[str]:
        def load() -> set[str]:
            with self.errors("list network extensions"):
                return {ext.alias for ext in self.conn.network.extensions()}

        return set(self.site.cached("network-extensions", load, seconds=600))

    def tag(self, obj: Any, isthmus_id: str) -> None:
        """Add the `isthmus_id=<id>` tag if the site knows tags and it is missing."""
        tag = tag_of(isthmus_id)
        tags = list(field(obj, "tags", []) or [])
        if tag in tags or "standard-attr-tag" not in self.extensions():
            return
        with self.errors("tag"):
            self.conn.network.set_tags(obj, [*tags, tag])


class Networks(NeutronKind[NetworkSpec]):
    kind = "network"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        query = self.project_filter(conn) | ({"name": name} if name else {})
        return conn.network.networks(**query)

    def status(self, obj: Any) -> str:
        return str(field(obj, "status", "ACTIVE"))

    def ensure(self, spec: NetworkSpec) -> Observed:
        conn = self.conn
        obj = self.find(spec.isthmus_id)
        mtu_writable = "net-mtu-writable" in self.extensions()
        if obj is None:
            body: dict[str, Any] = {"name": site_name(spec.isthmus_id), "description": spec.name}
            if mtu_writable:
                body["mtu"] = spec.mtu
            with self.errors("create", create=True):
                obj = conn.network.create_network(**body)
        else:
            changes: dict[str, Any] = {}
            if field(obj, "description", "") != spec.name:
                changes["description"] = spec.name
            if mtu_writable and field(obj, "mtu") not in (None, spec.mtu):
                changes["mtu"] = spec.mtu
            if changes:
                with self.errors("update"):
                    obj = conn.network.update_network(obj, **changes)
        self.tag(obj, spec.isthmus_id)
        return self.observed(obj, spec.isthmus_id)

    def remove(self, conn: Connection, obj: Any) -> None:
        conn.network.delete_network(obj, ignore_missing=True)


def single_address_pool(cidr: str, gateway: str | None) -> list[dict[str, str]]:
    """The one-address allocation pool of a site subnet: its last usable address
    (the one before that when it is the gateway)."""
    network = ipaddress.ip_network(cidr, strict=False)
    last = network.broadcast_address - (1 if network.version == 4 else 0)
    if gateway is not None and str(last) == gateway:
        last -= 1
    return [{"start": str(last), "end": str(last)}]


class Subnets(NeutronKind[SubnetSpec]):
    kind = "subnet"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        query = self.project_filter(conn) | ({"name": name} if name else {})
        return conn.network.subnets(**query)

    def status(self, obj: Any) -> str:
        return "ACTIVE"

    def ensure(self, spec: SubnetSpec) -> Observed:
        conn = self.conn
        obj = self.find(spec.isthmus_id)
        if obj is None:
            network = self.site.kinds["network"].require(
                spec.network_id, f"subnet {spec.isthmus_id}"
            )
            with self.errors("create", create=True):
                obj = conn.network.create_subnet(
                    name=site_name(spec.isthmus_id),
                    description=spec.name,
                    network_id=network.id,
                    cidr=spec.cidr,
                    ip_version=spec.ip_version,
                    gateway_ip=spec.gateway_ip,
                    is_dhcp_enabled=spec.enable_dhcp,
                    allocation_pools=single_address_pool(spec.cidr, spec.gateway_ip),
                )
        else:
            changes: dict[str, Any] = {}
            if field(obj, "description", "") != spec.name:
                changes["description"] = spec.name
            if field(obj, "gateway_ip") != spec.gateway_ip:
                changes["gateway_ip"] = spec.gateway_ip
            if bool(field(obj, "is_dhcp_enabled", True)) != spec.enable_dhcp:
                changes["is_dhcp_enabled"] = spec.enable_dhcp
            if changes:
                with self.errors("update"):
                    obj = conn.network.update_subnet(obj, **changes)
        self.tag(obj, spec.isthmus_id)
        return self.observed(obj, spec.isthmus_id)

    def remove(self, conn: Connection, obj: Any) -> None:
        conn.network.delete_subnet(obj, ignore_missing=True)


def _protocol(value: Any, ethertype: str) -> str | None:
    if value in (None, "", "any", "0"):
        return None
    name = PROTOCOL_NAMES.get(str(value).lower(), str(value).lower())
    if ethertype == "IPv6" and name == "icmp":
        return "ipv6-icmp"
    return name


def rule_key(rule: Any, remote_group: str | None) -> RuleKey:
    """What makes two rules the same, whatever spelling the site returns."""
    # SDK rules call it ether_type, Isthmus's SecurityRule ethertype
    ethertype = str(field(rule, "ether_type") or field(rule, "ethertype", "IPv4"))
    protocol = _protocol(field(rule, "protocol"), ethertype)
    low, high = field(rule, "port_range_min"), field(rule, "port_range_max")
    prefix = field(rule, "remote_ip_prefix")
    return (
        str(field(rule, "direction")),
        ethertype,
        protocol,
        None if protocol is None or low is None else int(low),
        None if protocol is None or high is None else int(high),
        None if prefix in ANY_PREFIXES else prefix,
        remote_group,
    )


class SecurityGroups(NeutronKind[SecurityGroupSpec]):
    kind = "security_group"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        query = self.project_filter(conn) | ({"name": name} if name else {})
        return conn.network.security_groups(**query)

    def status(self, obj: Any) -> str:
        return "ACTIVE"

    def ensure(self, spec: SecurityGroupSpec) -> Observed:
        conn = self.conn
        obj = self.find(spec.isthmus_id)
        if obj is None:
            with self.errors("create", create=True):
                obj = conn.network.create_security_group(
                    name=site_name(spec.isthmus_id), description=spec.name
                )
        elif field(obj, "description", "") != spec.name:
            with self.errors("update"):
                obj = conn.network.update_security_group(obj, description=spec.name)
        skipped = self._sync_rules(conn, obj, spec)
        self.tag(obj, spec.isthmus_id)
        observed = self.observed(obj, spec.isthmus_id)
        if skipped:
            observed.details["skipped_rules"] = skipped
        return observed

    def _sync_rules(self, conn: Connection, obj: Any, spec: SecurityGroupSpec) -> list[str]:
        """Make the site group's rules those of the spec; the rules left out."""
        groups: dict[str, str | None] = {spec.isthmus_id: obj.id}
        wanted: dict[RuleKey, Any] = {}
        skipped: list[str] = []
        for rule in spec.rules:
            remote = None
            if rule.remote_group_id:
                if rule.remote_group_id not in groups:
                    found = self.find(rule.remote_group_id)
                    groups[rule.remote_group_id] = found.id if found is not None else None
                remote = groups[rule.remote_group_id]
                if remote is None:
                    skipped.append(
                        f"{rule.direction} {rule.protocol or 'any'} from group"
                        f" {rule.remote_group_id} (not in site {self.site.name})"
                    )
                    continue
            wanted.setdefault(rule_key(rule, remote), rule)
        with self.errors("list rules"):
            present = list(conn.network.security_group_rules(security_group_id=obj.id))
        have: set[RuleKey] = set()
        for existing in present:
            key = rule_key(existing, field(existing, "remote_group_id"))
            if key in wanted and key not in have:
                have.add(key)
                continue
            with self.errors("delete rule"):
                conn.network.delete_security_group_rule(existing, ignore_missing=True)
        for key, rule in wanted.items():
            if key in have:
                continue
            body: dict[str, Any] = {
                "security_group_id": obj.id,
                "direction": rule.direction,
                "ether_type": rule.ethertype,
            }
            optional = {
                "protocol": rule.protocol,
                "port_range_min": rule.port_range_min,
                "port_range_max": rule.port_range_max,
                "remote_ip_prefix": rule.remote_ip_prefix,
                "remote_group_id": key[6],
            }
            body.update({k: v for k, v in optional.items() if v is not None})
            with self.errors("create rule", create=True):
                conn.network.create_security_group_rule(**body)
        return skipped

    def remove(self, conn: Connection, obj: Any) -> None:
        conn.network.delete_security_group(obj, ignore_missing=True)


class Ports(NeutronKind[PortSpec]):
    kind = "port"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        query = self.project_filter(conn) | ({"name": name} if name else {})
        return conn.network.ports(**query)

    def details(self, obj: Any) -> dict[str, Any]:
        return {
            "mac_address": field(obj, "mac_address"),
            "fixed_ips": [
                {"subnet_id": f.get("subnet_id"), "ip_address": f.get("ip_address")}
                for f in field(obj, "fixed_ips", []) or []
            ],
            "device_id": field(obj, "device_id") or None,
        }

    def ensure(self, spec: PortSpec) -> Observed:
        conn = self.conn
        for_what = f"port {spec.isthmus_id}"
        network = self.site.kinds["network"].require(spec.network_id, for_what)
        subnets = self.site.kinds["subnet"]
        fixed_ips = [
            {"subnet_id": subnets.require(f.subnet_id, for_what).id, "ip_address": f.ip_address}
            for f in spec.fixed_ips
        ]
        groups = self.site.kinds["security_group"]
        group_ids = [groups.require(g, for_what).id for g in spec.security_group_ids]
        pairs = [{"ip_address": ip, "mac_address": mac} for ip, mac in spec.allowed_address_pairs]
        obj = self.find(spec.isthmus_id)
        if obj is None:
            body: dict[str, Any] = {
                "name": site_name(spec.isthmus_id),
                "description": spec.name,
                "network_id": network.id,
                "fixed_ips": fixed_ips,
                "security_group_ids": group_ids,
                "is_admin_state_up": spec.admin_state_up,
            }
            if spec.mac_address:
                body["mac_address"] = spec.mac_address
            if not spec.port_security_enabled:
                body["is_port_security_enabled"] = False
            if pairs:
                body["allowed_address_pairs"] = pairs
            with self.errors("create", create=True):
                obj = conn.network.create_port(**body)
        else:
            changes: dict[str, Any] = {}
            if field(obj, "description", "") != spec.name:
                changes["description"] = spec.name
            current = {(f.get("subnet_id"), f.get("ip_address")) for f in obj.fixed_ips or []}
            if current != {(f["subnet_id"], f["ip_address"]) for f in fixed_ips}:
                changes["fixed_ips"] = fixed_ips
            if set(field(obj, "security_group_ids", []) or []) != set(group_ids):
                changes["security_group_ids"] = group_ids
            if bool(field(obj, "is_admin_state_up", True)) != spec.admin_state_up:
                changes["is_admin_state_up"] = spec.admin_state_up
            if spec.mac_address and str(field(obj, "mac_address", "")).lower() != (
                spec.mac_address.lower()
            ):
                changes["mac_address"] = spec.mac_address
            if bool(field(obj, "is_port_security_enabled", True)) != spec.port_security_enabled:
                changes["is_port_security_enabled"] = spec.port_security_enabled
            have_pairs = {
                (str(p.get("ip_address")), str(p.get("mac_address", "")).lower())
                for p in field(obj, "allowed_address_pairs", []) or []
            }
            if have_pairs != {(ip, mac.lower()) for ip, mac in spec.allowed_address_pairs}:
                changes["allowed_address_pairs"] = pairs
            if changes:
                with self.errors("update"):
                    obj = conn.network.update_port(obj, **changes)
        self.tag(obj, spec.isthmus_id)
        return self.observed(obj, spec.isthmus_id)

    def remove(self, conn: Connection, obj: Any) -> None:
        conn.network.delete_port(obj, ignore_missing=True)
