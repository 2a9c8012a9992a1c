"""Neutron L3 kinds of an OpenStack site: router and floating IP.

- router: a Neutron router named `isthmus-<router id>` (tag `isthmus_id=<id>`).
  Each of the spec's interface ports becomes a site port named
  `isthmus-<interface port id>` on the site's copy of its network, with the same
  fixed IPs (usually the subnet's gateway IP) and MAC as in every other site,
  attached with `add_router_interface(port_id=...)`; interfaces the spec no longer
  has are detached (Neutron deletes their ports). A site that refuses a port at a
  subnet's gateway IP (an Isthmus in site mode keeps it for its routers) gets the
  interface by `subnet_id` instead: same address, the site's own port and MAC
  (`details["interfaces"]` lists each interface's site port, address and MAC).
  When the spec has an external gateway, the router's gateway goes on the SITE's
  external network, which the site config names in `external_network` (name or
  id): Isthmus's external
  network is its own abstraction. The gateway address Isthmus chose is asked for
  (with the config's `admin_cloud`: Neutron keeps `external_fixed_ips` to admins)
  when it lies in a subnet of the site's external network, so that the site never
  hands that address, or a floating IP Isthmus chose, to something else; otherwise,
  or if the site refuses, the address is the site's choice (reported in
  `details["external_fixed_ips"]`). A site without
  `external_network` gets a router without gateway, and `details["gateway"]` says
  why. `enable_snat` is left to the site (Neutron lets only admins set it).
  The spec's extra routes are set on the site router as they are (their nexthops
  are on the interface subnets, whose addresses are the same in every site).
- floating IP: a Neutron floating IP on the site's external network, associated
  with the site's copy of the server's port (and fixed IP). Neutron floating IPs
  have no name, so the Isthmus id is carried as the DESCRIPTION
  `isthmus-<floating IP id>` (set in the create call) plus the usual tag. The
  address Isthmus chose is asked for only when it lies in a subnet of the site's
  external network (Neutron reserves that to admins: it is made with the config's
  `admin_cloud`, else the driver's own credentials); otherwise, or if the site
  refuses, the site picks one. The
  site's address is reported in `details["floating_ip_address"]` and, when it
  differs, the chosen one in `details["requested_address"]`: the site NATs its own
  address, and Isthmus's address does not reach that server there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from isthmus.errors import PermanentError, SiteError, TemporaryError
from isthmus.model.specs import FloatingIpSpec, RouterInterface, RouterSpec
from isthmus.sites.base import Observed
from isthmus.sites.openstack.common import field, site_name
from isthmus.sites.openstack.network import NeutronKind

if TYPE_CHECKING:
    from openstack.connection import Connection

    from isthmus.sites.openstack.context import SiteContext

INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed")
ADDRESS_TAKEN = re.compile(r"already allocated", re.IGNORECASE)


def address_in_external(site: SiteContext, external: Any, address: str | None) -> bool:
    """Whether `address` lies in a subnet of the site's `external` network, read as
    the site's admin (an external network's subnets are not always visible to its
    users): only then may Isthmus's own choice of that address be asked for there."""
    if not address or external is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    admin = site.admin()
    with site.errors("list the external subnets (router)"):
        cidrs = [s.cidr for s in admin.network.subnets(network_id=external.id)]
    return any(ip in ipaddress.ip_network(cidr) for cidr in cidrs)


