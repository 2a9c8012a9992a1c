"""The embedded data plane, end to end through the engine: three embedded sites,
servers as network namespaces, one VXLAN segment per network whose site gateways
learn each other's MACs over BGP EVPN (FRR), security groups as nftables.

Needs root, FRR, nft and nsenter (skipped with the reason otherwise). Everything
it makes carries the run's own prefix (a hash of its tmp data dir) and is torn
down by the fabric's own record: no namespace with that prefix, no FRR left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.fabric import capability
from isthmus.fabric.dataplane import NETNS_DIR, EmbeddedFabric, nsexec
from isthmus.intent import servers
from isthmus.service import Service
from isthmus.store import identity, repo
from isthmus.store.tables import Resource
from tests.fixtures.isthmus_process import ISTHMUS, clean_env
from tests.support import Cloud, add_network, add_server, make_service, project_id, serve_in_thread
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MISSING = capability.missing()
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"embedded data plane unavailable: {MISSING}"),
    pytest.mark.timeout(120),
]


class Fabric:
    def __init__(self, service: Service, fabric: EmbeddedFabric) -> None:
        self.service = service
        self.fabric = fabric

    def settle(self) -> None:
        assert self.service.engine.run_until_idle(60), "engine did not go idle"

    def resource(self, resource_id: str) -> Resource:
        with self.service.db.read() as session:
            row = session.get(Resource, resource_id)
            assert row is not None
            session.expunge(row)
            return row

    def ip_of(self, server_id: str) -> str:
        with self.service.db.read() as session:
            port = session.query(Resource).filter_by(kind="port", device_id=server_id).one()
            return port.spec["fixed_ips"][0]["ip_address"]

    def namespace(self, server_id: str) -> str:
        return self.fabric.server_namespace(server_id)

    def ping(self, source: str, target_ip: str, wait: float = 1.0) -> bool:
        probe = [sys.executable, "-m", "tests.fabric.icmp", target_ip, str(wait)]
        return nsexec(self.namespace(source), probe, timeout=10, cwd=ROOT).returncode == 0

    def wait_ping(self, source: str, target_ip: str, timeout: float = 15.0) -> float:
        """Seconds until `source` reaches `target_ip` (fails the test if not within timeout)."""
        start = time.monotonic()
        wait_for(
            lambda: self.ping(source, target_ip, wait=0.5),
            timeout=timeout,
            what=f"{self.namespace(source)} to reach {target_ip}",
        )
        return time.monotonic() - start


def _prefix_namespaces(prefix: str) -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(f"{prefix}-*")) if NETNS_DIR.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def fabric(tmp_path: Path) -> Iterator[Fabric]:
    data = tmp_path / "data"
    service = make_service(data, None, sites=3, data_plane=True)
    embedded = EmbeddedFabric(data / "sites" / "_fabric")
    pids: list[int] = []
    try:
        yield Fabric(service, embedded)
    finally:
        for pidfile in (embedded.directory / "frr").glob("*/*.pid"):
            pids.append(int(pidfile.read_text().split()[0]))
        service.stop()
        embedded.teardown()
    assert _prefix_namespaces(embedded.prefix) == []
    assert not [pid for pid in pids if _alive(pid)], "FRR still running after teardown"
    assert not any(Path("/var/run/frr").glob(f"{embedded.prefix}-*"))


def _server_in_group(service: Service, project: str, network_id: str, group: str, az: str) -> str:
    """A server whose one port is in `group` only (not in the default group),
    booted by the intent function the Compute API uses."""
    with service.db.session() as session:
        net = session.get(Resource, network_id)
        assert net is not None
        server = servers.add_server(
            session,
            project_id=project,
            name="outsider",
            need={"vcpus": 1, "ram_mb": 512, "disk_gb": 1},
            spec={"image_id": None, "power_on": True},
            availability_zone=az,
            nics=[servers.Nic(net)],
            group_ids=[group],
        )
        return server.id


def _open_group(service: Service, project: str) -> str:
    """A group that lets everything in and out (IPv4)."""
    with service.db.session() as session:
        group = repo.add(
            session, "security_group", project_id=project, name="open", status="ACTIVE", spec={}
        )
        for direction in ("ingress", "egress"):
            repo.add(
                session,
                "security_group_rule",
                project_id=project,
                parent_id=group.id,
                status="ACTIVE",
                spec={"direction": direction, "ethertype": "IPv4"},
            )
        return group.id


def test_three_sites_one_segment_isolation_and_security_groups(fabric: Fabric) -> None:
    service = fabric.service
    started = time.monotonic()
    demo = project_id(service)
    net, _ = add_network(service, demo, "10.10.0.0/24", "blue")
    a = add_server(service, demo, net, "a", az="site-a")
    b = add_server(service, demo, net, "b", az="site-b")
    fabric.settle()
    for server in (a, b):
        assert fabric.resource(server).status == "ACTIVE"
        assert (NETNS_DIR / fabric.namespace(server)).exists()
    first = fabric.wait_ping(a, fabric.ip_of(b))
    # a third site joins later: its gateway is added to the others' BGP neighbours live,
    # and the default group's member addresses are refreshed in the sites already there
    joined = time.monotonic()
    c = add_server(service, demo, net, "c", az="site-c")
    fabric.settle()
    third = fabric.wait_ping(c, fabric.ip_of(a))
    third_total = time.monotonic() - joined
    for source, target in ((a, c), (b, c), (c, b), (b, a)):
        fabric.wait_ping(source, fabric.ip_of(target), timeout=10)
    print(
        f"\nfirst cross-site ping {first:.2f}s after the engine went idle"
        f" ({time.monotonic() - started:.1f}s into the test); site-c joining:"
        f" {third:.2f}s after idle, {third_total:.2f}s after the server was asked for"
    )

    # `isthmus server exec` finds the namespace through the admin API
    cloud = Cloud(service)
    server = serve_in_thread(cloud, service.config.data_dir)
    try:
        env = clean_env(OS_CLIENT_CONFIG_FILE=str(cloud.clouds_yaml))
        probe = ["-m", "tests.fabric.icmp", fabric.ip_of(c), "2"]
        argv = [str(ISTHMUS), "server", "exec", a, "--", sys.executable, *probe]
        ran = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        ran = subprocess.run(
            [str(ISTHMUS), "server", "exec", net, "--", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 1 and "not a server" in ran.stderr
    finally:
        server.should_exit = True
        server.thread.join(timeout=10)

    # remote MACs came over BGP EVPN
    vni = fabric.resource(net).spec["segmentation_id"]
    gateway = fabric.fabric.site_namespace("site-a")
    shown = subprocess.run(
        ["vtysh", "-N", gateway, "-c", f"show evpn mac vni {vni} json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    macs = json.loads(shown)["macs"]
    remote = {mac for mac, info in macs.items() if info.get("type") == "remote"}
    for server in (b, c):
        with service.db.read() as session:
            port = session.query(Resource).filter_by(kind="port", device_id=server).one()
            assert port.spec["mac_address"] in remote, (port.spec["mac_address"], macs)
    fdb = nsexec(gateway, ["bridge", "fdb", "show", "dev", f"vxlan{vni}"]).stdout
    assert "extern_learn" in fdb

    # another tenant's network with the same CIDR is another segment
    with service.db.session() as session:
        other = identity.create_project(session, "other-tenant").id
    other_net, _ = add_network(service, other, "10.10.0.0/24", "also-blue")
    x = add_server(service, other, other_net, "x", az="site-a")
    y = add_server(service, other, other_net, "y", az="site-b")
    fabric.settle()
    assert fabric.resource(other_net).spec["segmentation_id"] != vni
    fabric.wait_ping(x, fabric.ip_of(y))
    own = {fabric.ip_of(x), fabric.ip_of(y)}
    for target in {fabric.ip_of(s) for s in (a, b, c)} - own:
        assert not fabric.ping(x, target), f"tenant isolation broken: reached {target}"

    # the default group lets in only its members
    open_group = _open_group(service, demo)
    outsider = _server_in_group(service, demo, net, open_group, "site-c")
    fabric.settle()
    fabric.wait_ping(a, fabric.ip_of(outsider))  # a may go out, and outsider lets all in
    assert not fabric.ping(outsider, fabric.ip_of(a)), "default group let a non-member in"
    assert not fabric.ping(outsider, fabric.ip_of(b))

    # deleting a server removes its namespace
    with service.db.session() as session:
        row = session.get(Resource, outsider)
        assert row is not None
        servers.delete_server(session, row)
    fabric.settle()
    assert not (NETNS_DIR / fabric.namespace(outsider)).exists()
    assert os.path.isdir(NETNS_DIR)
