"""`isthmus down`, restarts and site removal with the embedded data plane, end to end
through a real `isthmus up` subprocess with `fabric: embedded`:

- servers in two sites ping; `isthmus down` stops the process by its pidfile and
  removes every namespace and FRR daemon the fabric recorded; a second `down` says
  nothing runs; `isthmus up` on the same data dir rebuilds the servers' namespaces
  from the sites' own state and they ping again; a last `down` cleans up.
- a site added at runtime gets a gateway (namespace + FRR) once it holds a network;
  removing the site stops its FRR, removes its namespace, and the other gateways
  stop peering with it.

Needs root, FRR, nft and nsenter (skipped with the reason otherwise). Whatever a
test leaves is stopped by its exact pid and torn down by the fabric's own record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from isthmus.fabric import capability
from isthmus.fabric.dataplane import NETNS_DIR, EmbeddedFabric, nsexec
from isthmus.fabric.frr import FrrSite
from tests.fixtures.isthmus_process import (
    ISTHMUS,
    Running,
    clean_env,
    password_token,
    start_isthmus,
)
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MISSING = capability.missing()
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"embedded data plane unavailable: {MISSING}"),
    pytest.mark.timeout(300),
]
C, N = "/compute/v2.1", "/network/v2.0"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Deployment:
    """One data dir served by `isthmus up` subprocesses, one at a time."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        self.config = tmp_path / "isthmus.yaml"
        self.config.write_text(yaml.safe_dump({"fabric": "embedded"}))
        self.fabric = EmbeddedFabric(self.data_dir / "sites" / "_fabric")
        self.running: Running | None = None
        self.clients: dict[str, httpx.Client] = {}
        self.seen_pids: set[int] = set()

    # -- the service ------------------------------------------------------------------------

    def up(self) -> Running:
        self.running = start_isthmus(self.data_dir, None, "--config", str(self.config))
        secrets = yaml.safe_load((self.data_dir / "secrets.yaml").read_text())
        for user in ("admin", "demo"):
            token = password_token(self.running.url, user, secrets[user])
            self.clients[user] = httpx.Client(
                base_url=self.running.url, headers={"X-Auth-Token": token}, timeout=30
            )
        return self.running

    def down(self, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [str(ISTHMUS), "down", "--data-dir", str(self.data_dir)]
        argv += ["--config", str(self.config), *extra]
        return subprocess.run(
            argv, env=clean_env(), capture_output=True, text=True, timeout=120, check=False
        )

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        if self.running is not None:
            self.running.stop()  # its exact pid
        self.record_pids()
        self.fabric.teardown()

    # -- the API ------------------------------------------------------------------------------

    def call(self, user: str, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.clients[user].request(method, path, json=body)
        assert response.status_code == status, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    def network(self, name: str, cidr: str) -> str:
        net = self.call("demo", "POST", f"{N}/networks", {"network": {"name": name}}, 201)
        subnet = {"network_id": net["network"]["id"], "cidr": cidr, "ip_version": 4}
        self.call("demo", "POST", f"{N}/subnets", {"subnet": subnet}, 201)
        return str(net["network"]["id"])

    def boot(self, name: str, network: str, zone: str) -> str:
        images = self.call("demo", "GET", "/image/v2/images")["images"]
        image = next(i["id"] for i in images if i["name"] == "isthmus-minimal")
        server = {
            "name": name,
            "flavorRef": "1",
            "imageRef": image,
            "networks": [{"uuid": network}],
            "availability_zone": zone,
        }
        made = self.call("demo", "POST", f"{C}/servers", {"server": server}, 202)
        return str(made["server"]["id"])

    def wait_active(self, *servers: str) -> None:
        for server in servers:

            def active(server: str = server) -> bool:
                status = self.call("demo", "GET", f"{C}/servers/{server}")["server"]["status"]
                assert status in ("BUILD", "ACTIVE"), f"server {server} went {status}"
                return status == "ACTIVE"

            wait_for(active, timeout=60.0, interval=0.25, what=f"server {server} ACTIVE")

    def ip(self, server: str) -> str:
        ports = self.call("demo", "GET", f"{N}/ports?device_id={server}")["ports"]
        return str(ports[0]["fixed_ips"][0]["ip_address"])

    # -- the data plane -------------------------------------------------------------------------

    def namespace(self, server: str) -> str:
        return self.fabric.server_namespace(server)

    def ping(self, source: str, target_ip: str) -> bool:
        probe = [sys.executable, "-m", "tests.fabric.icmp", target_ip, "0.5"]
        namespace = self.namespace(source)
        if not (NETNS_DIR / namespace).exists():
            return False
        return nsexec(namespace, probe, timeout=10, cwd=ROOT).returncode == 0

    def recorded(self) -> tuple[list[str], list[int]]:
        """The namespaces the fabric recorded, the FRR pids of its pidfiles."""
        state = json.loads(self.fabric.state_path.read_text())
        return list(state["namespaces"]), self.record_pids()

    def record_pids(self) -> list[int]:
        pids = [
            int(pidfile.read_text().split()[0])
            for pidfile in (self.fabric.directory / "frr").glob("*/*.pid")
        ]
        self.seen_pids.update(pids)
        return pids


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    made = Deployment(tmp_path)
    try:
        yield made
    finally:
        made.close()
    prefix = made.fabric.prefix
    assert not sorted(p.name for p in NETNS_DIR.glob(f"{prefix}-*")), "namespaces left"
    assert not [pid for pid in made.seen_pids if _alive(pid)], "FRR still running"


def test_down_tears_down_and_up_rebuilds(deployment: Deployment) -> None:
    first = deployment.up()
    net = deployment.network("down-net", "10.31.0.0/24")
    a = deployment.boot("a", net, "site-a")
    b = deployment.boot("b", net, "site-b")
    deployment.wait_active(a, b)
    wait_for(
        lambda: deployment.ping(a, deployment.ip(b)), timeout=60.0, interval=0.25, what="a pings b"
    )
    namespaces, pids = deployment.recorded()
    assert {deployment.namespace(a), deployment.namespace(b)} <= set(namespaces)
    assert all((NETNS_DIR / name).exists() for name in namespaces)
    assert len(pids) == 4 and all(_alive(pid) for pid in pids)  # zebra + bgpd, two gateways

    stopped = deployment.down()
    assert stopped.returncode == 0, stopped.stderr
    assert f"Stopped Isthmus (pid {first.proc.pid}" in stopped.stdout
    assert first.proc.wait(timeout=10) == 0
    assert not (deployment.data_dir / "isthmus.pid").exists()
    assert "Tore down the data plane" in stopped.stdout
    assert [name for name in namespaces if (NETNS_DIR / name).exists()] == []
    assert [pid for pid in pids if _alive(pid)] == []
    for pid in pids:
        assert str(pid) in stopped.stdout

    again = deployment.down()
    assert again.returncode == 0, again.stderr
    assert "Isthmus is not running" in again.stdout
    assert "No embedded data plane was running." in again.stdout

    # the store and the sites' state survived: the data plane comes back from them
    deployment.up()
    wait_for(
        lambda: all((NETNS_DIR / deployment.namespace(s)).exists() for s in (a, b)),
        timeout=60.0,
        interval=0.25,
        what="the servers' namespaces to come back",
    )
    wait_for(
        lambda: deployment.ping(a, deployment.ip(b)),
        timeout=60.0,
        interval=0.25,
        what="a pings b again",
    )
    wait_for(
        lambda: deployment.ping(b, deployment.ip(a)),
        timeout=60.0,
        interval=0.25,
        what="b pings a again",
    )
    sites = deployment.call("admin", "GET", "/isthmus/v1/sites")["sites"]
    health = {site["name"]: site["health"] for site in sites}
    assert health["site-a"] == health["site-b"] == "up", sites
    namespaces, pids = deployment.recorded()
    assert len(pids) == 4 and all(_alive(pid) for pid in pids)

    final = deployment.down()
    assert final.returncode == 0, final.stderr
    assert deployment.running is not None and deployment.running.proc.wait(timeout=10) == 0
    assert [name for name in namespaces if (NETNS_DIR / name).exists()] == []
    assert [pid for pid in pids if _alive(pid)] == []


def test_removing_a_data_plane_site_stops_its_gateway(deployment: Deployment) -> None:
    deployment.up()
    body = {"name": "site-x", "driver": "local", "config": {}}
    added = deployment.call("admin", "POST", "/isthmus/v1/sites", body, 201)["site"]
    assert added["health"] == "up", added
    net = deployment.network("x-net", "10.32.0.0/24")
    a = deployment.boot("a", net, "site-a")
    x = deployment.boot("x", net, "site-x")
    deployment.wait_active(a, x)
    wait_for(
        lambda: deployment.ping(x, deployment.ip(a)), timeout=60.0, interval=0.25, what="x pings a"
    )
    gateway = FrrSite(
        deployment.fabric.site_namespace("site-x"), deployment.fabric.directory / "frr" / "site-x"
    )
    pids = [pid for pid in (gateway.pid("zebra"), gateway.pid("bgpd")) if pid is not None]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert (NETNS_DIR / gateway.namespace).exists()
    vtep_x = deployment.fabric.vteps()["site-x"]
    assert vtep_x in deployment.fabric.frr_site("site-a").neighbors()

    # removal is refused (409) while anything is bound there; empty it, then remove it
    refused = deployment.clients["admin"].delete("/isthmus/v1/sites/site-x")
    assert refused.status_code == 409, refused.text
    for server in (x, a):
        deployment.call("demo", "DELETE", f"{C}/servers/{server}", status=204)
    demo, admin = deployment.clients["demo"], deployment.clients["admin"]
    for server in (x, a):
        wait_for(
            lambda s=server: demo.get(f"{C}/servers/{s}").status_code == 404,
            timeout=60.0,
            interval=0.25,
            what=f"server {server} gone",
        )
    wait_for(
        lambda: demo.delete(f"{N}/networks/{net}").status_code in (204, 404),
        timeout=60.0,
        interval=0.25,
        what="the network deleted",
    )
    wait_for(
        lambda: admin.delete("/isthmus/v1/sites/site-x").status_code == 204,
        timeout=60.0,
        interval=0.25,
        what="site-x removed",
    )
    assert not (NETNS_DIR / gateway.namespace).exists()
    assert [pid for pid in pids if _alive(pid)] == []
    assert "site-x" not in deployment.fabric.vteps()
    assert vtep_x not in deployment.fabric.frr_site("site-a").neighbors()
    assert not (deployment.data_dir / "sites" / "site-x" / "state.db").exists()  # state goes too