class Routers(NeutronKind[RouterSpec]):
    kind = "router"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        query = self.project_filter(conn) | ({"name": name} if name else {})
        return conn.network.routers(**query)

    def details(self, obj: Any) -> dict[str, Any]:
        gateway = field(obj, "external_gateway_info") or {}
        return {
            "external_network_id": gateway.get("network_id"),
            "external_fixed_ips": [
                f.get("ip_address") for f in gateway.get("external_fixed_ips") or []
            ],
        }

    def external_network(self) -> Any | None:
        """The site's external network the config names (cached), or None."""
        wanted = self.site.external_network
        if not wanted:
            return None

        def load() -> Any:
            with self.errors("find the external network"):
                found = self.conn.network.find_network(wanted, ignore_missing=True)
            if found is None or not field(found, "is_router_external", False):
                raise PermanentError(
                    f"site {self.site.name} has no external network {wanted!r}"
                    " (driver config `external_network`)"
                )
            return found

        return self.site.cached(f"external-network:{wanted}", load, seconds=300)

    def ensure(self, spec: RouterSpec) -> Observed:
        conn = self.conn
        networks = self.site.kinds["network"]
        subnets = self.site.kinds["subnet"]
        for_what = f"router {spec.isthmus_id}"
        # the site-side network and subnets each interface needs, looked up once
        site_networks: dict[str, str] = {}
        site_subnets: dict[str, str] = {}
        for interface in spec.interfaces:
            if interface.network_id not in site_networks:
                site_networks[interface.network_id] = networks.require(
                    interface.network_id, for_what
                ).id
            if interface.subnet_id not in site_subnets:
                site_subnets[interface.subnet_id] = subnets.require(
                    interface.subnet_id, for_what
                ).id
        obj = self.find(spec.isthmus_id)
        if obj is None:
            with self.errors("create", create=True):
                obj = conn.network.create_router(
                    name=site_name(spec.isthmus_id),
                    description=spec.name,
                    is_admin_state_up=spec.admin_state_up,
                )
        else:
            changes: dict[str, Any] = {}
            if field(obj, "description", "") != spec.name:
                changes["description"] = spec.name
            if bool(field(obj, "is_admin_state_up", True)) != spec.admin_state_up:
                changes["is_admin_state_up"] = spec.admin_state_up
            if changes:
                with self.errors("update"):
                    obj = conn.network.update_router(obj, **changes)
        self.tag(obj, spec.isthmus_id)
        self._sync_interfaces(conn, obj, spec, site_networks, site_subnets)
        obj, gateway_note = self._sync_gateway(conn, obj, spec)
        obj = self._sync_routes(conn, obj, spec)
        observed = self.observed(obj, spec.isthmus_id)
        with self.errors("list interfaces"):
            observed.details["interfaces"] = [
                {
                    "site_port_id": port.id,
                    "mac_address": field(port, "mac_address"),
                    "ip_addresses": [f.get("ip_address") for f in field(port, "fixed_ips", [])],
                }
                for port in conn.network.ports(device_id=obj.id)
                if field(port, "device_owner") in INTERFACE_OWNERS
            ]
        if gateway_note:
            observed.details["gateway"] = gateway_note
        return observed

    def _sync_gateway(self, conn: Connection, obj: Any, spec: RouterSpec) -> tuple[Any, str]:
        """Put the router's gateway on the site's external network iff the spec has
        one (at Isthmus's gateway address where the site allows it); a note when the
        spec's gateway cannot be had in this site."""
        note = ""
        wanted: str | None = None
        external = None
        if spec.external_gateway is not None:
            external = self.external_network()
            if external is None:
                note = (
                    f"site {self.site.name} names no external network (driver config"
                    " `external_network`): the router has no gateway there"
                )
            else:
                wanted = str(external.id)
        current = (field(obj, "external_gateway_info") or {}).get("network_id")
        if current == wanted:
            return obj, note
        if wanted and spec.external_gateway is not None:
            address = spec.external_gateway.ip_address
            if address_in_external(self.site, external, address):
                exact = {"network_id": wanted, "external_fixed_ips": [{"ip_address": address}]}
                try:
                    with self.errors("set the gateway at the chosen address"):
                        return self.site.admin().network.update_router(
                            obj, external_gateway_info=exact
                        ), note
                except PermanentError:
                    pass  # not allowed there: the site picks the address
                except TemporaryError as exc:
                    if not ADDRESS_TAKEN.search(str(exc)):
                        raise
        info = {"network_id": wanted} if wanted else {}
        with self.errors("set the gateway"):
            obj = conn.network.update_router(obj, external_gateway_info=info)
        return obj, note

    def _sync_routes(self, conn: Connection, obj: Any, spec: RouterSpec) -> Any:
        """Make the site router's extra routes those of the spec (its interfaces, and
        so the nexthops' subnets, are there by now)."""
        wanted = sorted((r.destination, r.nexthop) for r in spec.routes)
        current = sorted(
            (str(r.get("destination")), str(r.get("nexthop"))) for r in field(obj, "routes") or []
        )
        if current != wanted:
            with self.errors("set the extra routes"):
                obj = conn.network.update_router(
                    obj, routes=[{"destination": d, "nexthop": n} for d, n in wanted]
                )
        return obj

    def _sync_interfaces(
        self,
        conn: Connection,
        obj: Any,
        spec: RouterSpec,
        site_networks: dict[str, str],
        site_subnets: dict[str, str],
    ) -> None:
        """Make the router's interface ports those of the spec."""
        wanted: dict[str, list[RouterInterface]] = {}
        for interface in spec.interfaces:
            wanted.setdefault(site_name(interface.port_id), []).append(interface)
        with self.errors("list interfaces"):
            attached = [
                port
                for port in conn.network.ports(device_id=obj.id)
                if field(port, "device_owner") in INTERFACE_OWNERS
            ]
        have: set[str] = set()
        for port in attached:
            name = self._interface_of(port, wanted, have, site_subnets)
            if name is not None:
                have.add(name)
                continue
            with self.errors("detach an interface"):
                conn.network.remove_interface_from_router(obj, port=port.id)
        for name, legs in wanted.items():
            if name in have:
                continue
            try:
                port = self._interface_port(conn, name, legs, site_networks, site_subnets)
            except SiteError:
                if len(legs) != 1:
                    raise
                # some sites keep a subnet's gateway IP for the router they attach to
                # the subnet themselves: let the site make the port (its own MAC)
                with self.errors("attach a subnet"):
                    conn.network.add_interface_to_router(
                        obj, subnet=site_subnets[legs[0].subnet_id]
                    )
                continue
            with self.errors("attach an interface"):
                conn.network.add_interface_to_router(obj, port=port.id)

    @staticmethod
    def _interface_of(
        port: Any,
        wanted: dict[str, list[RouterInterface]],
        have: set[str],
        site_subnets: dict[str, str],
    ) -> str | None:
        """Which wanted interface an attached port is: ours by name (same addresses and
        MAC), or one the site made when attached to a subnet (same addresses)."""
        name = str(field(port, "name", ""))
        legs = wanted.get(name)
        if legs is not None:
            return name if name not in have and _same_port(port, legs, site_subnets) else None
        for other, legs in wanted.items():
            if other not in have and _same_port(port, legs, site_subnets, mac=False):
                return other
        return None

    def _interface_port(
        self,
        conn: Connection,
        name: str,
        legs: list[RouterInterface],
        site_networks: dict[str, str],
        site_subnets: dict[str, str],
    ) -> Any:
        """The unattached site port for one interface (made, or found after a crash
        between making and attaching it)."""
        with self.errors("look up an interface port"):
            loose = [
                port
                for port in conn.network.ports(name=name, **self.project_filter(conn))
                if field(port, "name") == name and not field(port, "device_id")
            ]
        for port in loose:
            if _same_port(port, legs, site_subnets):
                return port
            with self.errors("delete a stale interface port"):
                conn.network.delete_port(port, ignore_missing=True)
        body: dict[str, Any] = {
            "name": name,
            "network_id": site_networks[legs[0].network_id],
            "fixed_ips": [
                {"subnet_id": site_subnets[leg.subnet_id], "ip_address": leg.ip_address}
                for leg in legs
            ],
        }
        if legs[0].mac_address:
            body["mac_address"] = legs[0].mac_address
        with self.errors("create an interface port", create=True):
            return conn.network.create_port(**body)

    def remove(self, conn: Connection, obj: Any) -> None:
        for port in list(conn.network.ports(device_id=obj.id)):
            if field(port, "device_owner") in INTERFACE_OWNERS:
                conn.network.remove_interface_from_router(obj, port=port.id)
        conn.network.delete_router(obj, ignore_missing=True)


