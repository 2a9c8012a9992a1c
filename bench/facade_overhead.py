"""Facade overhead: what Isthmus adds in front of a real OpenStack, in one run.

A real OpenStack site (Debian's Zed packages on loopback, scripts/openstack-site/site.py;
reused with --site DIR or ISTHMUS_OPENSTACK_SITE=DIR, else brought up here and torn
down at the end) is registered as site `os1` of a real `isthmus up` (a subprocess);
N servers are created there THROUGH Isthmus and waited for ACTIVE. Then, with one
keep-alive httpx client each, the same requests go to Isthmus and straight to the
site's Nova (the same servers, the same project):

- GET /servers/{id} for random servers (Isthmus's id there, Nova's id at Nova);
- GET /servers/detail (the project holds exactly those N servers on both sides).

Printed: p50/p99 in ms per side and the ratio Isthmus / Nova. The servers are
deleted through Isthmus afterwards.

    .venv/bin/python bench/facade_overhead.py [--servers 10] [--requests 200] [--site DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openstack
from openstack.config import OpenStackConfig
from openstack.connection import Connection

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # for tests.fixtures
    sys.path.insert(0, str(REPO))

from tests.fixtures.isthmus_process import Running, start_isthmus  # noqa: E402

SITE_SCRIPT = REPO / "scripts" / "openstack-site" / "site.py"
SITE = "os1"


def connect(clouds_yaml: Path, cloud: str) -> Connection:
    config = OpenStackConfig(config_files=[str(clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


def bring_up(work: Path) -> float:
    began = time.monotonic()
    code = subprocess.call([sys.executable, str(SITE_SCRIPT), "up", str(work)])
    if code != 0:
        raise SystemExit(f"the OpenStack site did not come up (exit {code}; logs in {work})")
    return time.monotonic() - began


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(client: httpx.Client, urls: list[str], token: str) -> list[float]:
    samples = []
    for url in urls:
        began = time.perf_counter()
        response = client.get(url, headers={"X-Auth-Token": token})
        samples.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code} {response.text[:300]}")
    return samples


def register(running: Running, state: dict[str, Any]) -> None:
    admin = connect(running.clouds_yaml, "isthmus")
    body = {
        "name": SITE,
        "driver": "openstack",
        "config": {
            "cloud": state["cloud"],
            "clouds_yaml": state["clouds_yaml"],
            "default_image": state["default_image"],
        },
    }
    response = httpx.post(
        f"{running.url}/isthmus/v1/sites",
        json=body,
        headers={"X-Auth-Token": admin.auth_token},
        timeout=60,
    )
    if response.status_code not in (200, 201):
        raise SystemExit(f"site add: {response.status_code} {response.text}")


def create_servers(conn: Connection, count: int, work: Path) -> list[str]:
    image_file = work / "bench.img"
    image_file.write_bytes(b"facade bench\n" * 1024)
    image = conn.image.create_image(
        name="bench-img",
        filename=str(image_file),
        disk_format="raw",
        container_format="bare",
        wait=True,
    )
    network = conn.network.create_network(name="bench-net")
    conn.network.create_subnet(network_id=network.id, cidr="10.93.0.0/24", ip_version=4)
    flavor = conn.compute.find_flavor("m1.tiny")
    ids = [
        conn.compute.create_server(
            name=f"bench-{i}",
            flavor_id=flavor.id,
            image_id=image.id,
            networks=[{"uuid": network.id}],
            availability_zone=SITE,
        ).id
        for i in range(count)
    ]
    wait_for(
        f"{count} servers ACTIVE through Isthmus",
        lambda: all(conn.compute.get_server(i).status == "ACTIVE" for i in ids),
    )
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--site", type=Path, default=os.environ.get("ISTHMUS_OPENSTACK_SITE"))
    args = parser.parse_args()
    if os.geteuid() != 0 and args.site is None:
        print("facade_overhead: skipped (bringing up the OpenStack site needs root)")
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="isthmus-facade-", dir="/var/tmp"))
    scratch.chmod(0o755)  # the site's PostgreSQL and RabbitMQ users must reach into it
    work = args.site or scratch / "site"
    running: Running | None = None
    try:
        if args.site is None:
            print(f"bring-up of the OpenStack site: {bring_up(work):.1f} s", flush=True)
        state = json.loads((work / "site.json").read_text())
        running = start_isthmus(scratch / "isthmus")
        register(running, state)
        conn = connect(running.clouds_yaml, "isthmus-demo")
        began = time.monotonic()
        ids = create_servers(conn, args.servers, scratch)
        print(f"{args.servers} servers ACTIVE through Isthmus: {time.monotonic() - began:.1f} s")

        site = connect(Path(state["clouds_yaml"]), state["cloud"])
        nova_ids = {s.name.removeprefix("isthmus-"): s.id for s in site.compute.servers()}
        nova = site.endpoint_for("compute").rstrip("/")
        isthmus = f"{running.url}/compute/v2.1"
        pick = [random.choice(ids) for _ in range(args.requests)]
        lists = max(20, args.requests // 5)
        with httpx.Client(timeout=30) as a, httpx.Client(timeout=30) as b:
            token_a, token_b = conn.auth_token, site.auth_token
            for _ in range(10):  # warm both (connections, caches)
                timed(a, [f"{isthmus}/servers/detail"], token_a)
                timed(b, [f"{nova}/servers/detail"], token_b)
            rows = [
                (
                    "GET /servers/{id}",
                    timed(a, [f"{isthmus}/servers/{i}" for i in pick], token_a),
                    timed(b, [f"{nova}/servers/{nova_ids[i]}" for i in pick], token_b),
                ),
                (
                    f"GET /servers/detail ({args.servers} servers)",
                    timed(a, [f"{isthmus}/servers/detail"] * lists, token_a),
                    timed(b, [f"{nova}/servers/detail"] * lists, token_b),
                ),
            ]
        print(f"{'request':34} {'isthmus p50/p99 ms':>20} {'nova p50/p99 ms':>18} {'ratio p50':>9}")
        for name, mine, theirs in rows:
            (m50, m99), (t50, t99) = percentiles(mine), percentiles(theirs)
            print(
                f"{name:34} {m50:9.2f} /{m99:8.2f} {t50:8.2f} /{t99:8.2f} {m50 / t50:9.3f}"
                f"  (n={len(mine)})"
            )
        for server in ids:
            conn.compute.delete_server(server)
        wait_for("servers gone from the site", lambda: not list(site.compute.servers()))
        return 0
    finally:
        if running is not None:
            running.stop()
        if args.site is None and (work / "pids").exists():
            subprocess.call([sys.executable, str(SITE_SCRIPT), "down", str(work)])
        subprocess.call(["rm", "-rf", str(scratch)])


if __name__ == "__main__":
    sys.exit(main())
