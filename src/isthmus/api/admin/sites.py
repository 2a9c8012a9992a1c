"""The Isthmus admin API under `/isthmus/v1`: sites (with what drifted there and
the foreign objects the last sweep found, engine/drift.py), the operator's view of
one resource (and recreating one that drifted), the work queue, and service
liveness; plus Prometheus `/metrics` (api/admin/metrics.py). Request and response bodies
live in api/admin/models.py.

Everything but `/isthmus/v1/health` (and `/metrics`) needs a Keystone token with
the admin role. Reads only read the store. The one exception to "no site call in a
request path" are the operator actions on a site itself: adding a site checks it
at once, taking an embedded site down or up flips it and checks it, and removing
a site retires what Isthmus runs for it; each says so in its docstring.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from isthmus import __version__
from isthmus.api.admin import fabric as admin_fabric
from isthmus.api.admin import metrics
from isthmus.api.admin.models import (
    ERRORS,
    SITE_LINKS,
    BindingView,
    CopyProgressView,
    ForeignObjects,
    RecreateResult,
    ResourceDetail,
    ResourceView,
    ServiceHealth,
    SiteCreate,
    SiteEnvelope,
    SiteList,
    SiteUpdate,
    SiteView,
    WorkGroup,
    WorkSummary,
    WorkView,
)
from isthmus.api.context import RequestContext, ServiceApi, get_context, service_of
from isthmus.config import SiteConfig
from isthmus.engine.drift import foreign_view, recreate
from isthmus.engine.health import check_site
from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.sites.base import PowerSwitch
from isthmus.sites.validation import validate_site
from isthmus.store import repo, site_removal
from isthmus.store.tables import Binding, Resource, Site, Work
from isthmus.store.work import state_of

log = logging.getLogger(__name__)

admin = APIRouter(prefix="/isthmus/v1", tags=["admin"], responses=ERRORS)
router = APIRouter()  # what api/app.py mounts: the admin API and /metrics

# config keys whose values are never shown (password, secret, token,
# application_credential_secret, ...), at any depth of a site's config
SECRET_KEY = re.compile(r"pass|secret|token|credential|private", re.IGNORECASE)
MASK = "***"


def admin_context(request: Request) -> RequestContext:
    """FastAPI dependency: the caller, who must hold the admin role (401/403)."""
    ctx = get_context(request)
    ctx.require_admin("the isthmus admin API")
    return ctx


def _service(request: Request) -> ServiceApi:
    return service_of(request)


# -- views ---------------------------------------------------------------------------------


def _redact(value: Any) -> Any:
    """`value` with the values of secret-looking keys masked, at any depth."""
    if isinstance(value, dict):
        return {
            key: (MASK if SECRET_KEY.search(str(key)) else _redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _ints(values: dict[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in (values or {}).items():
        try:
            out[key] = int(value)
        except (TypeError, ValueError):
            continue
    return out


def _site_views(session: Session, only: str | None = None) -> list[SiteView]:
    sites_query = select(Site).order_by(Site.name)
    if only is not None:
        sites_query = sites_query.where(Site.name == only)
    sites = list(session.scalars(sites_query))
    bindings: dict[str, dict[str, int]] = defaultdict(dict)
    for site, kind, count in session.execute(
        select(Binding.site, Binding.kind, func.count()).group_by(Binding.site, Binding.kind)
    ):
        bindings[site][kind] = count
    placed: dict[str, dict[str, int]] = defaultdict(dict)
    for placed_site, kind, count in session.execute(
        select(Resource.site, Resource.kind, func.count())
        .where(Resource.site.is_not(None))
        .group_by(Resource.site, Resource.kind)
    ):
        placed[cast(str, placed_site)][kind] = count  # the query leaves out rows without a site
    drifted: dict[str, dict[str, int]] = defaultdict(dict)
    for site, kind, count in session.execute(
        select(Binding.site, Binding.kind, func.count())
        .where(Binding.drifted_at.is_not(None))
        .group_by(Binding.site, Binding.kind)
    ):
        drifted[site][kind] = count
    queued: dict[str, tuple[int, int]] = {}
    for site, count, errors in session.execute(
        select(Work.site, func.count(), func.count(Work.last_error)).group_by(Work.site)
    ):
        queued[site] = (count, errors)
    return [
        SiteView(
            name=site.name,
            driver=site.driver,
            availability_zone=site.name,
            enabled=site.enabled,
            health=cast(
                Any, site.health if site.health in ("up", "degraded", "down") else "unknown"
            ),
            last_error=site.last_error,
            last_seen=repo.isoformat(site.last_seen),
            capacity=_ints(site.capacity),
            usage=_ints(site.usage),
            allocated=_ints(site.allocated),
            data_plane=site.data_plane or "unknown",
            config=_redact(dict(site.config or {})),
            bindings=dict(sorted(bindings[site.name].items())),
            placed=dict(sorted(placed[site.name].items())),
            queued_work=queued.get(site.name, (0, 0))[0],
            work_with_errors=queued.get(site.name, (0, 0))[1],
            drifted=dict(sorted(drifted[site.name].items())),
            foreign=ForeignObjects.model_validate(foreign_view(site)),
            created_at=repo.isoformat(site.created_at),
        )
        for site in sites
    ]


def _site_view(session: Session, name: str) -> SiteView:
    views = _site_views(session, only=name)
    if not views:
        raise NotFound(f"Site {name} could not be found.")
    return views[0]


def _site_health(session: Session) -> dict[str, str]:
    return {name: health for name, health in session.execute(select(Site.name, Site.health))}


def _work_view(row: Work, health: dict[str, str], now: float) -> WorkView:
    return WorkView(
        id=row.id,
        resource_id=row.resource_id,
        kind=row.kind,
        site=row.site,
        site_health=health.get(row.site, "removed"),
        attempts=row.attempts,
        requests=row.seq,
        ready_in_seconds=round(max(0.0, row.not_before - now), 3),
        leased_by=row.lease_owner if row.lease_until >= now else None,
        last_error=row.last_error,
        age_seconds=round(max(0.0, now - row.created_at), 3),
        queued_at=repo.isoformat(_from_epoch(row.created_at)),
        progress=_copy_view(row),
    )


def _copy_view(row: Work) -> CopyProgressView | None:
    state = state_of(row)
    if state is None:
        return None
    return CopyProgressView(
        bytes_done=state.done,
        bytes_total=state.total,
        percent=state.percent,
        updated_at=repo.isoformat(_from_epoch(state.at)),
    )


def _from_epoch(epoch: float) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None) if epoch else None


def _resource_view(resource: Resource) -> ResourceView:
    return ResourceView(
        id=resource.id,
        kind=resource.kind,
        project_id=resource.project_id,
        name=resource.name,
        status=resource.status,
        site=resource.site,
        parent_id=resource.parent_id,
        device_id=resource.device_id,
        generation=resource.generation,
        deleting=resource.deleting,
        spec=dict(resource.spec or {}),
        observed=dict(resource.observed or {}),
        created_at=repo.isoformat(resource.created_at),
        updated_at=repo.isoformat(resource.updated_at),
    )


# -- sites -----------------------------------------------------------------------------------


@admin.get("/sites", response_model=SiteList, summary="List sites")
def list_sites(request: Request, ctx: RequestContext = Depends(admin_context)) -> SiteList:
    """Every site with its health, capacity and what it holds."""
    with _service(request).db.read() as session:
        return SiteList(sites=_site_views(session))


@admin.post(
    "/sites",
    response_model=SiteEnvelope,
    status_code=201,
    summary="Add a site and check it",
    responses={201: {"links": SITE_LINKS}},
)
def add_site(
    request: Request, body: SiteCreate, ctx: RequestContext = Depends(admin_context)
) -> SiteEnvelope:
    """Register a site, then check it at once (a driver call in the request path, on
    purpose: it is an operator action on the site itself), so the answer shows its
    health and it can take placements right away. 409 if the name is taken."""
    validate_site(body.name, body.driver, body.config)  # as the config file's sites are
    service = _service(request)
    if service.config.site_mode:
        raise Conflict(
            f"This Isthmus runs in site mode: it serves exactly one site"
            f" ({service.config.site_name}) and takes no others."
        )
    config = service.site_config(SiteConfig(body.name, body.driver, dict(body.config)))
    with service.db.session() as session:
        if session.get(Site, body.name) is not None:
            raise Conflict(f"Site {body.name} already exists.")
        session.add(
            Site(
                name=body.name,
                driver=body.driver,
                config=config,
                enabled=True,
                health="unknown",
                capacity={},
                usage={},
                allocated={},
                created_at=repo.utcnow(),
            )
        )
    service.sites.forget(body.name)  # a driver cached for an earlier site of this name
    check_site(service.db, service.sites, body.name)
    service.wake()
    with service.db.read() as session:
        return SiteEnvelope(site=_site_view(session, body.name))


@admin.get("/sites/{name}", response_model=SiteEnvelope, summary="Show a site")
def show_site(
    request: Request, name: str, ctx: RequestContext = Depends(admin_context)
) -> SiteEnvelope:
    with _service(request).db.read() as session:
        return SiteEnvelope(site=_site_view(session, name))


@admin.patch("/sites/{name}", response_model=SiteEnvelope, summary="Enable or disable a site")
def update_site(
    request: Request, name: str, body: SiteUpdate, ctx: RequestContext = Depends(admin_context)
) -> SiteEnvelope:
    """A disabled site takes no new placements; what it holds stays and is reconciled."""
    if body.enabled is None:
        raise BadRequest("Nothing to change: give 'enabled'.")
    service = _service(request)
    with service.db.session() as session:
        site = session.get(Site, name)
        if site is None:
            raise NotFound(f"Site {name} could not be found.")
        site.enabled = body.enabled
    with service.db.read() as session:
        return SiteEnvelope(site=_site_view(session, name))


@admin.delete("/sites/{name}", status_code=204, summary="Remove a site")
def remove_site(
    request: Request,
    name: str,
    force: bool = Query(
        default=False,
        description=(
            "Remove the site although it still holds resources (bound or placed there,"
            " or work queued): its bindings and work go, what was placed there shows"
            " ERROR. Logged as a WARNING naming the caller."
        ),
    ),
    ctx: RequestContext = Depends(admin_context),
) -> Response:
    """Forget a site. 409, with the count, while it still holds anything (resources
    bound or placed there, work queued for it), unless `force=true`
    (store/site_removal.py says what forcing does). What Isthmus ran for the site
    stops, and an embedded site's on-disk state is deleted, so a site added again
    under this name starts empty; a site of another cloud is left as it is. This
    calls the site in the request path, on purpose (SiteDriver.retire)."""
    service = _service(request)
    with service.db.session() as session:
        site = session.get(Site, name, with_for_update=True)
        if site is None:
            raise NotFound(f"Site {name} could not be found.")
        held = site_removal.holdings(session, name)
        if held.resources and not force:
            raise Conflict(
                f"Site {name} is in use: it holds {held.describe()}. Delete or move them"
                f" first, or remove it anyway, losing them: DELETE /isthmus/v1/sites/{name}"
                f"?force=true (isthmus site remove {name} --force)."
            )
        if held.resources:
            site_removal.let_go(session, name)
        driver, config = site.driver, dict(site.config)
        session.delete(site)
    if held.resources:
        log.warning(
            "site %s removed by force by user %s (%s, project %s): it held %s",
            name,
            ctx.token.user_name,
            ctx.user_id,
            ctx.token.project_name,
            held.describe(),
        )
    service.sites.retire(name, driver, config)
    return Response(status_code=204)


def _power(request: Request, name: str, down: bool) -> SiteEnvelope:
    service = _service(request)
    with service.db.read() as session:
        site = session.get(Site, name)
        if site is None:
            raise NotFound(f"Site {name} could not be found.")
        driver_name = site.driver
    if driver_name != "local":
        raise BadRequest(
            f"Site {name} uses the {driver_name!r} driver: only embedded (local) sites"
            " can be taken down and up by Isthmus."
        )
    driver = service.sites.get(name)
    if not isinstance(driver, PowerSwitch):
        raise BadRequest(f"Site {name} is not an embedded site.")
    driver.set_down(down)
    check_site(service.db, service.sites, name)
    if not down:
        service.wake()
    with service.db.read() as session:
        return SiteEnvelope(site=_site_view(session, name))


@admin.post("/sites/{name}/down", response_model=SiteEnvelope, summary="Take an embedded site down")
def site_down(
    request: Request, name: str, ctx: RequestContext = Depends(admin_context)
) -> SiteEnvelope:
    """Power off an embedded site (every call to it fails, as with an unreachable
    cloud) and check it at once so its health says `down`. This acts on the site
    in the request path, on purpose. 400 for sites of other drivers."""
    return _power(request, name, down=True)


@admin.post("/sites/{name}/up", response_model=SiteEnvelope, summary="Bring an embedded site up")
def site_up(
    request: Request, name: str, ctx: RequestContext = Depends(admin_context)
) -> SiteEnvelope:
    """Power an embedded site back on and check it at once; its waiting work is woken
    and converges. This acts on the site in the request path, on purpose. 400 for
    sites of other drivers."""
    return _power(request, name, down=False)


# -- resources and work ------------------------------------------------------------------------


@admin.get(
    "/resources/{resource_id}", response_model=ResourceDetail, summary="Why is this resource stuck"
)
def show_resource(
    request: Request, resource_id: str, ctx: RequestContext = Depends(admin_context)
) -> ResourceDetail:
    """The intent row of any resource (any project, also while deleting), the sites
    it is bound in, and the work queued for it with the last errors."""
    with _service(request).db.read() as session:
        resource = session.get(Resource, resource_id)
        if resource is None:
            raise NotFound(f"Resource {resource_id} could not be found.")
        bindings = session.scalars(
            select(Binding).where(Binding.resource_id == resource_id).order_by(Binding.site)
        )
        work = session.scalars(
            select(Work).where(Work.resource_id == resource_id).order_by(Work.site)
        )
        health = _site_health(session)
        now = time.time()
        return ResourceDetail(
            resource=_resource_view(resource),
            bindings=[
                BindingView(
                    site=b.site,
                    site_resource_id=b.site_resource_id,
                    applied_generation=b.applied_generation,
                    in_sync=b.applied_generation == resource.generation,
                    observed_status=b.observed_status,
                    last_error=b.last_error,
                    updated_at=repo.isoformat(b.updated_at),
                    drifted_at=repo.isoformat(b.drifted_at),
                )
                for b in bindings
            ],
            work=[_work_view(w, health, now) for w in work],
        )


@admin.post(
    "/resources/{resource_id}/recreate",
    response_model=RecreateResult,
    status_code=202,
    summary="Make a drifted resource again",
)
def recreate_resource(
    request: Request, resource_id: str, ctx: RequestContext = Depends(admin_context)
) -> RecreateResult:
    """A server or volume deleted in its site outside Isthmus (drift) is not made
    again by itself; this asks the engine to make it again there (it shows BUILD /
    creating meanwhile). 409 if it has not drifted or is being deleted."""
    service = _service(request)
    with service.db.session() as session:
        resource = session.get(Resource, resource_id)
        if resource is None:
            raise NotFound(f"Resource {resource_id} could not be found.")
        sites = recreate(session, resource)
        view = _resource_view(resource)
    service.wake()
    return RecreateResult(resource=view, sites=sites)


@admin.get("/work", response_model=WorkSummary, summary="The work queue at a glance")
def work_summary(
    request: Request,
    limit: int = Query(50, ge=0, le=1000, description="How many items of each list, 0-1000."),
    ctx: RequestContext = Depends(admin_context),
) -> WorkSummary:
    """Queued work per site and kind, the oldest item, up to `limit` items whose
    last attempt failed (most attempts first), and up to `limit` items copying data
    (images) into their site now, with their progress."""
    with _service(request).db.read() as session:
        health = _site_health(session)
        now = time.time()
        groups = [
            WorkGroup(
                site=site,
                kind=kind,
                site_health=health.get(site, "removed"),
                queued=count,
                with_errors=errors,
                leased=int(leased or 0),
                max_attempts=int(max_attempts or 0),
                oldest_age_seconds=round(max(0.0, now - float(oldest or now)), 3),
            )
            for site, kind, count, errors, leased, max_attempts, oldest in session.execute(
                select(
                    Work.site,
                    Work.kind,
                    func.count(),
                    func.count(Work.last_error),
                    func.sum(case((Work.lease_until >= now, 1), else_=0)),
                    func.max(Work.attempts),
                    func.min(Work.created_at),
                )
                .group_by(Work.site, Work.kind)
                .order_by(Work.site, Work.kind)
            )
        ]
        oldest = session.scalar(select(Work).order_by(Work.created_at, Work.id).limit(1))
        errors = session.scalars(
            select(Work)
            .where(Work.last_error.is_not(None))
            .order_by(Work.attempts.desc(), Work.created_at)
            .limit(limit)
        )
        copies = session.scalars(
            select(Work)
            .where(Work.progress_total.is_not(None))
            .order_by(Work.site, Work.created_at)
            .limit(limit)
        )
        return WorkSummary(
            total=sum(group.queued for group in groups),
            groups=groups,
            oldest=_work_view(oldest, health, now) if oldest is not None else None,
            errors=[_work_view(w, health, now) for w in errors],
            copies=[_work_view(w, health, now) for w in copies],
        )


@admin.get("/health", response_model=ServiceHealth, summary="Service liveness (no auth)")
def service_health(request: Request) -> ServiceHealth:
    """200 while this process serves and its store answers; counts sites per health."""
    service = _service(request)
    with service.db.read() as session:
        counts = {
            health: count
            for health, count in session.execute(
                select(Site.health, func.count()).group_by(Site.health)
            )
        }
    return ServiceHealth(
        status="ok", version=__version__, engine=bool(service.run_engine), sites=counts
    )


router.include_router(admin)
router.include_router(admin_fabric.router)  # GET /isthmus/v1/fabric
router.include_router(metrics.router)
