"""Provisioning throughput: servers per second reaching ACTIVE across N embedded
sites, control plane only, zero boot delay.

Intent for all servers (a port each, on one network) is written first, through
the same store functions the Compute API uses, then the engine drains the queue
with its worker threads; the figure is servers ACTIVE / wall-clock seconds.

    .venv/bin/python bench/provision_throughput.py [--servers 2000] [--sites 10]
        [--workers 4] [--database URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from isthmus.config import Config, SiteConfig
from isthmus.engine.worker import EngineOptions
from isthmus.intent import servers as intent_servers
from isthmus.model import ipam
from isthmus.service import Service
from isthmus.store import repo
from isthmus.store.tables import Project, Resource


def write_intent(service: Service, servers: int) -> None:
    with service.db.session() as session:
        project = session.scalar(select(Project.id).where(Project.name == "demo"))
        assert project is not None
        network = repo.add(
            session,
            "network",
            project_id=project,
            name="bench",
            status="ACTIVE",
            spec={"mtu": 1450},
        )
        cidr = ipam.parse_cidr("10.0.0.0/16")
        gateway = ipam.default_gateway(cidr)
        repo.add(
            session,
            "subnet",
            project_id=project,
            parent_id=network.id,
            status="ACTIVE",
            spec={
                "cidr": str(cidr),
                "ip_version": 4,
                "gateway_ip": gateway,
                "allocation_pools": ipam.default_pools(cidr, gateway),
            },
        )
    batch = 200
    for start in range(0, servers, batch):
        with service.db.session() as session:
            net = session.get(Resource, network.id)
            assert net is not None
            for index in range(start, min(servers, start + batch)):
                intent_servers.add_server(
                    session,
                    project_id=project,
                    name=f"vm-{index}",
                    need={"vcpus": 1, "ram_mb": 64, "disk_gb": 1},
                    spec={"power_on": True},
                    nics=[intent_servers.Nic(net)],
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-") as tmp:
        config = Config(
            data_dir=Path(tmp),
            database=args.database,
            workers=args.workers,
            sites=[
                SiteConfig(
                    f"site-{i:02d}",
                    "local",
                    {"boot_seconds": 0, "vcpus": 100000, "ram_mb": 10**8, "disk_gb": 10**7},
                )
                for i in range(args.sites)
            ],
        )
        service = Service(config)
        service.engine.options = EngineOptions(workers=args.workers, batch=32)
        service.bootstrap()
        service.health.check_all()
        started = time.perf_counter()
        write_intent(service, args.servers)
        accepted = time.perf_counter() - started
        started = time.perf_counter()
        service.engine.start()
        active = 0
        while time.perf_counter() - started < 600:
            with service.db.read() as session:
                active = int(
                    session.scalar(
                        select(func.count())
                        .select_from(Resource)
                        .where(Resource.kind == "server", Resource.status == "ACTIVE")
                    )
                    or 0
                )
            if active >= args.servers:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        service.stop()
    db = "sqlite" if not args.database else args.database.split(":")[0]
    print(
        f"provision_throughput db={db} sites={args.sites} workers={args.workers}"
        f" servers={args.servers}"
    )
    print(f"  intent accepted: {args.servers / accepted:8.1f} servers/s ({accepted:.2f} s)")
    print(
        f"  reached ACTIVE:  {active / elapsed:8.1f} servers/s ({elapsed:.2f} s, {active} active)"
    )


if __name__ == "__main__":
    main()
