"""Prometheus metrics at `/metrics` (text exposition format). They show site names,
health, capacity and resource counts, so they are not public; an operator picks
one of two ways for Prometheus to reach them:

1. On the main port, with a Keystone token holding the admin role, sent as
   `X-Auth-Token` or as `Authorization: Bearer <token>` (401 without a token,
   403 for a token without the admin role). Prometheus sends a Bearer token with

       scrape_configs:
         - job_name: isthmus
           metrics_path: /metrics
           authorization: {credentials_file: /etc/prometheus/isthmus-token}
           static_configs: [{targets: ["isthmus.example:8780"]}]

   (`bearer_token_file:` in older Prometheus); the file holds a token of an
   admin user (`openstack token issue -f value -c id`), renewed before it
   expires, e.g. by a timer.
2. Without a token on a separate port that only this machine reaches: service
   config `metrics_listen: 127.0.0.1:9180` (host:port; the host must be a loopback
   address, anything else is refused at start, since what is served there needs
   no token). `isthmus up` then serves `/metrics` (and nothing else) there too, in
   the same process (`MetricsListener`); the main port still asks for the token.
   A Prometheus on the same machine scrapes `127.0.0.1:9180` with no credentials.

Nothing is counted in process memory: a custom collector reads the store at scrape
time, so every process sharing a database reports the same figures. Reads only.

    isthmus_store_up                        1 if the store answered this scrape
    isthmus_sites{health}                   number of sites per health
    isthmus_site_health{site,health}        1 for the site's current health, else 0
    isthmus_site_enabled{site}              1 if the site takes new placements
    isthmus_site_capacity{site,resource}    what the site reported it can hold
    isthmus_site_usage{site,resource}       what the site reported in use
    isthmus_work_queued{site}               work items queued for the site
    isthmus_work_errors{site}               of those, items whose last attempt failed
    isthmus_work_oldest_age_seconds{site}   age of the site's oldest queued item
    isthmus_resources{kind,status}          resources (intent rows) per kind and status
    isthmus_drifted{site,kind}              resources deleted in the site outside Isthmus
    isthmus_site_foreign_objects{site,kind} objects in the site Isthmus did not make
                                            (from the last sweep, engine/drift.py)
    isthmus_copy_bytes{site,kind,id}        bytes copied so far by a data copy (image)
                                            into the site under way (engine/progress.py)
    isthmus_copy_size_bytes{site,kind,id}   bytes that copy moves in all
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import Route

from isthmus.api.admin.models import ERRORS
from isthmus.api.context import RequestContext, get_context
from isthmus.store.db import Database
from isthmus.store.tables import Binding, Resource, Site, Work

log = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])
HEALTHS = ("up", "degraded", "down", "unknown")
CAPACITY_KEYS = ("vcpus", "ram_mb", "disk_gb")


class StoreCollector(Collector):
    """Computes every Isthmus gauge from the store when Prometheus scrapes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        store_up = GaugeMetricFamily("isthmus_store_up", "1 if the store answered this scrape.")
        try:
            families = self._families()
        except Exception:  # the scrape must still answer, saying the store is not there
            log.exception("metrics: reading the store failed")
            store_up.add_metric([], 0)
            yield store_up
            return
        store_up.add_metric([], 1)
        yield store_up
        yield from families

    def _families(self) -> list[Metric]:
        now = time.time()
        with self.db.read() as session:
            sites = [
                _SiteRow(s.name, s.health, s.enabled, dict(s.capacity or {}), dict(s.usage or {}))
                for s in session.scalars(select(Site).order_by(Site.name))
            ]
            foreign_counts = {
                name: dict((stored or {}).get("counts") or {})
                for name, stored in session.execute(select(Site.name, Site.foreign_objects))
            }
            drifted_rows = list(
                session.execute(
                    select(Binding.site, Binding.kind, func.count())
                    .where(Binding.drifted_at.is_not(None))
                    .group_by(Binding.site, Binding.kind)
                    .order_by(Binding.site, Binding.kind)
                )
            )
            work = {
                site: (count, errors, oldest)
                for site, count, errors, oldest in session.execute(
                    select(
                        Work.site,
                        func.count(),
                        func.count(Work.last_error),
                        func.min(Work.created_at),
                    ).group_by(Work.site)
                )
            }
            copies = list(
                session.execute(
                    select(
                        Work.site,
                        Work.kind,
                        Work.resource_id,
                        Work.progress_done,
                        Work.progress_total,
                    )
                    .where(Work.progress_total.is_not(None))
                    .order_by(Work.site, Work.resource_id)
                )
            )
            resources = list(
                session.execute(
                    select(Resource.kind, Resource.status, func.count())
                    .group_by(Resource.kind, Resource.status)
                    .order_by(Resource.kind, Resource.status)
                )
            )

        by_health = GaugeMetricFamily(
            "isthmus_sites", "Number of sites per health.", labels=["health"]
        )
        site_health = GaugeMetricFamily(
            "isthmus_site_health",
            "1 for the site's current health (up, degraded, down, unknown), else 0.",
            labels=["site", "health"],
        )
        enabled = GaugeMetricFamily(
            "isthmus_site_enabled", "1 if the site takes new placements.", labels=["site"]
        )
        capacity = GaugeMetricFamily(
            "isthmus_site_capacity",
            "What the site reported it can hold (vcpus, ram_mb, disk_gb).",
            labels=["site", "resource"],
        )
        usage = GaugeMetricFamily(
            "isthmus_site_usage",
            "What the site reported in use (vcpus, ram_mb, disk_gb).",
            labels=["site", "resource"],
        )
        queued = GaugeMetricFamily(
            "isthmus_work_queued", "Work items queued for the site.", labels=["site"]
        )
        errors = GaugeMetricFamily(
            "isthmus_work_errors",
            "Work items queued for the site whose last attempt failed.",
            labels=["site"],
        )
        oldest = GaugeMetricFamily(
            "isthmus_work_oldest_age_seconds",
            "Age of the site's oldest queued work item (0 when none).",
            labels=["site"],
        )
        counts = dict.fromkeys(HEALTHS, 0)
        for site in sites:
            health = site.health if site.health in HEALTHS else "unknown"
            counts[health] += 1
            for name in HEALTHS:
                site_health.add_metric([site.name, name], 1 if name == health else 0)
            enabled.add_metric([site.name], 1 if site.enabled else 0)
            for key in CAPACITY_KEYS:
                capacity.add_metric([site.name, key], _number(site.capacity.get(key)))
                usage.add_metric([site.name, key], _number(site.usage.get(key)))
        names = {site.name for site in sites} | set(work)
        for name in sorted(names):
            count, failed, first = work.get(name, (0, 0, None))
            queued.add_metric([name], count)
            errors.add_metric([name], failed)
            oldest.add_metric([name], max(0.0, now - first) if first else 0.0)
        for health, count in counts.items():
            by_health.add_metric([health], count)
        per_kind = GaugeMetricFamily(
            "isthmus_resources",
            "Resources (intent rows) per kind and status.",
            labels=["kind", "status"],
        )
        for kind, status, count in resources:
            per_kind.add_metric([kind, status or ""], count)
        drifted = GaugeMetricFamily(
            "isthmus_drifted",
            "Resources deleted in the site outside Isthmus (not recreated), per kind.",
            labels=["site", "kind"],
        )
        for site_name, kind, count in drifted_rows:
            drifted.add_metric([site_name, kind], count)
        foreign = GaugeMetricFamily(
            "isthmus_site_foreign_objects",
            "Objects in the site that Isthmus did not make, per kind (last sweep).",
            labels=["site", "kind"],
        )
        for site_name, counts in sorted(foreign_counts.items()):
            for kind, count in sorted(counts.items()):
                foreign.add_metric([site_name, kind], _number(count))
        copied = GaugeMetricFamily(
            "isthmus_copy_bytes",
            "Bytes copied so far by a data copy (image) into the site under way.",
            labels=["site", "kind", "id"],
        )
        copy_size = GaugeMetricFamily(
            "isthmus_copy_size_bytes",
            "Bytes a data copy (image) into the site under way moves in all.",
            labels=["site", "kind", "id"],
        )
        for site_name, kind, resource_id, done, total in copies:
            copied.add_metric([site_name, kind, resource_id], _number(done))
            copy_size.add_metric([site_name, kind, resource_id], _number(total))
        return [
            by_health,
            site_health,
            enabled,
            capacity,
            usage,
            queued,
            errors,
            oldest,
            per_kind,
            drifted,
            foreign,
            copied,
            copy_size,
        ]


