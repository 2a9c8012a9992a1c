"""Specs: what Isthmus wants in a site for one resource, as frozen value objects.

A spec is what the engine hands a site driver (`SiteDriver.ensure(spec)`, the
contract in sites/base.py): everything decided above the driver (placement, IPAM,
segment ids, route targets) arrives in it, fully resolved. Specs are pure values:
no I/O, no store, no site.

Each spec is built from a stored intent by ONE function, its `from_intent`
classmethod, so the mapping from a resource's `spec` JSON (and its `parent_id`,
`device_id` columns) to driver fields, with its defaults, is written down once.
`intent` is anything shaped like an intent row (`Intent` below; store/tables.py's
`Resource` is one). What a spec needs from other rows (a server's ports, a group's
rules, a router's interfaces) is read by the engine (engine/reconcilers.py,
engine/l3.py) and passed in.

A server's size (vCPUs, RAM, disk) is read by `ServerSize.from_intent`, which both
`ServerSpec.from_intent` and placement (store/placement.py `server_need`: what a
server claims of its site) use, so a site is asked for what placement claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from isthmus.model import kinds


class Intent(Protocol):
    """The columns of a stored intent a spec is built from (store/tables.Resource)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def parent_id(self) -> str | None: ...

    @property
    def device_id(self) -> str | None: ...

    @property
    def spec(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Spec:
    """What Isthmus wants in a site for one resource. Subclasses name the kind."""

    kind: ClassVar[str] = ""
    isthmus_id: str
    name: str


@dataclass(frozen=True)
class NetworkSpec(Spec):
    kind: ClassVar[str] = kinds.NETWORK
    mtu: int = 1450
    segmentation_id: int | None = None
    # the segment's route targets (fabric/interconnect.py), for sites joined by BGP VPN
    route_targets: tuple[str, ...] = ()

    @classmethod
    def from_intent(cls, network: Intent, route_targets: Iterable[str] = ()) -> NetworkSpec:
        """`route_targets`: those of the network's segment (fabric/interconnect.py)."""
        return cls(
            isthmus_id=network.id,
            name=network.name,
            mtu=int(network.spec.get("mtu", 1450)),
            segmentation_id=network.spec.get("segmentation_id"),
            route_targets=tuple(route_targets),
        )


@dataclass(frozen=True)
class SubnetSpec(Spec):
    kind: ClassVar[str] = kinds.SUBNET
    network_id: str = ""  # Isthmus id of the network (its site object must exist)
    cidr: str = ""
    ip_version: int = 4
    gateway_ip: str | None = None
    enable_dhcp: bool = True

    @classmethod
    def from_intent(cls, subnet: Intent) -> SubnetSpec:
        return cls(
            isthmus_id=subnet.id,
            name=subnet.name,
            network_id=subnet.parent_id or "",
            cidr=subnet.spec["cidr"],
            ip_version=int(subnet.spec.get("ip_version", 4)),
            gateway_ip=subnet.spec.get("gateway_ip"),
            enable_dhcp=bool(subnet.spec.get("enable_dhcp", True)),
        )


@dataclass(frozen=True)
class FixedIp:
    subnet_id: str  # Isthmus id
    ip_address: str


@dataclass(frozen=True)
class SecurityRule:
    direction: str  # ingress | egress
    ethertype: str = "IPv4"
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None  # Isthmus id

    @classmethod
    def from_intent(cls, rule: Intent) -> SecurityRule:
        """From a `security_group_rule` intent."""
        s = rule.spec
        return cls(
            direction=s["direction"],
            ethertype=s.get("ethertype", "IPv4"),
            protocol=s.get("protocol"),
            port_range_min=s.get("port_range_min"),
            port_range_max=s.get("port_range_max"),
            remote_ip_prefix=s.get("remote_ip_prefix"),
            remote_group_id=s.get("remote_group_id"),
        )


@dataclass(frozen=True)
class SecurityGroupSpec(Spec):
    kind: ClassVar[str] = kinds.SECURITY_GROUP
    rules: tuple[SecurityRule, ...] = ()
    # (group id, fixed IPs of that group's live ports) for each remote_group_id its
    # rules name: for sites that filter by address (the embedded data plane)
    remote_group_members: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_intent(
        cls,
        group: Intent,
        rules: Sequence[Intent],
        remote_group_members: tuple[tuple[str, tuple[str, ...]], ...] = (),
    ) -> SecurityGroupSpec:
        """`rules`: the group's live rule intents in order; `remote_group_members`:
        see the field (read from the store by the engine)."""
        return cls(
            isthmus_id=group.id,
            name=group.name,
            rules=tuple(SecurityRule.from_intent(rule) for rule in rules),
            remote_group_members=remote_group_members,
        )

    @staticmethod
    def remote_groups(rules: Iterable[Intent]) -> list[str]:
        """The group ids `rules` name as remote group, sorted, each once."""
        return sorted({r.spec["remote_group_id"] for r in rules if r.spec.get("remote_group_id")})


@dataclass(frozen=True)
class PortSpec(Spec):
    kind: ClassVar[str] = kinds.PORT
    network_id: str = ""  # Isthmus id
    mac_address: str = ""
    fixed_ips: tuple[FixedIp, ...] = ()
    security_group_ids: tuple[str, ...] = ()  # Isthmus ids
    admin_state_up: bool = True
    port_security_enabled: bool = True
    # (ip_address or CIDR, mac_address) the port may also send from (allowed-address-pairs)
    allowed_address_pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_intent(cls, port: Intent) -> PortSpec:
        s = port.spec
        return cls(
            isthmus_id=port.id,
            name=port.name,
            network_id=port.parent_id or "",
            mac_address=s.get("mac_address", ""),
            fixed_ips=tuple(
                FixedIp(f["subnet_id"], f["ip_address"]) for f in s.get("fixed_ips", [])
            ),
            security_group_ids=tuple(s.get("security_groups", [])),
            admin_state_up=bool(s.get("admin_state_up", True)),
            port_security_enabled=bool(s.get("port_security_enabled", True)),
            allowed_address_pairs=tuple(
                (p["ip_address"], p["mac_address"]) for p in s.get("allowed_address_pairs") or []
            ),
        )


@dataclass(frozen=True)
class ImageSpec(Spec):
    kind: ClassVar[str] = kinds.IMAGE
    disk_format: str = "raw"
    container_format: str = "bare"
    size: int = 0
    checksum: str = ""  # md5 hex, checked by the site after the copy
    data_path: str = ""  # where Isthmus keeps the image data
    # Nova's createImage: the Isthmus id of a server in this site whose disk the site
    # makes this image of; the site writes the bytes to `data_path` (sites/base.py)
    snapshot_of: str | None = None

    @classmethod
    def from_intent(cls, image: Intent) -> ImageSpec:
        """While an image is being made of a server (`spec["snapshot"]`), it names
        that server."""
        s = image.spec
        return cls(
            isthmus_id=image.id,
            name=image.name,
            disk_format=s.get("disk_format") or "raw",
            container_format=s.get("container_format") or "bare",
            size=int(s.get("size") or 0),
            checksum=s.get("checksum") or "",
            data_path=s.get("data_path", ""),
            snapshot_of=(s.get("snapshot") or {}).get("server_id"),
        )


@dataclass(frozen=True)
class ServerSize:
    """What one server takes of its site: the `vcpus`, `ram_mb`, `disk_gb` keys of
    a server's intent (copied from its flavor at create)."""

    vcpus: int = 1
    ram_mb: int = 512
    disk_gb: int = 1

    @classmethod
    def from_flavor(cls, flavor: Mapping[str, Any]) -> ServerSize:
        """From a flavor's spec (Nova's `vcpus`, `ram`, `disk`; a missing one is 0)."""
        return cls(
            vcpus=int(flavor.get("vcpus", 0)),
            ram_mb=int(flavor.get("ram", 0)),
            disk_gb=int(flavor.get("disk", 0)),
        )

    @classmethod
    def from_intent(cls, spec: Mapping[str, Any]) -> ServerSize:
        """From a server intent's spec JSON; a missing key takes the default above
        (every server written by the API carries all three)."""
        default = cls()
        return cls(
            vcpus=int(spec.get("vcpus", default.vcpus)),
            ram_mb=int(spec.get("ram_mb", default.ram_mb)),
            disk_gb=int(spec.get("disk_gb", default.disk_gb)),
        )

    def as_spec(self) -> dict[str, int]:
        """The keys a server's intent stores (read back by `from_intent`)."""
        return {"vcpus": self.vcpus, "ram_mb": self.ram_mb, "disk_gb": self.disk_gb}

    def need(self) -> dict[str, int]:
        """What placement claims for one server (model/placement.py dimensions)."""
        return {**self.as_spec(), "servers": 1}


@dataclass(frozen=True)
class ServerSpec(Spec):
    kind: ClassVar[str] = kinds.SERVER
    vcpus: int = 1
    ram_mb: int = 512
    disk_gb: int = 1
    flavor_name: str | None = None  # the Isthmus flavor's name (sites may map it by name)
    image_id: str | None = None  # Isthmus id; its site object must exist
    root_volume_id: str | None = None  # Isthmus id of the volume it boots from (no image)
    port_ids: tuple[str, ...] = ()  # Isthmus ids, in NIC order
    key_name: str | None = None
    public_key: str | None = None
    user_data: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    power_on: bool = True
    reboot_count: int = 0  # each increment asks for one more reboot
    # while powered on: active, paused, suspended or rescued (the site shows ACTIVE,
    # PAUSED, SUSPENDED, RESCUE once it applied it)
    run_state: str = "active"
    rebuild_count: int = 0  # each increment asks for one more rebuild (from image_id)

    @classmethod
    def from_intent(cls, server: Intent, port_ids: Iterable[str] = ()) -> ServerSpec:
        """`port_ids`: the server's live ports, in NIC order (see `nic_order`)."""
        s = server.spec
        size = ServerSize.from_intent(s)
        return cls(
            isthmus_id=server.id,
            name=server.name,
            vcpus=size.vcpus,
            ram_mb=size.ram_mb,
            disk_gb=size.disk_gb,
            flavor_name=(s.get("flavor") or {}).get("name"),
            image_id=s.get("image_id"),
            root_volume_id=s.get("root_volume_id"),
            port_ids=tuple(port_ids),
            key_name=s.get("key_name"),
            public_key=s.get("public_key"),
            user_data=s.get("user_data"),
            metadata=tuple(sorted((s.get("metadata") or {}).items())),
            power_on=bool(s.get("power_on", True)),
            reboot_count=int(s.get("reboot_count", 0)),
            run_state=str(s.get("run_state") or "active"),
            rebuild_count=int(s.get("rebuild_count", 0)),
        )

    @staticmethod
    def nic_order(ports: Iterable[Intent]) -> list[str]:
        """Port ids in NIC order: by their `nic_index`, then id."""
        return [p.id for p in sorted(ports, key=lambda p: (p.spec.get("nic_index", 0), p.id))]


@dataclass(frozen=True)
class VolumeSpec(Spec):
    kind: ClassVar[str] = kinds.VOLUME
    size_gb: int = 1
    volume_type: str | None = None
    snapshot_id: str | None = None  # Isthmus id of a snapshot to create from
    source_volid: str | None = None  # Isthmus id of a volume to clone (same site)
    image_id: str | None = None  # Isthmus id of an image to write into it (in the site)
    attached_server_id: str | None = None  # Isthmus id; None means detached
    device: str | None = None
    # Isthmus id of the server that boots from it: the site attaches it when it makes
    # that server (ServerSpec.root_volume_id) and lets it go when it deletes it;
    # drivers never attach or detach it themselves; it is in-use while that server
    # is in the site
    root_of: str | None = None

    @classmethod
    def from_intent(cls, volume: Intent, root_of: str | None = None) -> VolumeSpec:
        """The server a volume is attached to is its `device_id`, unless it is the
        server `root_of` (engine/reconcilers.py says whether the volume still boots
        one); a volume is made from at most one of a snapshot, a source volume or
        an image."""
        s = volume.spec
        attached = None if root_of and volume.device_id in (None, root_of) else volume.device_id
        return cls(
            isthmus_id=volume.id,
            name=volume.name,
            size_gb=int(s.get("size", 1)),
            volume_type=s.get("volume_type"),
            snapshot_id=s.get("snapshot_id"),
            source_volid=s.get("source_volid"),
            image_id=s.get("image_id"),
            attached_server_id=attached,
            device=s.get("device"),
            root_of=root_of,
        )


@dataclass(frozen=True)
class SnapshotSpec(Spec):
    kind: ClassVar[str] = kinds.SNAPSHOT
    volume_id: str = ""  # Isthmus id

    @classmethod
    def from_intent(cls, snapshot: Intent) -> SnapshotSpec:
        """A snapshot's volume is its `parent_id`."""
        return cls(isthmus_id=snapshot.id, name=snapshot.name, volume_id=snapshot.parent_id or "")


@dataclass(frozen=True)
class RouterInterface:
    """One address of a router on a subnet (a port may carry several)."""

    port_id: str  # Isthmus id of the `network:router_interface` port
    network_id: str  # Isthmus id (its site object must exist)
    subnet_id: str  # Isthmus id
    cidr: str
    ip_address: str  # usually the subnet's gateway IP
    mac_address: str  # the port's MAC: the same in every site the router is in
    segmentation_id: int | None = None  # the network's VNI

    @classmethod
    def from_intent(
        cls, port: Intent, network: Intent, subnet: Intent, ip_address: str
    ) -> RouterInterface:
        """The interface `port` gives its router on `subnet` (of `network`)."""
        return cls(
            port_id=port.id,
            network_id=network.id,
            subnet_id=subnet.id,
            cidr=subnet.spec["cidr"],
            ip_address=ip_address,
            mac_address=port.spec.get("mac_address", ""),
            segmentation_id=network.spec.get("segmentation_id"),
        )


@dataclass(frozen=True)
class RouterGateway:
    """A router's leg on an external network (`router:external`)."""

    network_id: str  # Isthmus id of the external network
    port_id: str  # Isthmus id of the `network:router_gateway` port
    cidr: str
    ip_address: str
    mac_address: str
    gateway_ip: str | None = None  # the external subnet's gateway: the default route
    enable_snat: bool = True

    @classmethod
    def from_intent(
        cls, router: Intent, port: Intent, subnet: Intent, ip_address: str
    ) -> RouterGateway:
        """The leg the router's `gateway` (its spec) gives it through `port` on the
        external `subnet`."""
        gateway = router.spec.get("gateway") or {}
        return cls(
            network_id=gateway["network_id"],
            port_id=port.id,
            cidr=subnet.spec["cidr"],
            ip_address=ip_address,
            mac_address=port.spec.get("mac_address", ""),
            gateway_ip=subnet.spec.get("gateway_ip"),
            enable_snat=bool(gateway.get("enable_snat", True)),
        )


@dataclass(frozen=True)
class RouterRoute:
    """One extra route of a router (extraroute): `destination` CIDR via `nexthop`,
    an address on one of the router's subnets."""

    destination: str
    nexthop: str


@dataclass(frozen=True)
class RouterSpec(Spec):
    """A distributed router: present in every site one of its networks is in, with
    the same interfaces (addresses and MACs) and extra routes in each."""

    kind: ClassVar[str] = kinds.ROUTER
    interfaces: tuple[RouterInterface, ...] = ()
    external_gateway: RouterGateway | None = None
    admin_state_up: bool = True
    routes: tuple[RouterRoute, ...] = ()

    @classmethod
    def from_intent(
        cls,
        router: Intent,
        interfaces: Iterable[RouterInterface] = (),
        external_gateway: RouterGateway | None = None,
    ) -> RouterSpec:
        """`interfaces` and `external_gateway`: read from its ports (engine/l3.py)."""
        return cls(
            isthmus_id=router.id,
            name=router.name,
            interfaces=tuple(interfaces),
            external_gateway=external_gateway,
            admin_state_up=bool(router.spec.get("admin_state_up", True)),
            routes=tuple(
                RouterRoute(r["destination"], r["nexthop"]) for r in router.spec.get("routes") or []
            ),
        )


@dataclass(frozen=True)
class FloatingIpSpec(Spec):
    """1:1 NAT of `floating_ip_address` to `fixed_ip_address`, done by the router in
    the site of the port's server."""

    kind: ClassVar[str] = kinds.FLOATING_IP
    floating_ip_address: str = ""
    floating_network_id: str = ""  # Isthmus id of the external network
    router_id: str = ""  # Isthmus id; its site object must exist
    port_id: str = ""  # Isthmus id of the server's port
    fixed_ip_address: str = ""

    @classmethod
    def from_intent(cls, fip: Intent) -> FloatingIpSpec:
        """Only for an associated floating IP (its spec names a port and a router)."""
        s = fip.spec
        return cls(
            isthmus_id=fip.id,
            name=fip.name,
            floating_ip_address=s.get("floating_ip_address", ""),
            floating_network_id=s.get("floating_network_id", ""),
            router_id=s.get("router_id") or "",
            port_id=s.get("port_id") or "",
            fixed_ip_address=s.get("fixed_ip_address") or "",
        )


SPEC_TYPES: Mapping[str, type[Spec]] = {
    spec_type.kind: spec_type
    for spec_type in (
        NetworkSpec,
        SubnetSpec,
        SecurityGroupSpec,
        PortSpec,
        ImageSpec,
        ServerSpec,
        VolumeSpec,
        SnapshotSpec,
        RouterSpec,
        FloatingIpSpec,
    )
}
"""The spec type of each kind a site holds (see kinds.SITE_KINDS)."""
