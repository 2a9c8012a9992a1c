"""The engine drives intent to ACTIVE in embedded sites and cleans up on delete."""

from __future__ import annotations

from pathlib import Path

from isthmus.store import repo
from isthmus.store.tables import Binding, Resource
from tests.support import add_network, add_server, make_service, project_id


def test_servers_become_active_and_go_away(tmp_path: Path, db_url: str) -> None:
    service = make_service(tmp_path, db_url)
    try:
        project = project_id(service)
        net, _ = add_network(service, project)
        servers = [add_server(service, project, net, f"vm{i}") for i in range(6)]
        assert service.engine.run_until_idle(30)
        with service.db.read() as session:
            rows = [session.get(Resource, s) for s in servers]
            assert {r.status for r in rows if r} == {"ACTIVE"}
            assert len({r.site for r in rows if r}) == 3  # spread by free capacity
        with service.db.session() as session:
            for s in servers:
                resource = session.get(Resource, s)
                assert resource is not None
                repo.mark_deleting(session, resource)
                for port in session.query(Resource).filter_by(kind="port", device_id=s):
                    repo.mark_deleting(session, port)
        assert service.engine.run_until_idle(30)
        with service.db.read() as session:
            assert all(session.get(Resource, s) is None for s in servers)
            assert session.query(Binding).count() == 0
        for name in ("site-a", "site-b", "site-c"):
            assert service.sites.get(name).inventory() == []
    finally:
        service.stop()