def _same_port(
    port: Any, legs: list[RouterInterface], site_subnets: dict[str, str], mac: bool = True
) -> bool:
    """The site port carries exactly the interface's fixed IPs (and, with `mac`, its
    MAC if it has one)."""
    have = {(f.get("subnet_id"), f.get("ip_address")) for f in field(port, "fixed_ips", [])}
    want = {(site_subnets[leg.subnet_id], leg.ip_address) for leg in legs}
    wanted_mac = legs[0].mac_address.lower() if mac else ""
    site_mac = str(field(port, "mac_address", "")).lower()
    return have == want and (not wanted_mac or site_mac == wanted_mac)


class _Described:
    """A floating IP seen through the `name` the shared lookups use: its description
    (Neutron floating IPs have no name; the SDK's `name` is their address)."""

    def __init__(self, fip: Any) -> None:
        self.fip = fip

    def __getattr__(self, key: str) -> Any:
        return self.fip.description if key == "name" else getattr(self.fip, key)


class FloatingIps(NeutronKind[FloatingIpSpec]):
    kind = "floating_ip"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        fips = conn.network.ips(**self.project_filter(conn))
        return [_Described(fip) for fip in fips if name is None or fip.description == name]

    def details(self, obj: Any) -> dict[str, Any]:
        return {
            "floating_ip_address": field(obj, "floating_ip_address"),
            "fixed_ip_address": field(obj, "fixed_ip_address"),
            "port_id": field(obj, "port_id"),
            "router_id": field(obj, "router_id"),
        }

    def ensure(self, spec: FloatingIpSpec) -> Observed:
        conn = self.conn
        for_what = f"floating IP {spec.isthmus_id}"
        self.site.kinds["router"].require(spec.router_id, for_what)
        port = self.site.kinds["port"].require(spec.port_id, for_what)
        external = cast(Routers, self.site.kinds["router"]).external_network()
        if external is None:
            raise PermanentError(
                f"site {self.site.name} names no external network (driver config"
                " `external_network`): it cannot give floating IPs"
            )
        obj = self.find(spec.isthmus_id)
        if obj is not None and field(obj, "floating_network_id") != external.id:
            with self.errors("delete"):
                conn.network.delete_ip(obj.fip, ignore_missing=True)
            obj = None
        association: dict[str, Any] = {"port_id": port.id}
        if spec.fixed_ip_address:
            association["fixed_ip_address"] = spec.fixed_ip_address
        if obj is None:
            obj = _Described(self._create(conn, spec, external, association))
        elif field(obj, "port_id") != port.id or (
            spec.fixed_ip_address and field(obj, "fixed_ip_address") != spec.fixed_ip_address
        ):
            with self.errors("associate"):
                obj = _Described(conn.network.update_ip(obj.fip, **association))
        self.tag(obj.fip, spec.isthmus_id)
        observed = self.observed(obj, spec.isthmus_id)
        if spec.floating_ip_address and obj.floating_ip_address != spec.floating_ip_address:
            observed.details["requested_address"] = spec.floating_ip_address
        return observed

    def _create(
        self, conn: Connection, spec: FloatingIpSpec, external: Any, association: dict[str, Any]
    ) -> Any:
        body = {
            "floating_network_id": external.id,
            "description": site_name(spec.isthmus_id),
            **association,
        }
        if address_in_external(self.site, external, spec.floating_ip_address):
            admin = self.site.admin()
            exact = {
                **body,
                "floating_ip_address": spec.floating_ip_address,
                "project_id": conn.current_project_id,
            }
            try:
                with self.errors("create at the chosen address", create=True):
                    return admin.network.create_ip(**exact)
            except PermanentError:
                pass  # not allowed, or the address is taken there: the site picks one
            except TemporaryError as exc:
                # Neutron's 409 IpAddressAlreadyAllocated: something of the site's own
                # (a router gateway, say) holds the address, which no retry frees
                if not ADDRESS_TAKEN.search(str(exc)):
                    raise
        with self.errors("create", create=True):
            return conn.network.create_ip(**body)

    def remove(self, conn: Connection, obj: Any) -> None:
        conn.network.delete_ip(obj.fip, ignore_missing=True)
