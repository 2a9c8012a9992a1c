"""Site outages: the store keeps answering, other sites proceed, work aimed at
the down site waits with a visible reason, and everything converges (creates
and deletes) when it comes back, without intervention."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from isthmus.engine.health import check_site
from isthmus.sites.local import LocalDriver
from isthmus.store import repo
from isthmus.store.tables import Resource, Site, Work
from tests.support import add_network, add_server, make_service, project_id


def _status(service, server_id: str) -> str:  # noqa: ANN001
    with service.db.read() as session:
        row = session.get(Resource, server_id)
        return row.status if row else "gone"


def _take(service, site: str, down: bool) -> None:  # noqa: ANN001
    driver = service.sites.get(site)
    assert isinstance(driver, LocalDriver)
    driver.set_down(down)
    assert check_site(service.db, service.sites, site) == ("down" if down else "up")


def test_creates_wait_for_a_down_site_and_converge_when_it_returns(
    tmp_path: Path, db_url: str
) -> None:
    service = make_service(tmp_path, db_url)
    try:
        project = project_id(service)
        net, _ = add_network(service, project)
        _take(service, "site-b", down=True)
        waiting = [add_server(service, project, net, f"b{i}", az="site-b") for i in range(3)]
        others = [add_server(service, project, net, f"a{i}", az="site-a") for i in range(3)]
        assert service.engine.run_until_idle(20)
        assert {_status(service, s) for s in others} == {"ACTIVE"}
        assert {_status(service, s) for s in waiting} == {"BUILD"}
        with service.db.read() as session:
            site = session.get(Site, "site-b")
            assert site is not None and site.health == "down"
            assert "down" in (site.last_error or "")
            queued = session.scalars(select(Work).where(Work.site == "site-b")).all()
            assert queued, "work for the down site must stay queued"
        # a placement without a zone avoids the down site
        free = add_server(service, project, net, "anywhere")
        with service.db.read() as session:
            placed = session.get(Resource, free)
            assert placed is not None and placed.site != "site-b"
        _take(service, "site-b", down=False)
        assert service.engine.run_until_idle(20)
        assert {_status(service, s) for s in waiting} == {"ACTIVE"}
        tags = [o.isthmus_id for o in service.sites.get("site-b").inventory() if o.kind == "server"]
        assert sorted(tags) == sorted(waiting)
    finally:
        service.stop()


def test_a_failing_site_call_leaves_a_visible_reason(tmp_path: Path, db_url: str) -> None:
    service = make_service(tmp_path, db_url)
    try:
        project = project_id(service)
        net, _ = add_network(service, project)
        driver = service.sites.get("site-c")
        assert isinstance(driver, LocalDriver)
        driver.set_down(True)  # health has not noticed yet: the engine's call fails
        server = add_server(service, project, net, "c0", az="site-c")
        service.engine.run_batch()
        service.engine.run_batch()
        with service.db.read() as session:
            row = session.get(Resource, server)
            assert row is not None and row.status == "BUILD"
            # the engine noticed before the health check did, and says so
            assert "site-c is down" in (repo.pending_reason(session, row) or "")
            site = session.get(Site, "site-c")
            assert site is not None and site.health == "down"
        driver.set_down(False)
        check_site(service.db, service.sites, "site-c")
        assert service.engine.run_until_idle(20)
        assert _status(service, server) == "ACTIVE"
    finally:
        service.stop()


def test_a_delete_during_an_outage_is_carried_out_when_the_site_returns(
    tmp_path: Path, db_url: str
) -> None:
    service = make_service(tmp_path, db_url)
    try:
        project = project_id(service)
        net, _ = add_network(service, project)
        server = add_server(service, project, net, "doomed", az="site-b")
        keep = add_server(service, project, net, "kept", az="site-b")
        assert service.engine.run_until_idle(20)
        _take(service, "site-b", down=True)
        with service.db.session() as session:
            row = session.get(Resource, server)
            assert row is not None
            repo.mark_deleting(session, row)
            for port in session.scalars(select(Resource).where(Resource.device_id == server)):
                repo.mark_deleting(session, port)
        assert service.engine.run_until_idle(10)
        with service.db.read() as session:
            assert session.get(Resource, server) is not None  # still in the site
        _take(service, "site-b", down=False)
        assert service.engine.run_until_idle(20)
        with service.db.read() as session:
            assert session.get(Resource, server) is None
        servers = {
            o.isthmus_id for o in service.sites.get("site-b").inventory() if o.kind == "server"
        }
        assert servers == {keep}
        # nothing deleted comes back on later passes
        with service.db.session() as session:
            kept = session.get(Resource, keep)
            assert kept is not None
            repo.change(session, kept, name="renamed")
        assert service.engine.run_until_idle(20)
        servers = {
            o.isthmus_id for o in service.sites.get("site-b").inventory() if o.kind == "server"
        }
        assert servers == {keep}
    finally:
        service.stop()
