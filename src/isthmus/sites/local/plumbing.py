"""The embedded site's kernel data plane, when the machine can run it.

`SitePlumbing` turns the local driver's objects (from its state) into calls on the
shared `EmbeddedFabric` (fabric/dataplane.py): a network present in the site is a
bridge + VXLAN device in the site's gateway namespace, a server is a namespace with
one veth per port, and its ports' security groups are its nftables ruleset. A router
is a namespace with a leg in each of its networks' bridges (fabric/routing.py), and
the floating IPs of its servers in this site are NAT rules in it.

It is on when the site config says `data_plane: true` (the service config
`fabric: embedded` sets that for every embedded site) and the machine can run it
(root, FRR, nft, nsenter, pyroute2: fabric/capability.py); otherwise the driver
stays control-plane only and says why. All sites of one data dir share one fabric,
kept in `<data-dir>/sites/_fabric` (or the site config's `fabric_dir`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from isthmus.errors import PermanentError, TemporaryError
from isthmus.fabric import capability
from isthmus.fabric.dataplane import NETNS_DIR, EmbeddedFabric, PortPlumbing
from isthmus.fabric.routing import ExternalLeg, FloatingNat, RouterLeg, Routers
from isthmus.fabric.security import render_ruleset
from isthmus.model.specs import SecurityGroupSpec, SecurityRule
from isthmus.sites.local.state import SiteObject, SiteState

FABRIC_DIR_NAME = "_fabric"  # site names start with a letter or digit: no clash


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def fabric_directory(site_directory: Path, config: dict[str, Any]) -> Path:
    return Path(config.get("fabric_dir") or site_directory.parent / FABRIC_DIR_NAME)


def data_plane_status(config: dict[str, Any]) -> tuple[bool, str]:
    """(on, the `data_plane` text `check()` reports)."""
    if not _truthy(config.get("data_plane", False)):
        return False, "control-plane only"
    missing = capability.missing()
    if missing:
        return False, f"control-plane only: {missing}"[:64]
    return True, capability.DATA_PLANE


def group_spec(body: dict[str, Any]) -> SecurityGroupSpec:
    """A SecurityGroupSpec back from its stored (asdict) form."""
    return SecurityGroupSpec(
        isthmus_id=body["isthmus_id"],
        name=body.get("name", ""),
        rules=tuple(SecurityRule(**rule) for rule in body.get("rules", [])),
        remote_group_members=tuple(
            (gid, tuple(ips)) for gid, ips in body.get("remote_group_members", [])
        ),
    )


class SitePlumbing:
    """The kernel objects of one embedded site."""

    def __init__(self, site: str, state: SiteState, fabric: EmbeddedFabric) -> None:
        self.site = site
        self.state = state
        self.fabric = fabric
        self.routers = Routers(fabric)

    def server_namespace(self, server_id: str) -> str:
        return self.fabric.server_namespace(server_id)

    def healthy(self) -> str:
        """'' when the kernel holds what the site's objects need, else what is
        missing: the gateway (its namespace and FRR) while the site holds networks,
        or the namespace of a server or router the site holds."""
        if self.state.list("network") and not self.fabric.site_running(self.site):
            return f"the FRR gateway of site {self.site} is not running"
        gone = [
            obj.tag
            for obj in self.state.list()
            if obj.tag
            and obj.kind in ("server", "router")
            and not (NETNS_DIR / self._namespace_of(obj)).exists()
        ]
        if gone:
            return f"{len(gone)} server/router namespace(s) of site {self.site} are gone"
        return ""

    def _namespace_of(self, obj: SiteObject) -> str:
        if obj.kind == "router":
            return self.routers.namespace(self.site, obj.tag)
        return self.server_namespace(obj.tag)

    def rebuild(self) -> list[str]:
        """Plumb again, from the site's own state, everything its objects need in the
        kernel (after a teardown, a reboot or a namespace removed by hand): networks
        (gateway + FRR + segments), then servers (their ports, with their security
        groups' rules), then routers (with the NAT of their floating IPs). Every step
        looks before it creates, so calling it on a running data plane changes
        nothing. Objects made outside Isthmus (no tag) are left alone. The objects
        that could not be plumbed, each with the reason ([] when all were)."""
        failed: list[str] = []
        for kind, plumb in (
            ("network", self.network_present),
            ("server", self.server_present),
            ("router", self.router_present),
        ):
            for obj in self.state.list(kind):
                current = self.state.find(kind, obj.tag) if obj.tag else None
                if current is None:  # foreign, or removed meanwhile
                    continue
                try:
                    plumb(current.spec)
                except (TemporaryError, PermanentError) as exc:
                    failed.append(f"{kind} {obj.tag}: {exc}")
        return failed

    def retire(self) -> None:
        """The site leaves Isthmus: the namespaces of its servers and routers, its
        gateway's FRR and namespace go (EmbeddedFabric.remove_site), and the other
        gateways stop peering with it. The site's own state is left as it is."""
        for server in self.state.list("server"):
            if server.tag:
                self.server_absent(server.tag)
        for router in self.state.list("router"):
            if router.tag:
                self.router_absent(router.tag)
        self._guard(f"site {self.site}", self.fabric.remove_site, self.site)

    def _guard(self, what: str, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except PermanentError:
            raise
        except Exception as exc:  # pyroute2, nft, FRR: retry with the reason shown
            raise TemporaryError(f"data plane: {what} failed: {exc}", 1.0) from exc

    # -- networks ----------------------------------------------------------------------

    def _vni(self, network: SiteObject | dict[str, Any]) -> int:
        spec = network.spec if isinstance(network, SiteObject) else network
        vni = spec.get("segmentation_id")
        if vni is None:
            raise PermanentError(
                f"network {spec.get('isthmus_id')} has no segmentation id (VNI): the embedded"
                " data plane needs one"
            )
        return int(vni)

    def network_present(self, spec: dict[str, Any]) -> None:
        vni = self._vni(spec)
        self._guard(f"network {spec['isthmus_id']}", self.fabric.ensure_network, self.site, vni)

    def network_absent(self, obj: SiteObject) -> None:
        vni = obj.spec.get("segmentation_id")
        if vni is not None:
            self._guard(f"network {obj.tag}", self.fabric.remove_network, self.site, int(vni))

    # -- ports and servers ---------------------------------------------------------------

    def port_changed(self, port_id: str) -> None:
        """Re-plug the servers that use this port (it was updated or re-created)."""
        for server in self.state.list("server"):
            if port_id in server.spec.get("port_ids", []):
                self.server_present(server.spec)

    def port_absent(self, port_id: str) -> None:
        self._guard(f"port {port_id}", self.fabric.remove_port, self.site, port_id)

    def _plumbing(self, nic: int, port: SiteObject, powered: bool) -> PortPlumbing:
        network = self.state.find("network", port.spec.get("network_id", ""))
        if network is None:
            raise TemporaryError(f"port {port.tag}: its network is not in site {self.site}", 0.5)
        addresses, gateway = [], None
        for fixed in port.spec.get("fixed_ips", []):
            subnet = self.state.find("subnet", fixed["subnet_id"])
            if subnet is None:
                raise TemporaryError(f"port {port.tag}: subnet not in site {self.site}", 0.5)
            cidr = ipaddress.ip_network(subnet.spec["cidr"], strict=False)
            if cidr.version != 4:
                continue  # IPv6 ports are control-plane only for now
            addresses.append((fixed["ip_address"], cidr.prefixlen))
            gateway = gateway or subnet.spec.get("gateway_ip")
        return PortPlumbing(
            port_id=port.tag,
            nic=nic,
            vni=self._vni(network),
            mac=port.spec.get("mac_address", ""),
            addresses=tuple(addresses),
            gateway=gateway,
            up=powered and bool(port.spec.get("admin_state_up", True)),
        )

    def server_present(self, spec: dict[str, Any]) -> None:
        server_id = spec["isthmus_id"]
        ports: list[tuple[str, SiteObject]] = []
        plumbing = []
        for nic, port_id in enumerate(spec.get("port_ids", [])):
            port = self.state.find("port", port_id)
            if port is None:
                raise TemporaryError(f"server {server_id}: port {port_id} not in site yet", 0.2)
            network = self.state.find("network", port.spec.get("network_id", ""))
            if network is not None:
                self.network_present(network.spec)
            ports.append((f"eth{nic}", port))
            plumbing.append(self._plumbing(nic, port, bool(spec.get("power_on", True))))
        self._guard(
            f"server {server_id}", self.fabric.ensure_server, self.site, server_id, plumbing
        )
        self._apply_rules(server_id, ports)

    def _apply_rules(self, server_id: str, ports: list[tuple[str, SiteObject]]) -> None:
        """The server's nftables ruleset from its ports' groups; a port without port
        security is not filtered at all (its groups, if any, do not matter)."""
        interfaces = []
        unfiltered = []
        for ifname, port in ports:
            if not port.spec.get("port_security_enabled", True):
                unfiltered.append(ifname)
                continue
            groups = []
            for group_id in port.spec.get("security_group_ids", []):
                group = self.state.find("security_group", group_id)
                if group is not None:
                    groups.append(group_spec(group.spec))
            interfaces.append((ifname, groups))
        ruleset = render_ruleset(interfaces, unfiltered)
        self._guard(
            f"security of server {server_id}", self.fabric.apply_ruleset, server_id, ruleset
        )

    def security_group_changed(self, group_id: str) -> None:
        """Re-render the ruleset of every server here with a port in the group."""
        in_group = {
            p.tag
            for p in self.state.list("port")
            if group_id in p.spec.get("security_group_ids", [])
        }
        if not in_group:
            return
        for server in self.state.list("server"):
            port_ids = server.spec.get("port_ids", [])
            if in_group & set(port_ids):
                ports = []
                for nic, port_id in enumerate(port_ids):
                    port = self.state.find("port", port_id)
                    if port is not None:
                        ports.append((f"eth{nic}", port))
                self._apply_rules(server.tag, ports)

    def server_absent(self, server_id: str) -> None:
        self._guard(f"server {server_id}", self.fabric.remove_server, server_id)

    # -- routers and floating IPs ------------------------------------------------------

    def router_present(self, spec: dict[str, Any]) -> None:
        """Shape the router's namespace here like `spec` (a RouterSpec as stored), with
        the NAT of the floating IPs of this site that use it."""
        router_id = spec["isthmus_id"]
        legs: dict[str, RouterLeg] = {}
        for interface in spec.get("interfaces", []):
            cidr = ipaddress.ip_network(interface["cidr"], strict=False)
            if cidr.version != 4:
                continue  # IPv6 routing is control-plane only for now
            vni = interface.get("segmentation_id")
            if vni is None:
                raise PermanentError(
                    f"router {router_id}: network {interface['network_id']} has no"
                    " segmentation id (VNI): the embedded data plane needs one"
                )
            leg = legs.get(interface["port_id"]) or RouterLeg(
                interface["port_id"], int(vni), interface["mac_address"], ()
            )
            legs[leg.port_id] = RouterLeg(
                leg.port_id,
                leg.vni,
                leg.mac,
                (*leg.addresses, (interface["ip_address"], cidr.prefixlen)),
                (*leg.cidrs, str(cidr)),
            )
        gateway = spec.get("external_gateway")
        external = None
        if gateway:
            network = ipaddress.ip_network(gateway["cidr"], strict=False)
            external = ExternalLeg(
                network_id=gateway["network_id"],
                mac=gateway["mac_address"],
                address=gateway["ip_address"],
                prefixlen=network.prefixlen,
                gateway=gateway.get("gateway_ip"),
                snat=bool(gateway.get("enable_snat", True)),
            )
        fips = [
            FloatingNat(f.spec["floating_ip_address"], f.spec["fixed_ip_address"])
            for f in self.state.list("floating_ip")
            if f.spec.get("router_id") == router_id and external is not None
        ]
        self._guard(
            f"router {router_id}",
            self.routers.ensure_router,
            self.site,
            router_id,
            list(legs.values()),
            external,
            fips,
            bool(spec.get("admin_state_up", True)),
            [(r["destination"], r["nexthop"]) for r in spec.get("routes") or []],
        )

    def router_absent(self, router_id: str) -> None:
        self._guard(f"router {router_id}", self.routers.remove_router, self.site, router_id)

    def floating_ips_changed(self, router_id: str) -> None:
        """Re-apply the router whose floating IPs here changed (if it is here)."""
        router = self.state.find("router", router_id)
        if router is not None:
            self.router_present(router.spec)
