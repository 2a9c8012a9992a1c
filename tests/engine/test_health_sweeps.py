"""engine/health.py's sweep schedule, with a manual clock instead of sleeping: each site
that is not down is swept once per `sweep_interval`, a down site never."""

from __future__ import annotations

from pathlib import Path

from isthmus.engine.health import HealthMonitor
from isthmus.store.tables import Site
from tests.support import make_service
from tests.waiting import ManualClock


def test_each_site_that_is_up_is_swept_once_per_interval(tmp_path: Path) -> None:
    service = make_service(tmp_path / "data")
    clock = ManualClock()
    health = HealthMonitor(service.db, service.sites, sweep_interval=30.0, clock=clock)
    try:
        assert sorted(r.site for r in health.sweep_due()) == ["site-a", "site-b", "site-c"]
        assert health.sweep_due() == []  # just swept
        clock.advance(29.9)
        assert health.sweep_due() == []
        with service.db.session() as session:
            site = session.get(Site, "site-b")
            assert site is not None
            site.health = "down"
        clock.advance(0.1)
        assert sorted(r.site for r in health.sweep_due()) == ["site-a", "site-c"]
        health.sweep_interval = 0  # sweeping off
        clock.advance(3600)
        assert health.sweep_due() == []
    finally:
        service.stop()
