"""store/repo.py without HTTP: `add`, `change` and `mark_deleting` are the only writers of
intent; each bumps the generation as documented and writes work rows for the sites
involved in the same transaction; a delete purges at once or leaves a tombstone."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import NotFound
from isthmus.store import repo
from isthmus.store.db import Database
from isthmus.store.placement import claim, server_need
from isthmus.store.tables import Binding, IpAllocation, MacAllocation, Resource, Site, Work


def _work(session: Session) -> set[tuple[str, str, str]]:
    return {(w.resource_id, w.kind, w.site) for w in session.scalars(select(Work))}


def _bind(session: Session, resource: Resource, site: str) -> None:
    session.add(
        Binding(
            resource_id=resource.id,
            site=site,
            kind=resource.kind,
            site_resource_id=f"in-{site}",
            applied_generation=resource.generation,
            updated_at=repo.utcnow(),
        )
    )
    session.flush()


def test_add_writes_generation_one_and_work_only_for_the_sites_given(db: Database) -> None:
    with db.session() as session:
        net = repo.add(session, "network", project_id="p1", name="n", spec={"mtu": 1450})
        server = repo.add(
            session, "server", project_id="p1", site="site-a", sites=["site-a"], status="BUILD"
        )
        given = repo.add(session, "network", project_id="p1", resource_id="chosen-id")
    with db.read() as session:
        stored = session.get(Resource, net.id)
        assert stored is not None
        assert (stored.generation, stored.deleting, stored.spec, stored.observed) == (
            1,
            False,
            {"mtu": 1450},
            {},
        )
        assert stored.created_at == stored.updated_at
        assert _work(session) == {(server.id, "server", "site-a")}
    assert given.id == "chosen-id"


def test_get_hides_other_kinds_other_projects_and_tombstones(db: Database) -> None:
    with db.session() as session:
        mine = repo.add(session, "network", project_id="p1")
        shared = repo.add(session, "flavor", project_id=None)
        assert repo.get(session, "network", mine.id, project_id="p1") is mine
        assert repo.get(session, "network", mine.id) is mine  # no project: any
        assert repo.get(session, "flavor", shared.id, project_id="p2") is shared
        with pytest.raises(NotFound, match=f"Network {mine.id} could not be found"):
            repo.get(session, "network", mine.id, project_id="p2")
        with pytest.raises(NotFound, match="Security group"):
            repo.get(session, "security_group", mine.id)
        with pytest.raises(NotFound):
            repo.get(session, "network", "no-such-id")
        _bind(session, mine, "site-a")
        repo.mark_deleting(session, mine)
        with pytest.raises(NotFound):
            repo.get(session, "network", mine.id)
        assert repo.get(session, "network", mine.id, include_deleting=True).deleting


def test_change_bumps_the_generation_merges_spec_and_enqueues_bound_sites(db: Database) -> None:
    with db.session() as session:
        net = repo.add(session, "network", project_id="p1", name="n", spec={"mtu": 1450, "x": 1})
        _bind(session, net, "site-b")
        before = net.updated_at
        repo.change(session, net, name="renamed", spec={"x": 2, "shared": True})
        repo.change(session, net, sites=["site-c"])
    with db.read() as session:
        stored = session.get(Resource, net.id)
        assert stored is not None
        assert stored.generation == 3 and stored.name == "renamed"
        assert stored.spec == {"mtu": 1450, "x": 2, "shared": True}
        assert stored.updated_at >= before
        assert _work(session) == {(net.id, "network", "site-b"), (net.id, "network", "site-c")}
        seq = {w.site: w.seq for w in session.scalars(select(Work))}
        assert seq == {"site-b": 2, "site-c": 1}  # a second request for a pair bumps seq


def test_change_of_a_resource_in_no_site_writes_no_work(db: Database) -> None:
    with db.session() as session:
        net = repo.add(session, "network", project_id="p1")
        repo.change(session, net, name="still intent only")
        assert net.generation == 2
    with db.read() as session:
        assert _work(session) == set()


def test_a_delete_of_a_resource_in_no_site_purges_it_and_its_addresses(db: Database) -> None:
    with db.session() as session:
        port = repo.add(session, "port", project_id="p1")
        session.add(IpAllocation(subnet_id="s", ip_address="10.0.0.2", port_id=port.id))
        session.add(MacAllocation(mac_address="fa:16:3e:00:00:01", port_id=port.id))
        session.flush()
        repo.mark_deleting(session, port)
    with db.read() as session:
        assert session.get(Resource, port.id) is None
        assert session.scalars(select(IpAllocation)).all() == []
        assert session.scalars(select(MacAllocation)).all() == []
        assert _work(session) == set()


def test_a_delete_of_a_bound_resource_leaves_a_tombstone_and_work_for_each_site(
    db: Database,
) -> None:
    with db.session() as session:
        net = repo.add(session, "network", project_id="p1")
        _bind(session, net, "site-a")
        _bind(session, net, "site-c")
        repo.mark_deleting(session, net)
    with db.read() as session:
        stored = session.get(Resource, net.id)
        assert stored is not None and stored.deleting and stored.generation == 2
        assert _work(session) == {(net.id, "network", "site-a"), (net.id, "network", "site-c")}


def test_a_delete_follows_queued_work_and_the_placed_site(db: Database) -> None:
    with db.session() as session:
        # queued for site-b (not yet bound there), placed in site-a
        server = repo.add(
            session, "server", project_id="p1", site="site-a", sites=["site-b"], status="BUILD"
        )
        repo.mark_deleting(session, server)
    with db.read() as session:
        stored = session.get(Resource, server.id)
        assert stored is not None and stored.deleting
        assert _work(session) == {(server.id, "server", "site-a"), (server.id, "server", "site-b")}


def test_a_delete_in_a_removed_site_purges_at_once(db: Database) -> None:
    with db.session() as session:
        server = repo.add(session, "server", project_id="p1", site="site-x", status="ERROR")
        repo.mark_deleting(session, server)  # site-x is not (or no longer) a site
    with db.read() as session:
        assert session.get(Resource, server.id) is None
        assert _work(session) == set()


def test_purging_a_server_gives_its_capacity_back(db: Database) -> None:
    spec = {"vcpus": 2, "ram_mb": 2048, "disk_gb": 20}
    with db.session() as session:
        server = repo.add(session, "server", project_id="p1", site="site-a", spec=spec)
        claim(session, "site-a", server_need(spec))
    with db.read() as session:
        site = session.get(Site, "site-a")
        assert site is not None
        assert site.allocated == {"vcpus": 2, "ram_mb": 2048, "disk_gb": 20, "servers": 1}
    with db.session() as session:
        stored = session.get(Resource, server.id)
        assert stored is not None
        repo.purge(session, stored)
    with db.read() as session:
        site = session.get(Site, "site-a")
        assert site is not None
        assert site.allocated == {"vcpus": 0, "ram_mb": 0, "disk_gb": 0, "servers": 0}


def test_purging_an_image_removes_its_data_once_committed(db: Database, tmp_path: Path) -> None:
    data = tmp_path / "image.raw"
    data.write_bytes(b"disk")
    with db.session() as session:
        image = repo.add(session, "image", project_id="p1", spec={"data_path": str(data)})
    with pytest.raises(RuntimeError), db.session() as session:
        stored = session.get(Resource, image.id)
        assert stored is not None
        repo.purge(session, stored)
        raise RuntimeError("rolled back")
    assert data.exists()  # nothing committed, nothing removed
    with db.session() as session:
        stored = session.get(Resource, image.id)
        assert stored is not None
        repo.purge(session, stored)
        assert data.exists()  # not before the commit
    assert not data.exists()
