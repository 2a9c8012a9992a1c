"""Embedded data-plane convergence: build N sites x M servers on one network with
the kernel data plane on (namespaces, VXLAN, FRR BGP EVPN, nftables) through the
engine, then add one server in a new site on that network and time "server
ACTIVE" -> its first ping answered by a server in another site. Figures only.

Needs root, FRR, nft and nsenter (prints why and exits 0 otherwise). Everything
is removed at the end by the fabric's own record (`EmbeddedFabric.teardown`).

    .venv/bin/python bench/fabric_convergence.py [--sites 3] [--servers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from isthmus.config import Config, SiteConfig
from isthmus.engine.health import check_site
from isthmus.fabric import capability
from isthmus.fabric.dataplane import EmbeddedFabric, nsexec
from isthmus.intent import servers
from isthmus.model import ipam
from isthmus.service import Service
from isthmus.store import repo, segments
from isthmus.store.tables import Project, Resource, Site

ROOT = Path(__file__).resolve().parents[1]
SITE = {"boot_seconds": 0.0, "data_plane": True}


def add_network(service: Service, project: str, cidr: str) -> str:
    with service.db.session() as session:
        spec = {"mtu": 1450, "segmentation_id": segments.allocate_vni(session)}
        net = repo.add(
            session, "network", project_id=project, name="bench", status="ACTIVE", spec=spec
        )
        network = ipam.parse_cidr(cidr)
        gateway = ipam.default_gateway(network)
        repo.add(
            session,
            "subnet",
            project_id=project,
            name="bench-sub",
            parent_id=net.id,
            status="ACTIVE",
            spec={
                "cidr": cidr,
                "ip_version": 4,
                "gateway_ip": gateway,
                "allocation_pools": ipam.default_pools(network, gateway),
            },
        )
        return net.id


def add_server(service: Service, project: str, network_id: str, name: str, site: str) -> str:
    """A server pinned to `site`, booted by the Compute API's own write path."""
    with service.db.session() as session:
        net = session.get(Resource, network_id)
        assert net is not None
        server = servers.add_server(
            session,
            project_id=project,
            name=name,
            need={"vcpus": 1, "ram_mb": 64, "disk_gb": 1},
            spec={"image_id": None, "power_on": True},
            availability_zone=site,
            nics=[servers.Nic(net)],
        )
        server_id = server.id
    service.wake()
    return server_id


def add_site(service: Service, name: str) -> None:
    """A data-plane embedded site registered at run time, as POST /admin/sites does."""
    with service.db.session() as session:
        session.add(
            Site(
                name=name,
                driver="local",
                config=dict(SITE),
                enabled=True,
                health="unknown",
                capacity={},
                usage={},
                allocated={},
                created_at=repo.utcnow(),
            )
        )
    service.sites.forget(name)
    check_site(service.db, service.sites, name)


def statuses(service: Service, ids: list[str]) -> dict[str, str]:
    with service.db.read() as session:
        rows = session.execute(select(Resource.id, Resource.status).where(Resource.id.in_(ids)))
        return {row.id: row.status for row in rows}


def wait_active(service: Service, ids: list[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = statuses(service, ids)
        if any(status == "ERROR" for status in got.values()):
            raise SystemExit(f"a server went to ERROR: {got}")
        if all(got.get(i) == "ACTIVE" for i in ids):
            return
        time.sleep(0.01)
    raise SystemExit(f"servers not ACTIVE after {timeout:.0f}s: {statuses(service, ids)}")


def ip_of(service: Service, server_id: str) -> str:
    with service.db.read() as session:
        port = session.query(Resource).filter_by(kind="port", device_id=server_id).one()
        return port.spec["fixed_ips"][0]["ip_address"]


def ping(fabric: EmbeddedFabric, source: str, target_ip: str, wait: float = 0.3) -> bool:
    probe = [sys.executable, "-m", "tests.fabric.icmp", target_ip, str(wait)]
    namespace = fabric.server_namespace(source)
    return nsexec(namespace, probe, timeout=10, cwd=ROOT).returncode == 0


def first_answer(fabric: EmbeddedFabric, source: str, target_ip: str, since: float) -> float:
    while time.monotonic() - since < 60:
        if ping(fabric, source, target_ip):
            return time.monotonic() - since
    raise SystemExit(f"{source} got no answer from {target_ip} in 60s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--servers", type=int, default=2, help="per site")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    missing = capability.missing()
    if missing:
        print(f"fabric_convergence: skipped, embedded data plane unavailable: {missing}")
        return 0
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-") as tmp:
        data = Path(tmp)
        config = Config(
            data_dir=data,
            workers=4,
            health_interval=0.5,
            sites=[SiteConfig(f"site-{i:02d}", "local", dict(SITE)) for i in range(args.sites)],
        )
        service = Service(config)
        fabric = EmbeddedFabric(data / "sites" / "_fabric")
        try:
            service.bootstrap()
            service.start()
            with service.db.read() as session:
                project = session.scalar(select(Project.id).where(Project.name == "demo"))
            assert project is not None
            started = time.monotonic()
            net = add_network(service, project, "10.40.0.0/16")
            built = [
                add_server(service, project, net, f"vm-{s}-{n}", f"site-{s:02d}")
                for s in range(args.sites)
                for n in range(args.servers)
            ]
            wait_active(service, built)
            active = time.monotonic() - started
            anchor_ip = ip_of(service, built[0])  # a server in site-00
            first_answer(fabric, built[-1], anchor_ip, time.monotonic())
            build = time.monotonic() - started
            print(
                f"fabric_convergence sites={args.sites} servers/site={args.servers}"
                f" ({len(built)} servers, one network)"
            )
            print(f"  build: all ACTIVE {active:6.2f} s, cross-site ping answered {build:6.2f} s")
            figures = []
            for run in range(args.repeat):
                site = f"grow-{run}"
                add_site(service, site)
                server = add_server(service, project, net, f"new-{run}", site)
                wait_active(service, [server])
                since = time.monotonic()
                figures.append(first_answer(fabric, server, anchor_ip, since))
                print(f"  new site {site}: ACTIVE -> answer from site-00 {figures[-1]:6.2f} s")
            if figures:
                print(f"  median ACTIVE -> first answer: {statistics.median(figures):6.2f} s")
        finally:
            service.stop()
            fabric.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
