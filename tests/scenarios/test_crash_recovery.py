"""Crashes lose no accepted work and make no twins.

- `isthmus up` is killed with SIGKILL in the middle of provisioning 50 servers
  across three sites, then restarted on the same data dir: every accepted server
  ends ACTIVE, none is duplicated in any site, nothing is left orphaned.
- Several `isthmus worker` processes on one PostgreSQL database drain the same
  queue without applying any item twice (twins would show in the sites, whose
  look-up-then-create is not atomic, like a real cloud API).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from isthmus.sites.local import LocalDriver
from isthmus.store.tables import Binding, Resource
from tests.fixtures.isthmus_process import (
    ISTHMUS,
    Running,
    clean_env,
    password_token,
    start_isthmus,
)
from tests.support import add_network, add_server, make_service, project_id
from tests.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.slow

SITES = ("site-a", "site-b", "site-c")


def _servers(client: httpx.Client, url: str) -> list[dict]:
    response = client.get(f"{url}/compute/v2.1/servers/detail", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()["servers"]


def _site_objects(data_dir: Path) -> dict[str, Counter[tuple[str, str]]]:
    """(kind, isthmus id) -> count, per embedded site, read from the sites' own state."""
    found = {}
    for site in SITES:
        driver = LocalDriver(site, data_dir / "sites" / site)
        found[site] = Counter((o.kind, o.isthmus_id) for o in driver.inventory())
        driver.close()
    return found


def test_sigkill_mid_provisioning_then_restart_converges(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "isthmus.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workers": 2,
                "sites": [
                    {"name": s, "driver": "local", "config": {"boot_seconds": 1.5}} for s in SITES
                ],
            }
        )
    )
    running: Running = start_isthmus(data_dir, None, "--config", str(config))
    restarted: Running | None = None
    try:
        password = yaml.safe_load((data_dir / "secrets.yaml").read_text())["demo"]
        client = httpx.Client(
            headers={"X-Auth-Token": password_token(running.url, "demo", password)}, timeout=30
        )
        net = client.post(
            f"{running.url}/network/v2.0/networks", json={"network": {"name": "crash-net"}}
        ).json()["network"]
        client.post(
            f"{running.url}/network/v2.0/subnets",
            json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": 4}},
        ).raise_for_status()
        accepted = []
        for index in range(50):
            response = client.post(
                f"{running.url}/compute/v2.1/servers",
                json={
                    "server": {
                        "name": f"crash-{index}",
                        "flavorRef": "1",
                        "imageRef": _image(client, running),
                        "networks": [{"uuid": net["id"]}],
                        "availability_zone": SITES[index % 3],
                    }
                },
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["server"]["id"])
        # kill while provisioning is under way: some servers made in sites, not all ACTIVE

        def five_made() -> bool:
            made = sum(
                1
                for counts in _site_objects(data_dir).values()
                for kind, _ in counts
                if kind == "server"
            )
            return made >= 5

        with contextlib.suppress(WaitTimeout):  # kill then anyway; the assertions below check
            wait_for(five_made, timeout=30, interval=0.05, what="five servers made in sites")
        active_before = Counter(s["status"] for s in _servers(client, running.url))["ACTIVE"]
        running.kill()
        made_before = sum(
            1
            for counts in _site_objects(data_dir).values()
            for (kind, _), n in counts.items()
            if kind == "server"
        )
        assert 0 < made_before, "the kill came before any server reached a site"
        assert active_before < 50, "the kill came after provisioning had finished"

        restarted = start_isthmus(data_dir, None, "--config", str(config))
        client.headers["X-Auth-Token"] = password_token(restarted.url, "demo", password)
        servers: list[dict] = []

        def all_active() -> bool:
            servers[:] = _servers(client, restarted.url)
            return len(servers) == 50 and all(s["status"] == "ACTIVE" for s in servers)

        with contextlib.suppress(WaitTimeout):  # the assertions below say what is wrong
            wait_for(all_active, timeout=90, interval=0.5, what="50 servers ACTIVE")
        assert sorted(s["id"] for s in servers) == sorted(accepted)
        assert {s["status"] for s in servers} == {"ACTIVE"}
        for server in servers:
            assert server["OS-EXT-AZ:availability_zone"] == SITES[int(server["name"][6:]) % 3]
        assert_sites_hold_exactly(restarted, servers)
    finally:
        running.kill()
        if restarted is not None:
            restarted.stop()


def _image(client: httpx.Client, running: Running) -> str:
    images = client.get(
        f"{running.url}/image/v2/images", params={"name": "isthmus-minimal"}
    ).json()["images"]
    return str(images[0]["id"])


def assert_sites_hold_exactly(running: Running, servers: list[dict]) -> None:
    """No twins, no orphans: each site holds exactly the servers the API places there,
    each object once, and every object in every site is a bound resource."""
    objects = _site_objects(running.data_dir)
    for site, counts in objects.items():
        twins = {key: n for key, n in counts.items() if n > 1}
        assert not twins, f"duplicates in {site}: {twins}"
        in_site = {i for (kind, i) in counts if kind == "server"}
        assert in_site == {s["id"] for s in servers if s["OS-EXT-AZ:availability_zone"] == site}
    _assert_every_object_is_bound(running, objects)


def _assert_every_object_is_bound(running: Running, objects: dict) -> None:  # noqa: ANN401
    from isthmus.store.db import Database

    db = Database(f"sqlite:///{running.data_dir / 'isthmus.db'}")
    try:
        with db.read() as session:
            bound = set(session.execute(select(Binding.site, Binding.kind, Binding.resource_id)))
        for site, counts in objects.items():
            for kind, isthmus_id in counts:
                assert (site, kind, isthmus_id) in bound, f"orphan {kind} {isthmus_id} in {site}"
    finally:
        db.dispose()


def test_several_worker_processes_on_postgresql_never_double_apply(
    tmp_path: Path, postgres_server
) -> None:  # noqa: ANN001
    from tests.fixtures.postgres import create_database

    url = create_database(postgres_server, f"isthmus_workers_{int(time.time())}")
    data_dir = tmp_path / "data"
    service = make_service(data_dir, url)  # schema, identities, three sites; no engine
    workers: list[subprocess.Popen[bytes]] = []
    try:
        project = project_id(service)
        net, _ = add_network(service, project)
        servers = [add_server(service, project, net, f"w{i}", az=SITES[i % 3]) for i in range(90)]
        for index in range(3):
            log = (tmp_path / f"worker-{index}.log").open("wb")
            workers.append(
                subprocess.Popen(
                    [
                        str(ISTHMUS),
                        "worker",
                        "--database",
                        url,
                        "--data-dir",
                        str(data_dir),
                        "--workers",
                        "3",
                        "--log-level",
                        "warning",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=clean_env(),
                )
            )
        statuses: Counter[str] = Counter()

        def all_active() -> bool:
            nonlocal statuses
            with service.db.read() as session:
                statuses = Counter(
                    session.scalars(select(Resource.status).where(Resource.kind == "server"))
                )
            return statuses["ACTIVE"] == len(servers)

        with contextlib.suppress(WaitTimeout):  # the assertion below says what is wrong
            wait_for(all_active, timeout=90, interval=0.3, what="every server ACTIVE")
        assert statuses["ACTIVE"] == len(servers), statuses
        for site, counts in _site_objects(data_dir).items():
            twins = {key: n for key, n in counts.items() if n > 1}
            assert not twins, f"work applied twice in {site}: {twins}"
            assert sum(1 for kind, _ in counts if kind == "server") == 30
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        service.stop()