@dataclass(frozen=True)
class _SiteRow:
    name: str
    health: str
    enabled: bool
    capacity: dict[str, object]
    usage: dict[str, object]


def _number(value: Any) -> float:
    """`value` (whatever a site reported) as a float, 0.0 when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def exposition(db: Database) -> Response:
    """The gauges listed in the module docstring, read from the store now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(db))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin token)",
    response_class=Response,
    responses={
        200: {
            "description": "The gauges, in Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: ERRORS[401],
        403: ERRORS[403],
    },
)
def prometheus_metrics(request: Request, ctx: RequestContext = Depends(get_context)) -> Response:
    """The gauges listed in api/admin/metrics.py, in Prometheus text format. Needs a token
    with the admin role as `X-Auth-Token` or `Authorization: Bearer` (401 without,
    403 without the role); `metrics_listen` serves them without one on loopback."""
    ctx.require_admin("reading /metrics")
    return exposition(request.app.state.service.db)


def metrics_app(db: Database) -> Starlette:
    """The app of the `metrics_listen` port: `/metrics` without a token, nothing else."""

    def endpoint(request: Request) -> Response:  # sync: Starlette runs it in a thread
        return exposition(db)

    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])


class MetricsListener:
    """Serves `metrics_app` on an already bound (loopback) socket in a thread of this
    process, next to the main server; `stop()` ends it."""

    def __init__(self, db: Database, sock: socket.socket) -> None:
        import uvicorn

        self.sock = sock
        self.server = uvicorn.Server(
            uvicorn.Config(metrics_app(db), log_config=None, access_log=False, lifespan="off")
        )
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [sock]},
            name="isthmus-metrics",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
