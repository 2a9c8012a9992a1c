"""The driver contract: what every kind of site (local, openstack, aws) offers.

A driver translates; it decides nothing. Placement, IPAM, segment ids and quotas
are decided above it and arrive in the specs below, fully resolved.

Contract of every driver (checked by tests/contract/ against each driver):
- `ensure(spec)` is idempotent. It first looks for the object carrying
  `spec.isthmus_id` (a tag, name prefix or metadata) and updates it towards the
  spec; only when none exists does it create one, tagged with that id. After it
  returns, the site holds exactly one object for that id, shaped like the spec,
  and the returned `Observed` describes it (its status may still be transient,
  e.g. server BUILD: call `observe` later).
- `delete(kind, isthmus_id)` removes the object tagged with that id. Deleting a
  missing object succeeds. After it returns the object is gone or going.
- `observe(kind, isthmus_id)` returns the object's current state, or None when
  the site holds no such object. It never changes anything.
- `inventory()` lists every object in the site that carries an Isthmus id.
- `foreign()` lists the objects of the kinds Isthmus manages that the site holds
  (for Isthmus' own account or project) and that carry no Isthmus id: made there
  outside Isthmus. It never changes anything, and Isthmus never touches them.
- `check()` reports health and capacity; it raises SiteUnavailable when the site
  cannot be reached.
- `retire()` is called once when the site is removed from Isthmus (not on an
  ordinary close or shutdown): it releases what Isthmus itself runs for the site
  (the embedded data plane's FRR and namespaces); nothing in the site's cloud is
  deleted. An embedded site is the exception: it exists only inside Isthmus, so
  its on-disk state goes too (a site added again under that name starts empty).
  Calling it again succeeds.
- Progress: while `ensure` copies data into the site (image data), it calls
  `sites.progress.report(bytes_done, bytes_total)` as bytes go: once at the start,
  then after each chunk, the last with bytes_done == bytes_total. Whoever called
  `ensure` may have installed a reporter (`sites.progress.reporting`); without one
  the calls do nothing, so `ensure(spec)` keeps its signature.
- Failures are raised only as `SiteUnavailable` (retry later, site down),
  `TemporaryError(delay)` (retry after delay) or `PermanentError` (this intent
  cannot be realised: the resource goes ERROR with the message). Any other
  exception from a site SDK is mapped to one of those at the driver boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class Spec:
    """What Isthmus wants in a site for one resource. Subclasses name the kind."""

    kind: ClassVar[str] = ""
    isthmus_id: str
    name: str


@dataclass(frozen=True)
class NetworkSpec(Spec):
    kind: ClassVar[str] = "network"
    mtu: int = 1450
    segmentation_id: int | None = None
    # the segment's route targets (fabric/interconnect.py), for sites joined by BGP VPN
    route_targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubnetSpec(Spec):
    kind: ClassVar[str] = "subnet"
    network_id: str = ""  # Isthmus id of the network (its site object must exist)
    cidr: str = ""
    ip_version: int = 4
    gateway_ip: str | None = None
    enable_dhcp: bool = True


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


@dataclass(frozen=True)
class SecurityGroupSpec(Spec):
    kind: ClassVar[str] = "security_group"
    rules: tuple[SecurityRule, ...] = ()
    # (group id, fixed IPs of that group's live ports) for each remote_group_id its
    # rules name: for sites that filter by address (the embedded data plane)
    remote_group_members: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class PortSpec(Spec):
    kind: ClassVar[str] = "port"
    network_id: str = ""  # Isthmus id
    mac_address: str = ""
    fixed_ips: tuple[FixedIp, ...] = ()
    security_group_ids: tuple[str, ...] = ()  # Isthmus ids
    admin_state_up: bool = True


@dataclass(frozen=True)
class ImageSpec(Spec):
    kind: ClassVar[str] = "image"
    disk_format: str = "raw"
    container_format: str = "bare"
    size: int = 0
    checksum: str = ""  # md5 hex, checked by the site after the copy
    data_path: str = ""  # where Isthmus keeps the image data


@dataclass(frozen=True)
class ServerSpec(Spec):
    kind: ClassVar[str] = "server"
    vcpus: int = 1
    ram_mb: int = 512
    disk_gb: int = 1
    flavor_name: str | None = None  # the Isthmus flavor's name (sites may map it by name)
    image_id: str | None = None  # Isthmus id; its site object must exist
    port_ids: tuple[str, ...] = ()  # Isthmus ids, in NIC order
    key_name: str | None = None
    public_key: str | None = None
    user_data: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    power_on: bool = True
    reboot_count: int = 0  # each increment asks for one more reboot


@dataclass(frozen=True)
class VolumeSpec(Spec):
    kind: ClassVar[str] = "volume"
    size_gb: int = 1
    volume_type: str | None = None
    snapshot_id: str | None = None  # Isthmus id of a snapshot to create from
    attached_server_id: str | None = None  # Isthmus id; None means detached
    device: str | None = None


@dataclass(frozen=True)
class SnapshotSpec(Spec):
    kind: ClassVar[str] = "snapshot"
    volume_id: str = ""  # Isthmus id


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


@dataclass(frozen=True)
class RouterSpec(Spec):
    """A distributed router: present in every site one of its networks is in, with
    the same interfaces (addresses and MACs) in each."""

    kind: ClassVar[str] = "router"
    interfaces: tuple[RouterInterface, ...] = ()
    external_gateway: RouterGateway | None = None
    admin_state_up: bool = True


@dataclass(frozen=True)
class FloatingIpSpec(Spec):
    """1:1 NAT of `floating_ip_address` to `fixed_ip_address`, done by the router in
    the site of the port's server."""

    kind: ClassVar[str] = "floating_ip"
    floating_ip_address: str = ""
    floating_network_id: str = ""  # Isthmus id of the external network
    router_id: str = ""  # Isthmus id; its site object must exist
    port_id: str = ""  # Isthmus id of the server's port
    fixed_ip_address: str = ""


