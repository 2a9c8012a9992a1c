"""The admin API's view of the fabric: `GET /isthmus/v1/fabric`.

What joins the sites: the BGP AS the embedded gateways speak (fabric/frr.py), the
range new networks' VNIs come from, and per network its VNI, its route targets
(fabric/interconnect.py, the one source of them) and, per site the network is in,
how that site joins the segment (`evpn`, `bgpvpn` or `none`) and whether that is
`up` or `degraded` (with the reason). Read from the store only: the per-site
reports are what the drivers said when they last applied the network (kept by the
engine), and for sites whose driver says nothing, what their data plane implies.
Admin only (403 otherwise).
"""

from __future__ import annotations

from typing import Any, Literal, cast

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from isthmus.api.admin.models import ERRORS
from isthmus.api.context import RequestContext, get_context
from isthmus.fabric import interconnect
from isthmus.fabric.frr import ASN
from isthmus.store.tables import Binding, Resource, Site

router = APIRouter(prefix="/isthmus/v1", tags=["admin"], responses=ERRORS)


class SiteLink(BaseModel):
    """How one site joins a network's segment."""

    site: str = Field(description="The site (availability zone) the network is in.")
    interconnect: Literal["evpn", "bgpvpn", "none"] = Field(
        description=(
            "`evpn`: an embedded gateway (FRR, BGP EVPN); `bgpvpn`: an OpenStack site's"
            " networking-bgpvpn BGPVPN with the network's route targets; `none`: nothing"
            " joins the site's copy to the others."
        )
    )
    status: Literal["up", "degraded"] = Field(
        description="`degraded`: the network does not reach the other sites from there."
    )
    reason: str | None = Field(description="Why it is degraded (None when up).")


class FabricNetwork(BaseModel):
    """One network's segment."""

    id: str = Field(description="The network's id.")
    name: str = Field(description="The network's name.")
    project_id: str = Field(description="The project owning it.")
    segmentation_id: int = Field(description="Its VXLAN VNI (`provider:segmentation_id`).")
    route_targets: list[str] = Field(
        description="Route targets (import and export) of its segment: `AS:VNI`."
    )
    spanning: bool = Field(description="Present in more than one site.")
    status: Literal["up", "degraded"] = Field(
        description="`degraded` when any site it is in is degraded."
    )
    sites: list[SiteLink] = Field(description="The sites it is present in, by name.")


class Fabric(BaseModel):
    """The fabric between the sites."""

    asn: int = Field(description="The BGP AS of the embedded gateways (iBGP).")
    vni_range: tuple[int, int] = Field(description="The range new networks' VNIs come from.")
    networks: list[FabricNetwork] = Field(description="Networks with a VNI, by name and id.")


class FabricEnvelope(BaseModel):
    fabric: Fabric


def _admin(request: Request) -> RequestContext:
    ctx = get_context(request)
    ctx.require_admin("the isthmus admin API")
    return ctx


@router.get("/fabric", response_model=FabricEnvelope, summary="The fabric between sites")
def show_fabric(request: Request, ctx: RequestContext = Depends(_admin)) -> FabricEnvelope:
    """The AS, the VNI range, and per network its VNI, route targets and how each
    site it is in joins it (up, or degraded with the reason)."""
    service: Any = request.app.state.service
    with service.db.read() as session:
        sites = {site.name: site for site in session.scalars(select(Site))}
        present: dict[str, list[str]] = {}
        for network_id, site in session.execute(
            select(Binding.resource_id, Binding.site)
            .where(Binding.kind == "network")
            .order_by(Binding.site)
        ):
            present.setdefault(network_id, []).append(site)
        rows = session.scalars(
            select(Resource)
            .where(Resource.kind == "network", Resource.deleting.is_(False))
            .order_by(Resource.name, Resource.id)
        )
        networks = [
            _network(row, present.get(row.id, []), sites)
            for row in rows
            if row.spec.get("segmentation_id") is not None
        ]
    low, high = service.config.vni_range
    return FabricEnvelope(fabric=Fabric(asn=ASN, vni_range=(low, high), networks=networks))


def _network(row: Resource, present: list[str], sites: dict[str, Site]) -> FabricNetwork:
    vni = int(row.spec["segmentation_id"])
    reports = interconnect.reports_of(row.observed)
    links = []
    for name in present:
        reported = reports.get(name)
        if reported is None:
            site = sites.get(name)
            driver, data_plane = (site.driver, site.data_plane) if site else ("", None)
            reported = interconnect.report_for_site(name, driver, data_plane)
        links.append(SiteLink(site=name, **reported))
    return FabricNetwork(
        id=row.id,
        name=row.name,
        project_id=cast(str, row.project_id),  # a network always has its project's id
        segmentation_id=vni,
        route_targets=list(interconnect.route_targets(vni)),
        spanning=len(present) > 1,
        status="degraded" if any(link.status == "degraded" for link in links) else "up",
        sites=links,
    )
