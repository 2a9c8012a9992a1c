"""Test support: build a bootstrapped Service on a given database, and write
intent the way the API does (so engine tests need no HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from isthmus.config import Config, SiteConfig
from isthmus.engine.queue import enqueue
from isthmus.service import Service
from isthmus.store import ports, repo
from isthmus.store.placement import place, server_need
from isthmus.store.tables import Project


def make_service(data_dir: Path, db_url: str | None = None, sites: int = 3,
                 boot_seconds: float = 0.0, run_engine: bool = False, **site_config: Any) -> Service:
    config = Config(
        data_dir=data_dir, database=db_url, workers=2, health_interval=0.5,
        sites=[SiteConfig(f"site-{chr(ord('a') + i)}", "local",
                          {"boot_seconds": boot_seconds, **site_config}) for i in range(sites)],
    )
    service = Service(config, run_engine=run_engine)
    service.bootstrap()
    service.health.check_all()
    return service


def project_id(service: Service, name: str = "demo") -> str:
    with service.db.read() as session:
        from sqlalchemy import select

        return session.scalar(select(Project.id).where(Project.name == name)) or ""


def add_network(service: Service, project: str, cidr: str = "10.0.0.0/24",
                name: str = "net") -> tuple[str, str]:
    from isthmus.model import ipam

    with service.db.session() as session:
        net = repo.add(session, "network", project_id=project, name=name, status="ACTIVE",
                       spec={"mtu": 1450})
        network = ipam.parse_cidr(cidr)
        gateway = ipam.default_gateway(network)
        subnet = repo.add(session, "subnet", project_id=project, name=f"{name}-sub",
                          parent_id=net.id, status="ACTIVE",
                          spec={"cidr": cidr, "ip_version": network.version,
                                "gateway_ip": gateway,
                                "allocation_pools": ipam.default_pools(network, gateway)})
        return net.id, subnet.id


def add_server(service: Service, project: str, network_id: str, name: str = "vm",
               az: str | None = None, image_id: str | None = None) -> str:
    with service.db.session() as session:
        spec = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1, "image_id": image_id,
                "power_on": True}
        site = place(session, server_need(spec), az)
        server = repo.add(session, "server", project_id=project, name=name, status="BUILD",
                          site=site, spec=spec)
        net = session.get(__import__("isthmus.store.tables", fromlist=["Resource"]).Resource,
                          network_id)
        assert net is not None
        ports.create_port(session, net, project_id=project, device_id=server.id,
                          device_owner=f"compute:{site}", site=site)
        enqueue(session, server.id, "server", site)
        return server.id
