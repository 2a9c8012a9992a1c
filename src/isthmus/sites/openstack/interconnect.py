"""How an OpenStack site's copy of a network joins the network's segment in the
other sites: a networking-bgpvpn BGPVPN (API reference: the `bgpvpn` Neutron
extension) of type `l2` carrying the segment's route targets (the NetworkSpec's
`route_targets`, fabric/interconnect.py), with a network association for the
site's network. The site's BGP speaker then imports and exports the network's
EVPN routes with those targets, as the embedded gateways do.

Identity: the BGPVPN is NAMED `isthmus-<network id>` (it has no tags), owned by the
driver's project, so the project sees it and can associate its own network.

Rights: Neutron's default policy lets only admins create or delete a BGPVPN (or
change its route targets); a project may associate its networks with a BGPVPN it
owns. So the BGPVPN is made with the clouds.yaml entry the site config names in
`admin_cloud` (same clouds.yaml; an admin of the site), for the driver's project,
and the association with the driver's own credentials (both connections are the
site context's, context.py). Without `admin_cloud` the driver's own credentials
are tried (enough where the site's policy allows).

No pretending: when the site offers no `bgpvpn` extension, or refuses to make the
BGPVPN, the network is still made there (it works inside the site) and the
network's Observed details say `interconnect: none/bgpvpn, degraded, <reason>`;
the engine keeps that per site and the admin API shows it.
"""

from __future__ import annotations

from typing import Any, cast

from isthmus.errors import PermanentError
from isthmus.fabric import interconnect
from isthmus.model.specs import NetworkSpec
from isthmus.sites.base import Observed
from isthmus.sites.openstack.common import field, site_name
from isthmus.sites.openstack.context import SiteContext
from isthmus.sites.openstack.network import NeutronKind

EXTENSION = "bgpvpn"
VPN_TYPE = "l2"


class BgpVpnInterconnect:
    """The BGPVPNs of one OpenStack site (see the module docstring)."""

    def __init__(self, site: SiteContext) -> None:
        self.site = site

    # -- capabilities ----------------------------------------------------------------------

    def offered(self) -> bool:
        """The site's Neutron has the `bgpvpn` extension (its extension list is cached)."""
        network = cast(NeutronKind[NetworkSpec], self.site.kinds["network"])
        return EXTENSION in network.extensions()

    # -- the contract's network hooks ------------------------------------------------------

    def find(self, network_id: str) -> list[Any]:
        """The BGPVPNs carrying the network's Isthmus id, oldest first (ours: our project)."""
        conn = self.site.connection()
        with self.site.errors("look up (bgpvpn)"):
            return [
                vpn
                for vpn in conn.network.bgpvpns(name=site_name(network_id))
                if field(vpn, "name") == site_name(network_id)
                and field(vpn, "project_id") in (None, conn.current_project_id)
            ]

    def join(self, spec: NetworkSpec, observed: Observed) -> Observed:
        """Make the network's BGPVPN and its association exist (idempotent), and put
        how the site joins the segment into `observed.details["interconnect"]`."""
        reported = self._join(spec, observed.site_id)
        observed.details[interconnect.OBSERVED_KEY] = dict(reported)
        return observed

    def _join(self, spec: NetworkSpec, site_network_id: str) -> interconnect.Report:
        if not self.offered():
            return interconnect.report(
                "none",
                f"site {self.site.name} offers no bgpvpn extension: the network does not"
                " reach other sites from there",
            )
        if not spec.route_targets:
            return interconnect.report(
                "bgpvpn", f"network {spec.isthmus_id} has no segment id, so no route targets"
            )
        try:
            vpn = self._ensure_vpn(spec)
        except PermanentError as exc:
            hint = "" if self.site.admin_cloud else " (give the site an `admin_cloud` allowed to)"
            return interconnect.report(
                "bgpvpn",
                f"site {self.site.name} did not make the network's BGPVPN{hint}: {exc}; the"
                " network does not reach other sites from there",
            )
        self._ensure_association(vpn, site_network_id)
        return interconnect.report("bgpvpn")

    def _ensure_vpn(self, spec: NetworkSpec) -> Any:
        wanted = sorted(spec.route_targets)
        found = self.find(spec.isthmus_id)
        admin = self.site.admin()
        for extra in found[1:]:  # a twin from a crash between create and record
            with self.site.errors("delete (bgpvpn)"):
                admin.network.delete_bgpvpn(extra, ignore_missing=True)
        vpn = found[0] if found else None
        if vpn is not None and field(vpn, "type") != VPN_TYPE:  # type cannot change
            with self.site.errors("delete (bgpvpn)"):
                admin.network.delete_bgpvpn(vpn, ignore_missing=True)
            vpn = None
        if vpn is None:
            with self.site.errors("create (bgpvpn)", create=True):
                return admin.network.create_bgpvpn(
                    name=site_name(spec.isthmus_id),
                    type=VPN_TYPE,
                    route_targets=wanted,
                    project_id=self.site.connection().current_project_id,
                )
        if sorted(field(vpn, "route_targets", []) or []) != wanted:
            with self.site.errors("update (bgpvpn)"):
                vpn = admin.network.update_bgpvpn(vpn, route_targets=wanted)
        return vpn

    def _ensure_association(self, vpn: Any, site_network_id: str) -> None:
        """Exactly one association, for the site's network (by the network's owner)."""
        conn = self.site.connection()
        with self.site.errors("list associations (bgpvpn)"):
            present = list(conn.network.bgpvpn_network_associations(vpn))
        have = False
        for association in present:
            if field(association, "network_id") == site_network_id and not have:
                have = True
                continue
            with self.site.errors("delete association (bgpvpn)"):
                conn.network.delete_bgpvpn_network_association(
                    vpn, association, ignore_missing=True
                )
        if not have:
            with self.site.errors("associate (bgpvpn)", create=True):
                conn.network.create_bgpvpn_network_association(vpn, network_id=site_network_id)

    def leave(self, network_id: str) -> None:
        """Remove the network's BGPVPN (its associations go with it); nothing there is
        success. Where the BGPVPN may not be deleted, its associations are removed so
        the network can go."""
        if not self.offered():
            return
        admin = self.site.admin()
        for vpn in self.find(network_id):
            try:
                with self.site.errors("delete (bgpvpn)"):
                    admin.network.delete_bgpvpn(vpn, ignore_missing=True)
            except PermanentError:
                conn = self.site.connection()
                with self.site.errors("delete association (bgpvpn)"):
                    for association in list(conn.network.bgpvpn_network_associations(vpn)):
                        conn.network.delete_bgpvpn_network_association(
                            vpn, association, ignore_missing=True
                        )
