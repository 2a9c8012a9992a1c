"""fabric/interconnect.py: the route target of a segment (FRR's auto-derived `AS:VNI`
for iBGP, the AS as a 2-byte value) and how per-site interconnect reports are kept
in a network's observed JSON. Pure functions: no site, no store."""

from __future__ import annotations

import json
import subprocess

import pytest

from isthmus.fabric import interconnect
from isthmus.fabric.capability import DATA_PLANE
from isthmus.fabric.frr import ASN
from tests.fabric import test_dataplane
from tests.fabric.test_dataplane import MISSING, Fabric
from tests.support import add_network, add_server, project_id


def test_route_target_is_what_frr_derives_for_the_embedded_gateways() -> None:
    assert ASN == 65000
    assert interconnect.route_targets(4242) == ("65000:4242",)
    assert interconnect.route_target(16777215) == "65000:16777215"
    assert interconnect.route_target(5, asn=4200000001) == f"{4200000001 & 0xFFFF}:5"
    assert interconnect.route_targets(None) == ()
    for bad in (0, 2**24):
        with pytest.raises(ValueError, match="VNI"):
            interconnect.route_target(bad)


def test_sites_that_report_nothing_are_judged_by_their_data_plane() -> None:
    assert interconnect.report_for_site("a", "local", DATA_PLANE) == {
        "interconnect": "evpn",
        "status": "up",
        "reason": None,
    }
    for driver, plane in (("local", "control-plane only (not root)"), ("aws", None)):
        judged = interconnect.report_for_site("a", driver, plane)
        assert (judged["interconnect"], judged["status"]) == ("none", "degraded")
        assert "site a has no fabric gateway" in str(judged["reason"])


def test_reports_are_kept_per_site_and_dropped_when_the_network_leaves() -> None:
    up = interconnect.report("bgpvpn")
    down = interconnect.report("none", "no bgpvpn there")
    observed: dict[str, object] = {"pending_reason": "x"}
    observed = interconnect.record(observed, "b", down)
    observed = interconnect.record(observed, "a", up)
    assert list(interconnect.reports_of(observed)) == ["a", "b"]
    assert interconnect.reports_of(observed)["b"]["reason"] == "no bgpvpn there"
    assert interconnect.record(observed, "a", up) is observed  # unchanged: same object
    observed = interconnect.record(observed, "a", None)
    observed = interconnect.record(observed, "b", None)
    assert observed == {"pending_reason": "x"}
    # what a driver puts in Observed.details is checked before it is kept
    assert interconnect.valid({"interconnect": "vpn", "status": "up"}) is None
    assert interconnect.valid({"interconnect": "evpn", "status": "sideways"}) is None
    assert interconnect.valid(None) is None


# -- what FRR really uses (needs root, FRR, nft, nsenter: skipped otherwise) ------------------

fabric = test_dataplane.fabric  # the fixture: 3 data-plane sites, torn down by record


@pytest.mark.skipif(MISSING is not None, reason=f"embedded data plane unavailable: {MISSING}")
@pytest.mark.timeout(120)
def test_the_embedded_gateways_use_the_route_target_isthmus_computes(fabric: Fabric) -> None:
    service = fabric.service
    project = project_id(service)
    net, _ = add_network(service, project, "10.88.0.0/24", "rt")
    add_server(service, project, net, "a", az="site-a")
    add_server(service, project, net, "b", az="site-b")
    fabric.settle()
    vni = fabric.resource(net).spec["segmentation_id"]
    gateway = fabric.fabric.site_namespace("site-a")
    shown = subprocess.run(
        ["vtysh", "-N", gateway, "-c", f"show bgp l2vpn evpn vni {vni} json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    evpn = json.loads(shown)
    assert evpn["importRts"] == list(interconnect.route_targets(vni)), evpn
    assert evpn["exportRts"] == list(interconnect.route_targets(vni)), evpn
    # and the engine kept, per site, that EVPN joins the network there
    reports = interconnect.reports_of(fabric.resource(net).observed)
    assert {site: r["interconnect"] for site, r in reports.items()} == {
        "site-a": "evpn",
        "site-b": "evpn",
    }
