"""How the sites a network is in are joined into one segment, as Isthmus knows it.

Route targets. A spanning network is one VXLAN segment (its VNI, store/segments.py)
whose MAC/IP routes the sites exchange over BGP EVPN. The embedded gateways
(fabric/frr.py: iBGP, `advertise-all-vni`, no explicit RTs) let FRR derive each
VNI's import/export route target, which FRR documents as `AS:VNI` with the AS
as a 2-byte value (the low 2 bytes of a 4-byte AS; tests/fabric/test_interconnect.py
reads it back from bgpd). `route_targets(vni)` is the one place Isthmus computes
it: what other sites (an OpenStack site's BGPVPN, the admin API's fabric view)
must import and export to join the same segment.

Interconnect reports. Each site a network is in says how it is joined to the
others: `evpn` (an embedded gateway: zebra+bgpd), `bgpvpn` (an OpenStack site's
networking-bgpvpn, sites/openstack/interconnect.py) or `none`, and whether that is
`up` or `degraded` (with the reason). A driver may report it in the network's
`Observed.details["interconnect"]`; for a driver that reports nothing it is derived
from the site's data plane (`report_for_site`). The engine keeps the latest report
per site in the network's `observed["interconnect"]` (`record`), and the admin API
(the fabric view, the network's `isthmus:interconnect` for admins) shows it.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from isthmus.fabric.capability import DATA_PLANE
from isthmus.fabric.frr import ASN

OBSERVED_KEY = "interconnect"  # in Observed.details and in the network's observed JSON
Kind = Literal["evpn", "bgpvpn", "none"]


class Report(TypedDict):
    """How one site joins a network's segment."""

    interconnect: Kind
    status: Literal["up", "degraded"]
    reason: str | None


def route_target(vni: int, asn: int = ASN) -> str:
    """The route target FRR derives for `vni` under `asn`: `AS:VNI` (2-byte AS)."""
    if not 0 < vni < 2**24:
        raise ValueError(f"a VNI is 1..{2**24 - 1}, not {vni}")
    return f"{asn & 0xFFFF}:{vni}"


def route_targets(vni: int | None, asn: int = ASN) -> tuple[str, ...]:
    """The route targets (import and export alike) of a network's segment; () when
    the network has no VNI."""
    return () if vni is None else (route_target(int(vni), asn),)


def report(kind: Kind, reason: str | None = None) -> Report:
    """A report: `up` without a reason, `degraded` with one."""
    return Report(interconnect=kind, status="degraded" if reason else "up", reason=reason)


def report_for_site(site: str, driver: str, data_plane: str | None) -> Report:
    """The report for a site whose driver reports nothing itself: an embedded site
    is joined by EVPN when its data plane runs, else by nothing."""
    if driver == "local" and data_plane == DATA_PLANE:
        return report("evpn")
    what = data_plane or "unknown"
    return report(
        "none",
        f"site {site} has no fabric gateway (data plane: {what}): the network does not"
        " reach other sites from there",
    )


def valid(value: Any) -> Report | None:
    """`value` as a Report if it is one (what a driver put in Observed.details)."""
    if not isinstance(value, dict):
        return None
    if value.get("interconnect") not in ("evpn", "bgpvpn", "none"):
        return None
    if value.get("status") not in ("up", "degraded"):
        return None
    reason = value.get("reason")
    return report(value["interconnect"], str(reason) if reason else None)


def record(observed: dict[str, Any], site: str, new: Report | None) -> dict[str, Any]:
    """`observed` (a network's observed JSON) with `site`'s report set to `new`
    (None: the network left the site); the same dict object when nothing changes."""
    reports = dict(observed.get(OBSERVED_KEY) or {})
    if new is None:
        if site not in reports:
            return observed
        del reports[site]
    elif reports.get(site) == new:
        return observed
    else:
        reports[site] = dict(new)
    updated = {**observed, OBSERVED_KEY: dict(sorted(reports.items()))}
    if not reports:
        del updated[OBSERVED_KEY]
    return updated


def reports_of(observed: dict[str, Any] | None) -> dict[str, Report]:
    """The per-site reports kept in a network's observed JSON."""
    out: dict[str, Report] = {}
    for site, value in ((observed or {}).get(OBSERVED_KEY) or {}).items():
        checked = valid(value)
        if checked is not None:
            out[str(site)] = checked
    return out
