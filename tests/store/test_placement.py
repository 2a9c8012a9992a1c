"""store/placement.py without HTTP: placement reads the sites from the store, and a
server's placement claims its size in `sites.allocated` in the caller's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from isthmus.errors import BadRequest, Conflict
from isthmus.store import placement, repo
from isthmus.store.db import Database
from isthmus.store.tables import Site

NEED = {"vcpus": 4, "ram_mb": 8192, "disk_gb": 100, "servers": 1}


def _allocated(db: Database) -> dict[str, dict]:
    with db.read() as session:
        return {s.name: dict(s.allocated) for s in session.query(Site).order_by(Site.name)}


def test_place_claims_the_size_and_the_next_server_goes_where_room_is(db: Database) -> None:
    with db.session() as session:
        first = placement.place(session, NEED, None)
        second = placement.place(session, NEED, None)
        third = placement.place(session, NEED, None)
    assert (first, second, third) == ("site-a", "site-b", "site-c")  # ties: by name
    claimed = {"vcpus": 4, "ram_mb": 8192, "disk_gb": 100, "servers": 1}
    assert _allocated(db) == {"site-a": claimed, "site-b": claimed, "site-c": claimed}
    with db.session() as session:
        placement.release(session, "site-b", NEED)
        assert placement.place(session, NEED, None) == "site-b"  # the most room again
        placement.release(session, "site-c", NEED)
        placement.release(session, "site-c", NEED)  # never below zero
    assert _allocated(db)["site-c"] == {"vcpus": 0, "ram_mb": 0, "disk_gb": 0, "servers": 0}


def test_a_rolled_back_placement_claims_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        placement.place(session, NEED, "site-a")
        raise RuntimeError("the create failed after placement")
    assert _allocated(db)["site-a"] == {}


def test_place_fills_sites_up_and_then_refuses(db: Database) -> None:
    with db.session() as session:  # capacity 16 vCPU per site: 4 servers each
        placed = [placement.place(session, NEED, None) for _ in range(12)]
        assert sorted(placed) == ["site-a"] * 4 + ["site-b"] * 4 + ["site-c"] * 4
        with pytest.raises(Conflict, match="No valid host was found"):
            placement.place(session, NEED, None)
        # a pinned zone is the user's choice: accepted, and claimed
        assert placement.place(session, NEED, "site-a") == "site-a"
    assert _allocated(db)["site-a"]["vcpus"] == 20


def test_place_among_and_the_health_and_enabled_flags_of_the_sites(db: Database) -> None:
    with db.session() as session:
        session.execute(update(Site).where(Site.name == "site-a").values(health="down"))
        session.execute(update(Site).where(Site.name == "site-b").values(enabled=False))
        assert placement.place(session, NEED, None) == "site-c"
        assert placement.place(session, NEED, None, among=["site-a", "site-b", "site-c"]) == (
            "site-c"
        )
        with pytest.raises(Conflict):
            placement.place(session, NEED, None, among=["site-a", "site-b"])
        assert placement.place(session, NEED, "site-a") == "site-a"  # down, still takes it
        with pytest.raises(BadRequest, match="site-b is disabled"):
            placement.check_zone(session, "site-b")
        with pytest.raises(BadRequest, match="Known zones: site-a, site-b, site-c"):
            placement.check_zone(session, "site-z")
        assert placement.check_zone(session, "site-c") == "site-c"
    assert _allocated(db)["site-b"] == {}  # check_zone claims nothing


def test_a_volume_goes_where_disk_is_free_after_its_volumes_and_claims_nothing(
    db: Database,
) -> None:
    with db.session() as session:
        repo.add(session, "volume", project_id="p1", site="site-a", spec={"size": 50})
        repo.add(session, "volume", project_id="p1", site="site-b", spec={"size": 10})
        repo.add(session, "volume", project_id="p1", site=None, spec={"size": 999})
        assert placement.volume_site(session, None) == "site-c"
        repo.add(session, "volume", project_id="p1", site="site-c", spec={"size": 20})
        assert placement.volume_site(session, None) == "site-b"
        placement.claim(session, "site-b", {"disk_gb": 100})  # a server's disk counts
        assert placement.volume_site(session, None) == "site-c"
        assert placement.volume_site(session, "site-a") == "site-a"
    assert _allocated(db)["site-c"] == {}
