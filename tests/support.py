"""Test support: build a bootstrapped Service on a given database, and write
intent the way the API does (so engine tests need no HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from isthmus.config import Config, SiteConfig
from isthmus.intent import servers
from isthmus.service import Service
from isthmus.store import repo, segments
from isthmus.store.tables import Project, Resource, Work
from tests.fixtures.isthmus_process import password_auth
from tests.waiting import WaitTimeout, wait_for


def make_service(
    data_dir: Path,
    db_url: str | None = None,
    sites: int = 3,
    boot_seconds: float = 0.0,
    run_engine: bool = False,
    **site_config: Any,
) -> Service:
    config = Config(
        data_dir=data_dir,
        database=db_url,
        workers=2,
        health_interval=0.5,
        sites=[
            SiteConfig(
                f"site-{chr(ord('a') + i)}", "local", {"boot_seconds": boot_seconds, **site_config}
            )
            for i in range(sites)
        ],
    )
    service = Service(config, run_engine=run_engine)
    service.bootstrap()
    service.health.check_all()
    return service


def project_id(service: Service, name: str = "demo") -> str:
    with service.db.read() as session:
        from sqlalchemy import select

        return session.scalar(select(Project.id).where(Project.name == name)) or ""


def add_network(
    service: Service, project: str, cidr: str = "10.0.0.0/24", name: str = "net"
) -> tuple[str, str]:
    from isthmus.model import ipam

    with service.db.session() as session:
        spec = {"mtu": 1450, "segmentation_id": segments.allocate_vni(session)}
        net = repo.add(
            session, "network", project_id=project, name=name, status="ACTIVE", spec=spec
        )
        network = ipam.parse_cidr(cidr)
        gateway = ipam.default_gateway(network)
        subnet = repo.add(
            session,
            "subnet",
            project_id=project,
            name=f"{name}-sub",
            parent_id=net.id,
            status="ACTIVE",
            spec={
                "cidr": cidr,
                "ip_version": network.version,
                "gateway_ip": gateway,
                "allocation_pools": ipam.default_pools(network, gateway),
            },
        )
        return net.id, subnet.id


def add_server(
    service: Service,
    project: str,
    network_id: str,
    name: str = "vm",
    az: str | None = None,
    image_id: str | None = None,
) -> str:
    """A server of 1 vCPU, 512 MiB, 1 GiB on one network, written by the same
    intent function the Compute API boots with (placed, its port made, enqueued)."""
    with service.db.session() as session:
        net = session.get(Resource, network_id)
        assert net is not None
        server = servers.add_server(
            session,
            project_id=project,
            name=name,
            need={"vcpus": 1, "ram_mb": 512, "disk_gb": 1},
            spec={"image_id": image_id, "power_on": True},
            availability_zone=az,
            nics=[servers.Nic(net)],
        )
        return server.id


# -- API clients ---------------------------------------------------------------------------


class Cloud:
    """A bootstrapped service with its API: `client` speaks HTTP in-process,
    `admin`/`demo` are auth headers, `url` is set when served over real HTTP."""

    def __init__(self, service: Service) -> None:
        from fastapi.testclient import TestClient

        from isthmus.api.app import create_app

        self.service = service
        self.app = create_app(service)
        self.client = TestClient(self.app)
        self.url = ""
        self.clouds_yaml: Path | None = None
        self.admin = self.headers("admin", "admin")
        self.demo = self.headers("demo", "demo")

    def token(self, user: str, project: str, password: str | None = None) -> str:
        body = password_auth(user, password or self.service.passwords[user], project)
        response = self.client.post("/identity/v3/auth/tokens", json=body)
        assert response.status_code == 201, response.text
        return response.headers["X-Subject-Token"]

    def headers(self, user: str, project: str, password: str | None = None) -> dict[str, str]:
        return {"X-Auth-Token": self.token(user, project, password)}

    def new_member(self, name: str) -> dict[str, str]:
        """A new project with one member user; returns that user's auth headers."""
        project = self.client.post(
            "/identity/v3/projects", headers=self.admin, json={"project": {"name": name}}
        ).json()["project"]
        user = self.client.post(
            "/identity/v3/users",
            headers=self.admin,
            json={
                "user": {
                    "name": name,
                    "password": f"{name}-pw",
                    "default_project_id": project["id"],
                }
            },
        ).json()["user"]
        role = self.client.get("/identity/v3/roles?name=member", headers=self.admin).json()[
            "roles"
        ][0]
        self.client.put(
            f"/identity/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}",
            headers=self.admin,
        )
        return self.headers(name, name, f"{name}-pw")

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Let the engine (threads or this thread) finish all ready work; if it does
        not, the failure lists the work left (kind, site, attempts, last error)."""
        if self.service.engine.run_until_idle(timeout):
            return
        with self.service.db.read() as session:
            left = [
                f"{w.kind} {w.resource_id} in {w.site}: {w.attempts} attempts,"
                f" waiting on {w.waiting_on}, last error {w.last_error!r}"
                for w in session.scalars(select(Work).order_by(Work.id).limit(20))
            ]
        raise AssertionError("engine did not go idle; work left:\n" + "\n".join(left))


def serve_in_thread(cloud: Cloud, data_dir: Path) -> Any:
    """Serve `cloud` over real HTTP on a free loopback port; returns the uvicorn server."""
    import contextlib
    import socket
    import threading

    import uvicorn

    from isthmus.cli.clouds import write_clouds_yaml

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(cloud.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with contextlib.suppress(WaitTimeout):  # as before: after 10 s, go on either way
        wait_for(lambda: server.started, timeout=10, interval=0.02, what="uvicorn to start")
    cloud.url = f"http://127.0.0.1:{port}"
    cloud.service.config.public_url = cloud.url
    cloud.clouds_yaml = write_clouds_yaml(
        data_dir / "clouds.yaml", cloud.url, cloud.service.passwords
    )
    server.thread = thread  # type: ignore[attr-defined]
    return server
