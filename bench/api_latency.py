"""API latency: p50/p99 of the Compute API over real HTTP with 100,000 servers in
the store, on SQLite and on PostgreSQL in one run.

For each database a Service is bootstrapped with N embedded sites (its engine is
never started), the demo project gets the servers -- ACTIVE, spread over the
sites, with the spec the Compute API writes, one port each with a fixed IP (and
the IP/MAC allocations and site bindings the engine would have left) -- through
SQLAlchemy Core bulk inserts, and the real ASGI app is served by uvicorn on a
loopback port in a thread (after gc.freeze(), as `isthmus up` does). One
keep-alive httpx client then sends sequential requests:

- GET /compute/v2.1/servers/{id} for random servers (demo token);
- GET /compute/v2.1/servers/detail?limit=1000 and /servers?limit=1000 (demo), and
  /servers/detail?all_tenants=1&limit=1000 (admin): the first page, then pages
  after random markers (so at random depths);
- GET /compute/v2.1/servers/detail with filters checked in Python (a name, a
  name regex, a status nothing has): each reads the whole project;
- token validation: GET /servers/{id} again with the per-process token cache
  emptied before every request (a cold cache: decrypt, user, project, roles,
  revocation checks), and in-process `Service.verify_token` per call (cached:
  one identity-revision read and one stat; full; the Fernet decrypt alone).

PostgreSQL runs as a private throw-away server (tests/fixtures/postgres.py); when
none can be started here the bench prints "postgresql: skipped (reason)".

    .venv/bin/python bench/api_latency.py [--servers 100000] [--sites 10]
        [--show-requests 300] [--list-requests 30] [--filter-requests 10]
        [--token-requests 2000] [--databases sqlite,postgresql]
        [--compute-version 2.96]  (the compute microversion asked for; default none: 2.1)
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import math
import random
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from sqlalchemy import insert, select

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # for tests.fixtures.postgres
    sys.path.insert(0, str(REPO))

from isthmus.api.app import create_app  # noqa: E402
from isthmus.config import Config, SiteConfig  # noqa: E402
from isthmus.intent.servers import flavor_copy  # noqa: E402
from isthmus.model import ipam  # noqa: E402
from isthmus.service import DEFAULT_IMAGE_NAME, Service  # noqa: E402
from isthmus.store import ports, repo  # noqa: E402
from isthmus.store.placement import server_need  # noqa: E402
from isthmus.store.tables import (  # noqa: E402
    Binding,
    IpAllocation,
    MacAllocation,
    Project,
    Resource,
    Site,
    User,
)

CHUNK = 5000
SUBNET = "10.64.0.0/14"  # room for 262,000 addresses


# -- set-up --------------------------------------------------------------------------------------


def bootstrap(data_dir: Path, database: str | None, sites: int) -> Service:
    config = Config(
        data_dir=data_dir,
        database=database,
        sites=[
            SiteConfig(
                f"site-{i:02d}",
                "local",
                {"boot_seconds": 0, "vcpus": 10**6, "ram_mb": 10**9, "disk_gb": 10**8},
            )
            for i in range(sites)
        ],
    )
    service = Service(config, run_engine=False)
    service.bootstrap()
    return service


def populate(service: Service, servers: int, seed: int = 1) -> list[str]:
    """`servers` ACTIVE servers of the demo project with a port each; their ids."""
    rng = random.Random(seed)
    with service.db.session() as session:
        project = session.scalar(select(Project.id).where(Project.name == "demo"))
        user = session.scalar(select(User.id).where(User.name == "demo"))
        assert project is not None and user is not None
        group = ports.default_security_group(session, project)
        image = session.scalar(
            select(Resource.id).where(Resource.kind == "image", Resource.name == DEFAULT_IMAGE_NAME)
        )
        flavors = [
            flavor_copy(f)
            for f in session.scalars(
                select(Resource).where(Resource.kind == "flavor").order_by(Resource.id)
            )
        ][:3]
        site_names = list(session.scalars(select(Site.name).order_by(Site.name)))
        network = repo.add(
            session,
            "network",
            project_id=project,
            name="bench-net",
            status="ACTIVE",
            spec={"mtu": 1450, "admin_state_up": True, "shared": False, "external": False},
        )
        cidr = ipam.parse_cidr(SUBNET)
        gateway = ipam.default_gateway(cidr)
        subnet = repo.add(
            session,
            "subnet",
            project_id=project,
            parent_id=network.id,
            name="bench-subnet",
            status="ACTIVE",
            spec={
                "cidr": str(cidr),
                "ip_version": 4,
                "gateway_ip": gateway,
                "allocation_pools": ipam.default_pools(cidr, gateway),
                "enable_dhcp": True,
                "dns_nameservers": [],
                "host_routes": [],
            },
        )
        network_id, subnet_id = network.id, subnet.id
    first_ip = int(ipaddress.ip_address(gateway)) + 1
    start = repo.utcnow() - timedelta(seconds=servers)
    ids: list[str] = []
    allocated: dict[str, dict[str, int]] = {s: {} for s in site_names}
    for chunk_start in range(0, servers, CHUNK):
        rows: list[dict[str, Any]] = []
        port_rows: list[dict[str, Any]] = []
        bindings: list[dict[str, Any]] = []
        ips: list[dict[str, Any]] = []
        macs: list[dict[str, Any]] = []
        for index in range(chunk_start, min(servers, chunk_start + CHUNK)):
            server_id, port_id = str(uuid.UUID(int=rng.getrandbits(128), version=4)), repo.new_id()
            site = site_names[index % len(site_names)]
            flavor = flavors[index % len(flavors)]
            need = {"vcpus": flavor["vcpus"], "ram_mb": flavor["ram"], "disk_gb": flavor["disk"]}
            for key, amount in server_need(need).items():
                allocated[site][key] = allocated[site].get(key, 0) + int(amount)
            created = start + timedelta(seconds=index)
            address = str(ipaddress.ip_address(first_ip + index))
            mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in index.to_bytes(3, "big"))
            rows.append(
                _row(
                    server_id,
                    "server",
                    project,
                    f"bench-{index:06d}",
                    "ACTIVE",
                    site,
                    created,
                    spec={
                        **need,
                        "flavor": flavor,
                        "image_id": image,
                        "key_name": None,
                        "public_key": None,
                        "metadata": {"bench": "api_latency", "index": str(index)},
                        "user_data": None,
                        "power_on": True,
                        "reboot_count": 0,
                        "security_groups": ["default"],
                        "user_id": user,
                        "disk_config": "MANUAL",
                        "config_drive": False,
                        "access_ipv4": "",
                        "access_ipv6": "",
                        "reservation_id": f"r-{secrets.token_hex(4)}",
                        "launch_index": 0,
                    },
                )
            )
            port_rows.append(
                _row(
                    port_id,
                    "port",
                    project,
                    "",
                    "ACTIVE",
                    site,
                    created,
                    parent_id=network_id,
                    device_id=server_id,
                    spec={
                        "mac_address": mac,
                        "fixed_ips": [{"subnet_id": subnet_id, "ip_address": address}],
                        "security_groups": [group],
                        "admin_state_up": True,
                        "device_owner": f"compute:{site}",
                        "nic_index": 0,
                        "delete_with_server": True,
                    },
                )
            )
            for resource_id, kind, status in (
                (server_id, "server", "ACTIVE"),
                (port_id, "port", "ACTIVE"),
            ):
                bindings.append(
                    {
                        "resource_id": resource_id,
                        "site": site,
                        "kind": kind,
                        "site_resource_id": repo.new_id(),
                        "applied_generation": 1,
                        "observed_status": status,
                        "last_error": None,
                        "updated_at": created + timedelta(seconds=5),
                    }
                )
            ips.append({"subnet_id": subnet_id, "ip_address": address, "port_id": port_id})
            macs.append({"mac_address": mac, "port_id": port_id})
            ids.append(server_id)
        with service.db.session() as session:
            session.execute(insert(Resource), rows)
            session.execute(insert(Resource), port_rows)
            session.execute(insert(Binding), bindings)
            session.execute(insert(IpAllocation), ips)
            session.execute(insert(MacAllocation), macs)
    with service.db.session() as session:
        for site in session.scalars(select(Site)):
            site.allocated = allocated.get(site.name, {})
    if not service.db.is_sqlite:
        with service.db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    return ids


def _row(
    resource_id: str,
    kind: str,
    project: str,
    name: str,
    status: str,
    site: str,
    created: Any,
    *,
    spec: dict[str, Any],
    parent_id: str | None = None,
    device_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": resource_id,
        "kind": kind,
        "project_id": project,
        "name": name,
        "status": status,
        "site": site,
        "parent_id": parent_id,
        "device_id": device_id,
        "generation": 1,
        "deleting": False,
        "spec": spec,
        "observed": {},
        "created_at": created,
        "updated_at": created,
    }


# -- serving and measuring ---------------------------------------------------------------------


class Served:
    """The real API of `service` served by uvicorn in a thread on a loopback port."""

    def __init__(self, service: Service) -> None:
        # as `isthmus up` binds it: with proto IPPROTO_TCP, so asyncio sets TCP_NODELAY on
        # the accepted connections (with proto 0 it does not, and every answer written in
        # two pieces waits 40 ms for the client's delayed ACK)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(service),
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> Served:
        gc.freeze()  # as `isthmus up` does once it is set up
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def token(client: httpx.Client, user: str, password: str) -> str:
    answer = client.post(
        "/identity/v3/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"id": "default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": user, "domain": {"id": "default"}}},
            }
        },
    )
    answer.raise_for_status()
    return answer.headers["X-Subject-Token"]


def timed(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    answer = client.get(url, headers=headers)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"GET {url}: {answer.status_code} {answer.text[:300]}")
    return elapsed * 1000, answer


def pages(
    client: httpx.Client,
    path: str,
    headers: dict[str, str],
    markers: list[str | None],
) -> tuple[list[float], int]:
    """GET `path` once per marker (None: the first page); the times and the
    average number of servers per page."""
    samples: list[float] = []
    rows = 0
    timed(client, path, headers)  # warm-up
    for marker in markers:
        ms, answer = timed(client, f"{path}&marker={marker}" if marker else path, headers)
        samples.append(ms)
        rows += len(answer.json()["servers"])
    return samples, rows // max(1, len(markers))


def measure(
    url: str, service: Service, ids: list[str], args: argparse.Namespace
) -> list[tuple[str, list[float], str]]:
    passwords = service.passwords
    rng = random.Random(2)
    results: list[tuple[str, list[float], str]] = []
    with httpx.Client(base_url=url, timeout=600) as client:
        demo = {"X-Auth-Token": token(client, "demo", passwords["demo"])}
        admin = {"X-Auth-Token": token(client, "admin", passwords["admin"])}
        if args.compute_version:  # what clients that negotiate the newest ask for
            for headers in (demo, admin):
                headers["OpenStack-API-Version"] = f"compute {args.compute_version}"
        for server_id in rng.sample(ids, 10):  # warm-up
            timed(client, f"/compute/v2.1/servers/{server_id}", demo)
        samples = []
        for server_id in rng.choices(ids, k=args.show_requests):
            ms, answer = timed(client, f"/compute/v2.1/servers/{server_id}", demo)
            assert answer.json()["server"]["addresses"], "a server without addresses"
            samples.append(ms)
        results.append(("GET /servers/{id}", samples, "token cache warm"))
        samples = []
        for server_id in rng.choices(ids, k=args.show_requests):
            service.token_validator.forget()
            ms, _ = timed(client, f"/compute/v2.1/servers/{server_id}", demo)
            samples.append(ms)
        results.append(("GET /servers/{id}", samples, "token cache emptied before each"))
        # the first page, then pages after random markers (random depths)
        markers = [None, *rng.sample(ids, max(0, args.list_requests - 1))]
        lists = [
            ("/servers/detail?limit=1000", demo, ""),
            ("/servers?limit=1000", demo, ""),
            ("/servers/detail?all_tenants=1&limit=1000", admin, ", admin"),
        ]
        for path, headers, note in lists:
            samples, per_page = pages(client, f"/compute/v2.1{path}", headers, markers)
            results.append((f"GET {path}[&marker]", samples, f"{per_page} servers/page{note}"))
        # filters post-filtered in Python: each of these reads the whole project
        filtered = [
            ("/servers/detail?name=bench-0999&limit=1000", "a plain name: LIKE, then the regex"),
            ("/servers/detail?name=^bench-.*99$&limit=1000", "a regex: names scanned"),
            ("/servers/detail?status=SHUTOFF&limit=1000", "no match"),
        ]
        for path, note in filtered:
            samples, per_page = pages(
                client,
                f"/compute/v2.1{quote(path, safe='/?&=')}",
                demo,
                [None] * args.filter_requests,
            )
            results.append((f"GET {path}", samples, f"{per_page} servers/page, {note}"))
    return results


def token_costs(service: Service, token: str, calls: int) -> list[tuple[str, list[float]]]:
    """Microseconds per in-process validation of one token: cached, full, decrypt only."""

    def per_call(before: Callable[[], None], call: Callable[[], object]) -> list[float]:
        samples = []
        for _ in range(calls):
            before()
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1e6)
        return samples

    service.verify_token(token)
    return [
        ("verify_token, cached", per_call(lambda: None, lambda: service.verify_token(token))),
        (
            "verify_token, full (cache emptied)",
            per_call(service.token_validator.forget, lambda: service.verify_token(token)),
        ),
        (
            "Fernet decrypt + checks only",
            per_call(lambda: None, lambda: service.tokens.decode(token)),
        ),
    ]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def run(label: str, database: str | None, args: argparse.Namespace, report: Callable) -> None:
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-") as tmp:
        service = bootstrap(Path(tmp), database, args.sites)
        try:
            started = time.perf_counter()
            ids = populate(service, args.servers)
            inserted = time.perf_counter() - started
            report(
                f"{label}: {args.servers} servers (+ ports, bindings, addresses) inserted in"
                f" {inserted:.1f} s ({args.servers / inserted:,.0f} servers/s)"
            )
            with Served(service) as served:
                results = measure(served.url, service, ids, args)
                with httpx.Client(base_url=served.url) as client:
                    demo_token = token(client, "demo", service.passwords["demo"])
            for name, samples, note in results:
                report(
                    f"  {name:54s} n={len(samples):3d}  p50 {statistics.median(samples):7.1f} ms"
                    f"  p99 {percentile(samples, 0.99):7.1f} ms  {note}"
                )
            for name, samples in token_costs(service, demo_token, args.token_requests):
                median = statistics.median(samples)
                report(
                    f"  token: {name:47s} n={len(samples)}  p50 {median:7.1f} us"
                    f"  p99 {percentile(samples, 0.99):7.1f} us  ({1e6 / median:,.0f}/s)"
                )
        finally:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--show-requests", type=int, default=300)
    parser.add_argument("--list-requests", type=int, default=30)
    parser.add_argument("--filter-requests", type=int, default=10)
    parser.add_argument("--token-requests", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--compute-version", default="", help="e.g. 2.96 (default: none, 2.1)")
    args = parser.parse_args()
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    started = time.perf_counter()
    print(
        f"api_latency servers={args.servers} sites={args.sites}"
        f" compute={args.compute_version or '2.1 (no header)'}",
        flush=True,
    )

    def report(line: str) -> None:
        print(line, flush=True)

    if "sqlite" in databases:
        run("sqlite", None, args, report)
    if "postgresql" in databases:
        from tests.fixtures.postgres import PostgresUnavailable, start_postgres

        try:
            server = start_postgres()
        except PostgresUnavailable as exc:
            print(f"postgresql: skipped ({exc})", flush=True)
        else:
            try:
                run(f"postgresql {server.version}", server.url, args, report)
            finally:
                server.stop()
    print(f"api_latency: {time.perf_counter() - started:.1f} s in all", flush=True)


if __name__ == "__main__":
    main()