@dataclass(frozen=True)
class Observed:
    """An object as the site reports it."""

    kind: str
    isthmus_id: str
    site_id: str
    status: str  # driver-neutral: BUILD ACTIVE SHUTOFF ERROR available in-use ...
    fault: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ForeignObject:
    """An object in a site that Isthmus did not make (it carries no Isthmus id)."""

    kind: str  # network, server, volume, ... (the Isthmus kind it would be)
    site_id: str
    name: str = ""


@dataclass(frozen=True)
class SiteReport:
    """Health and capacity as `check()` finds them."""

    health: str  # up | degraded
    message: str = ""
    capacity: dict[str, int] = field(default_factory=dict)  # vcpus, ram_mb, disk_gb
    usage: dict[str, int] = field(default_factory=dict)
    data_plane: str = "control-plane only"


class SiteDriver(Protocol):
    """One site. Construct with the site's name and config; see the module contract."""

    name: str

    def check(self) -> SiteReport:
        """Health and capacity; raises SiteUnavailable if the site is unreachable."""
        ...

    def ensure(self, spec: Spec) -> Observed:
        """Make exactly one object for spec.isthmus_id exist, shaped like spec."""
        ...

    def delete(self, kind: str, isthmus_id: str) -> None:
        """Remove the object for isthmus_id; a missing object is success."""
        ...

    def observe(self, kind: str, isthmus_id: str) -> Observed | None:
        """Current state of the object for isthmus_id, or None; no side effects."""
        ...

    def inventory(self) -> list[Observed]:
        """Every object in the site that carries an Isthmus id."""
        ...

    def foreign(self) -> list[ForeignObject]:
        """Every object of a kind Isthmus manages that carries no Isthmus id; no side
        effects; raises SiteUnavailable when the site cannot be reached."""
        ...

    def retire(self) -> None:
        """The site is being removed from Isthmus: release what Isthmus runs for it;
        nothing in the site's cloud is deleted. Idempotent."""
        ...

    def close(self) -> None:
        """Release connections and files; the site itself is left as it is."""
        ...
