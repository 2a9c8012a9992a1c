"""Driving a data-plane cloud through the Isthmus API in fabric tests.

`FabricCloud` wraps the `fabric` fixture of test_dataplane.py (three embedded sites
with the kernel data plane, torn down by the fabric's own record) with the real API
(`Cloud`: Keystone, Compute, Network over an in-process HTTP client), starts the
engine's worker threads so intent is applied as it is written, and probes the data
plane from inside servers: ICMP (tests/fabric/icmp.py), TCP (tests/fabric/tcp.py)
and a frame watcher (tests/fabric/sniff.py). Every process it starts in a server's
namespace is ended by its own handle in `close()`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from isthmus.fabric.dataplane import NETNS_DIR
from tests.fabric.test_dataplane import ROOT, Fabric
from tests.support import Cloud
from tests.waiting import wait_for

C = "/compute/v2.1"
N = "/network/v2.0"


class FabricCloud:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.cloud = Cloud(fabric.service)
        self.demo = self.cloud.demo
        self.processes: list[subprocess.Popen[str]] = []
        fabric.service.engine.start()

    # -- API ----------------------------------------------------------------------------------

    def call(
        self, method: str, path: str, headers: dict[str, str], body: Any = None, status: int = 200
    ) -> Any:
        response = self.cloud.client.request(method, path, headers=headers, json=body)
        assert response.status_code == status, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    def network(self, headers: dict[str, str], cidr: str, name: str) -> str:
        net = self.call("POST", f"{N}/networks", headers, {"network": {"name": name}}, 201)
        subnet = {"network_id": net["network"]["id"], "cidr": cidr, "ip_version": 4}
        self.call("POST", f"{N}/subnets", headers, {"subnet": subnet}, 201)
        return str(net["network"]["id"])

    def group(self, headers: dict[str, str], name: str) -> str:
        if name == "default":
            found = self.call("GET", f"{N}/security-groups?name=default", headers)
            return str(found["security_groups"][0]["id"])
        body = {"security_group": {"name": name}}
        return str(
            self.call("POST", f"{N}/security-groups", headers, body, 201)["security_group"]["id"]
        )

    def add_rule(self, headers: dict[str, str], group: str, **attrs: Any) -> str:
        body = {
            "security_group_rule": {
                "security_group_id": group,
                "direction": "ingress",
                "ethertype": "IPv4",
                **attrs,
            }
        }
        made = self.call("POST", f"{N}/security-group-rules", headers, body, 201)
        return str(made["security_group_rule"]["id"])

    def delete_rule(self, headers: dict[str, str], rule: str) -> None:
        self.call("DELETE", f"{N}/security-group-rules/{rule}", headers, status=204)

    def image(self) -> str:
        images = self.call("GET", "/image/v2/images", self.demo)["images"]
        return str(next(i["id"] for i in images if i["name"] == "isthmus-minimal"))

    def boot(
        self,
        headers: dict[str, str],
        name: str,
        network: str,
        zone: str,
        groups: list[str] | None = None,
        fixed_ip: str | None = None,
    ) -> str:
        nic: dict[str, str] = {"uuid": network}
        if fixed_ip:
            nic["fixed_ip"] = fixed_ip
        server: dict[str, Any] = {
            "name": name,
            "flavorRef": "1",
            "imageRef": self.image(),
            "networks": [nic],
            "availability_zone": zone,
        }
        if groups is not None:
            server["security_groups"] = [{"name": g} for g in groups]
        made = self.call("POST", f"{C}/servers", headers, {"server": server}, 202)
        return str(made["server"]["id"])

    def wait_active(self, headers: dict[str, str], *servers: str, timeout: float = 60) -> None:
        for server in servers:

            def active(server: str = server) -> bool:
                status = self.call("GET", f"{C}/servers/{server}", headers)["server"]["status"]
                assert status in ("BUILD", "ACTIVE"), f"server {server} went {status}"
                return bool(status == "ACTIVE" and (NETNS_DIR / self.namespace(server)).exists())

            wait_for(active, timeout=timeout, interval=0.2, what=f"server {server} ACTIVE")

    def ip(self, headers: dict[str, str], server: str) -> str:
        ports = self.call("GET", f"{N}/ports?device_id={server}", headers)["ports"]
        return str(ports[0]["fixed_ips"][0]["ip_address"])

    def mac(self, headers: dict[str, str], server: str) -> str:
        ports = self.call("GET", f"{N}/ports?device_id={server}", headers)["ports"]
        return str(ports[0]["mac_address"])

    # -- probes -------------------------------------------------------------------------------

    def namespace(self, server: str) -> str:
        return self.fabric.namespace(server)

    def _nsenter(self, server: str, *args: str) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.namespace(server)}", sys.executable, *args]

    def ping(self, source: str, ip: str, wait: float = 1.0) -> bool:
        return self.fabric.ping(source, ip, wait)

    def tcp(self, source: str, ip: str, port: int, wait: float = 1.0) -> bool:
        argv = self._nsenter(source, "-m", "tests.fabric.tcp", "connect", ip, str(port), str(wait))
        return subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=30).returncode == 0

    def serve_tcp(self, server: str, port: int) -> None:
        """A TCP listener in the server (ended in close())."""
        argv = self._nsenter(server, "-m", "tests.fabric.tcp", "serve", str(port))
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.processes.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"

    def watch(self, server: str, seconds: float) -> subprocess.Popen[str]:
        """Start a frame watcher on the server's eth0; `frames(proc)` collects its report."""
        argv = self._nsenter(server, "-m", "tests.fabric.sniff", "eth0", str(seconds))
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.processes.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    @staticmethod
    def frames(proc: subprocess.Popen[str]) -> list[dict[str, str]]:
        out, _ = proc.communicate(timeout=60)
        return list(json.loads(out))

    def neighbours(self, server: str) -> dict[str, str]:
        """The server's IPv4 neighbour table: address -> state (REACHABLE, FAILED...)."""
        argv = ["nsenter", f"--net={NETNS_DIR / self.namespace(server)}"]
        shown = subprocess.run(
            [*argv, "ip", "-4", "-j", "neigh", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {n["dst"]: ",".join(n.get("state", [])) for n in json.loads(shown or "[]")}

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
