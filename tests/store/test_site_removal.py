"""store/site_removal.py without HTTP: what a site still holds, and how a forced removal
leaves the store consistent without it."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from isthmus.store import repo, site_removal
from isthmus.store.db import Database
from isthmus.store.tables import Binding, Resource, Site, Work
from isthmus.store.work import enqueue


def _bind(session: Session, resource: Resource, site: str) -> None:
    session.add(
        Binding(
            resource_id=resource.id,
            site=site,
            kind=resource.kind,
            applied_generation=resource.generation,
            updated_at=repo.utcnow(),
        )
    )
    session.flush()


def _world(db: Database) -> dict[str, str]:
    """In site-b: a bound server (with its port) and volume, a network bound there and in
    site-a, a network only queued there, and a network being deleted there only."""
    with db.session() as session:
        server = repo.add(session, "server", project_id="p1", site="site-b", status="ACTIVE")
        port = repo.add(session, "port", project_id="p1", site="site-b", device_id=server.id)
        volume = repo.add(session, "volume", project_id="p1", site="site-b", status="available")
        spanning = repo.add(session, "network", project_id="p1")
        queued = repo.add(session, "network", project_id="p1", sites=["site-b"])
        leaving = repo.add(session, "network", project_id="p1")
        for resource in (server, port, volume, spanning, leaving):
            _bind(session, resource, "site-b")
        _bind(session, spanning, "site-a")
        repo.mark_deleting(session, leaving)  # a tombstone with work for site-b
        ids = {
            "server": server.id,
            "port": port.id,
            "volume": volume.id,
            "spanning": spanning.id,
            "queued": queued.id,
            "leaving": leaving.id,
        }
    return ids


def test_holdings_count_bound_placed_queued_and_distinct_resources(db: Database) -> None:
    ids = _world(db)
    with db.read() as session:
        held = site_removal.holdings(session, "site-b")
        assert (held.bound, held.placed, held.queued) == (5, 3, 2)
        assert held.resources == 6  # server, port, volume, spanning, queued, leaving
        assert held.describe() == (
            "6 resource(s): 5 bound there, 3 placed there, 2 work item(s) queued"
        )
        assert site_removal.holdings(session, "site-a") == site_removal.Holdings(1, 0, 0, 1)
        assert site_removal.holdings(session, "site-c").resources == 0
    assert ids


def test_let_go_forgets_the_site_and_marks_what_went_with_it(db: Database) -> None:
    ids = _world(db)
    with db.session() as session:
        site_removal.let_go(session, "site-b")
        session.execute(delete(Site).where(Site.name == "site-b"))
    with db.read() as session:
        assert session.scalars(select(Work).where(Work.site == "site-b")).all() == []
        assert session.scalars(select(Binding).where(Binding.site == "site-b")).all() == []
        server = session.get(Resource, ids["server"])
        volume = session.get(Resource, ids["volume"])
        assert server is not None and volume is not None
        assert server.status == "ERROR" and volume.status == "error"
        assert server.observed == {
            "fault": site_removal.gone_fault("server", "site-b"),
            "site": "site-b",
        }
        assert "Site site-b was removed from Isthmus" in server.observed["fault"]
        port = session.get(Resource, ids["port"])
        assert port is not None and port.status == ""  # ports are not given a status
        # the tombstone in no other site went, as the engine would have removed it
        assert session.get(Resource, ids["leaving"]) is None
        # the spanning network stays, still bound in site-a
        assert session.scalars(
            select(Binding.site).where(Binding.resource_id == ids["spanning"])
        ).all() == ["site-a"]
    # deleting what went with the site succeeds at once: no work goes to a removed site
    with db.session() as session:
        server = session.get(Resource, ids["server"])
        assert server is not None
        repo.mark_deleting(session, server)
    with db.read() as session:
        assert session.get(Resource, ids["server"]) is None


def test_let_go_keeps_a_tombstone_still_held_elsewhere(db: Database) -> None:
    with db.session() as session:
        net = repo.add(session, "network", project_id="p1")
        _bind(session, net, "site-a")
        _bind(session, net, "site-b")
        repo.mark_deleting(session, net)
        other = repo.add(session, "network", project_id="p1")
        _bind(session, other, "site-b")
        repo.mark_deleting(session, other)
        enqueue(session, other.id, "network", "site-c")  # still queued in site-c
    with db.session() as session:
        site_removal.let_go(session, "site-b")
    with db.read() as session:
        kept = session.get(Resource, net.id)
        assert kept is not None and kept.deleting
        assert session.get(Resource, other.id) is not None
        left = {(w.resource_id, w.site) for w in session.scalars(select(Work))}
        assert left == {(net.id, "site-a"), (other.id, "site-c")}
