"""The demo's data-plane chapter (`python -m isthmus.demo` passes it to the story,
demo/story.py, which tells it after booting its servers): the servers of the demo
project, one per site on one network, ping each other through
`isthmus server exec SERVER -- ping -c1 -W2 IP`, and a second
tenant whose network has the SAME CIDR cannot reach them (nor they it), while its
own two servers reach each other.

The outcome is printed as a matrix (sources x targets) and one summary line per
kind of pair, e.g. `same tenant: 8/8 pairs answered` and `across tenants: 0/12
pairs answered`; tests/scenarios/test_demo.py reads those lines. The chapter fails the demo
when a same-tenant pair never answers or a cross-tenant pair answers.

A same-tenant pair is retried until it answers or `CONVERGE_SECONDS` pass (the
site gateways learn the servers' MACs over BGP EVPN, which takes a moment after
the servers are ACTIVE); cross-tenant pairs are tried once, after every
same-tenant pair answered, so a silence there is isolation, not a fabric still
converging. The second tenant's servers take fixed addresses the first tenant
does not use, so "no reply" cannot come from pinging one's own address.

Where the embedded data plane cannot run (the story's `data_plane_missing`), the
chapter is one step, "Data plane: skipped", saying why.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import yaml
from rich.table import Table

from isthmus.demo.story import Demo, DemoFailed, demo_env

OTHER_CLOUD = "isthmus-demo-other"
OTHER_PROJECT = "demo-other"
OTHER_NETWORK, OTHER_SUBNET = "other-net", "other-subnet"
OTHER_SERVERS = (("other-1", "site-a", 201), ("other-2", "site-c", 202))  # name, zone, host
CONVERGE_SECONDS = 30.0
PARALLEL = 6


@dataclass(frozen=True)
class Endpoint:
    name: str
    server_id: str
    ip: str
    tenant: str


@dataclass
class Result:
    source: Endpoint
    target: Endpoint
    answered: bool
    tries: int
    seconds: float

    @property
    def same_tenant(self) -> bool:
        return self.source.tenant == self.target.tenant


class FabricChapter:
    """The ping matrix of one demo run (uses the demo's service, CLI and clouds.yaml);
    `cidr` is the demo network's, which the second tenant's network takes too."""

    def __init__(self, cidr: str) -> None:
        self.cidr = cidr
        self.endpoints: list[Endpoint] = []
        self.other_password = secrets.token_urlsafe(12)
        self.other_made = False

    # -- probing ------------------------------------------------------------------------------

    def ping(self, demo: Demo, source: Endpoint, ip: str) -> bool:
        """One `isthmus server exec SOURCE -- ping -c1 -W2 IP`; True on a reply."""
        argv = [sys.executable, "-m", "isthmus.cli", "--os-cloud", "isthmus", "server", "exec"]
        argv += [source.server_id, "--", "ping", "-c1", "-W2", ip]
        proc = subprocess.run(
            argv,
            env=demo_env(OS_CLIENT_CONFIG_FILE=str(demo.clouds_yaml)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if "packets transmitted" not in proc.stdout:  # ping did not run: exec itself failed
            raise DemoFailed(
                f"`isthmus server exec {source.name} -- ping -c1 -W2 {ip}` did not run ping"
                f" (exit {proc.returncode}):\n{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.returncode == 0

    def probe(self, demo: Demo, source: Endpoint, target: Endpoint, until_answered: bool) -> Result:
        started = time.monotonic()
        tries = 0
        while True:
            tries += 1
            answered = self.ping(demo, source, target.ip)
            elapsed = time.monotonic() - started
            if answered or not until_answered or elapsed > CONVERGE_SECONDS:
                return Result(source, target, answered, tries, elapsed)
            time.sleep(0.3)

    # -- the second tenant ------------------------------------------------------------------------

    def make_other_tenant(self, demo: Demo) -> None:
        """A project with a member user (as admin), its cloud in clouds.yaml, then as that
        user a network of the same CIDR and two servers at fixed addresses."""
        user = f"{OTHER_PROJECT}-user"
        demo.openstack_batch(
            [
                f"project create {OTHER_PROJECT} -f json",
                f"user create {user} --project {OTHER_PROJECT}"
                f" --password {self.other_password} -f json",
                f"role add --user {user} --project {OTHER_PROJECT} member",
            ],
            cloud="isthmus",
        )
        self.other_made = True
        document = yaml.safe_load(demo.clouds_yaml.read_text())
        entry = json.loads(json.dumps(document["clouds"]["isthmus-demo"]))
        entry["auth"].update(
            username=user, password=self.other_password, project_name=OTHER_PROJECT
        )
        document["clouds"][OTHER_CLOUD] = entry
        demo.clouds_yaml.write_text(yaml.safe_dump(document, sort_keys=False))

        net, subnet = (
            json.loads(out)
            for out in demo.openstack_batch(
                [
                    f"network create {OTHER_NETWORK} -f json",
                    f"subnet create {OTHER_SUBNET} --network {OTHER_NETWORK}"
                    f" --subnet-range {self.cidr} -f json",
                ],
                cloud=OTHER_CLOUD,
            )
        )
        demo.say(f"project {OTHER_PROJECT}: network {net['name']} {subnet['cidr']} (same CIDR)")
        prefix = self.cidr.rsplit(".", 1)[0]

        def boot(item: tuple[str, str, int]) -> Endpoint:
            name, zone, host = item
            ip = f"{prefix}.{host}"
            out = demo.openstack(
                *("server", "create", name, "--flavor", "m1.tiny", "--image", "isthmus-minimal"),
                *("--nic", f"net-id={net['id']},v4-fixed-ip={ip}"),
                *("--availability-zone", zone, "--wait", "-f", "json"),
                cloud=OTHER_CLOUD,
            )
            server = json.loads(out)
            demo.say(f"{name} {server['id']} {server['status']} in {zone}: {ip}")
            return Endpoint(name, server["id"], ip, OTHER_PROJECT)

        with ThreadPoolExecutor(len(OTHER_SERVERS)) as pool:
            self.endpoints += list(pool.map(boot, OTHER_SERVERS))

    def cleanup(self, demo: Demo) -> None:
        """The second tenant's servers, network, user and project (as that tenant, then
        as admin); what was never made is skipped."""
        if not self.other_made:
            return
        mine = [e.name for e in self.endpoints if e.tenant == OTHER_PROJECT]
        if mine:
            demo.openstack("server", "delete", "--wait", *mine, cloud=OTHER_CLOUD)
        demo.openstack_batch(
            [f"subnet delete {OTHER_SUBNET}", f"network delete {OTHER_NETWORK}"],
            cloud=OTHER_CLOUD,
        )
        demo.openstack_batch(
            [f"user delete {OTHER_PROJECT}-user", f"project delete {OTHER_PROJECT}"],
            cloud="isthmus",
        )
        demo.say(f"project {OTHER_PROJECT}: servers, network, user and project deleted")

    # -- the story ------------------------------------------------------------------------------

    def run(self, demo: Demo, servers: dict[str, dict[str, Any]]) -> None:
        """`servers`: the demo project's servers by zone (as `server create -f json` gave)."""
        if demo.data_plane_missing is not None:
            with demo.step("Data plane: skipped"):
                demo.say(
                    f"[yellow]control-plane only ({demo.data_plane_missing}): the servers have"
                    " no network stack here, so no pings[/]"
                )
            return
        for zone, server in servers.items():
            addresses = demo.sdk.compute.get_server(server["id"]).addresses or {}
            ip = next(a["addr"] for nets in addresses.values() for a in nets)
            self.endpoints.append(Endpoint(f"demo-{zone}", server["id"], ip, "demo"))
        with demo.step(f"A second tenant, {OTHER_PROJECT}, with the same CIDR {self.cidr}"):
            self.make_other_tenant(demo)
        with demo.step("Pinging every pair with `isthmus server exec SERVER -- ping -c1 -W2 IP`"):
            pairs = [(s, t) for s in self.endpoints for t in self.endpoints if s is not t]
            same = [(s, t) for s, t in pairs if s.tenant == t.tenant]
            across = [(s, t) for s, t in pairs if s.tenant != t.tenant]
            with ThreadPoolExecutor(PARALLEL) as pool:
                results = list(
                    pool.map(lambda p: self.probe(demo, p[0], p[1], until_answered=True), same)
                )
                results += list(
                    pool.map(lambda p: self.probe(demo, p[0], p[1], until_answered=False), across)
                )
            self.show(demo, results)
            silent = [r for r in results if r.same_tenant and not r.answered]
            leaked = [r for r in results if not r.same_tenant and r.answered]
            if silent or leaked:
                wrong = [f"{r.source.name} -> {r.target.name} no reply" for r in silent]
                wrong += [f"{r.source.name} -> {r.target.name} answered" for r in leaked]
                raise DemoFailed("unexpected reachability: " + "; ".join(wrong))

    def show(self, demo: Demo, results: list[Result]) -> None:
        table = Table(title="ping -c1 -W2 (row: from, column: to)", title_justify="left")
        table.add_column("from \\ to")
        for target in self.endpoints:
            table.add_column(f"{target.name}\n{target.ip}", justify="center")
        by_pair = {(r.source.server_id, r.target.server_id): r for r in results}
        for source in self.endpoints:
            cells = []
            for target in self.endpoints:
                result = by_pair.get((source.server_id, target.server_id))
                if result is None:
                    cells.append("·")
                elif result.answered:
                    cells.append(f"[green]reply[/] [dim]{result.seconds:.1f}s[/]")
                else:
                    cells.append("[red]no reply[/]" if result.same_tenant else "[yellow]none[/]")
            table.add_row(f"{source.name} ({source.tenant})", *cells)
        demo.console.print(table)
        same = [r for r in results if r.same_tenant]
        across = [r for r in results if not r.same_tenant]
        slowest = max((r.seconds for r in same if r.answered), default=0.0)
        demo.say(
            f"same tenant: {sum(r.answered for r in same)}/{len(same)} pairs answered"
            f" (slowest {slowest:.1f}s, {sum(r.tries for r in same)} pings)"
        )
        demo.say(
            f"across tenants: {sum(r.answered for r in across)}/{len(across)} pairs answered"
            " (the same CIDR, another segment: isolated)"
        )
