"""A real OpenStack (Debian's Zed packages, tests/fixtures/openstack_site.py) as one
site of a real `isthmus up`, next to an embedded site: the `openstack` CLI at Isthmus
makes a network, subnet, port, image, volume and server in the OpenStack site's zone,
and each is checked STRAIGHT AT THE SITE with openstacksdk (Isthmus's MAC, fixed IP,
CIDR, image checksum), then deleted through Isthmus and checked gone there. Then an
outage: the site's nova-api and neutron-server are killed (by their recorded pids)
while servers are being created in both sites; Isthmus keeps answering, the embedded
site's servers go ACTIVE, the OpenStack site's wait with a reason; the same command
lines restarted, everything converges with no duplicate in the site."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest
from openstack.config import OpenStackConfig
from openstack.connection import Connection

from tests.fixtures.isthmus_process import ISTHMUS, Running, clean_env, start_isthmus
from tests.fixtures.openstack_cli import openstack_json_batch, run_openstack_batch
from tests.fixtures.openstack_site import OpenStackSite
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.cli,
    pytest.mark.slow,
    # the first test may wait for the site's bring-up (started at collection)
    pytest.mark.timeout(900),
    pytest.mark.filterwarnings("ignore:::openstack"),
]

SITE = "os1"
EMBEDDED = "emb"
API = "/isthmus/v1"


@dataclass
class Stack:
    """An `isthmus up` with an embedded site and the real OpenStack site."""

    isthmus: Running
    site: OpenStackSite

    def isthmus_conn(self, cloud: str = "isthmus-demo") -> Connection:
        config = OpenStackConfig(config_files=[str(self.isthmus.clouds_yaml)], load_envvars=False)
        return openstack.connection.Connection(config=config.get_one(cloud=cloud))

    def admin_get(self, path: str) -> httpx.Response:
        token = self.isthmus_conn("isthmus").auth_token
        return httpx.get(f"{self.isthmus.url}{API}{path}", headers={"X-Auth-Token": token})

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(ISTHMUS), *args],
            env=clean_env(OS_CLIENT_CONFIG_FILE=str(self.isthmus.clouds_yaml)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"isthmus {args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def sites(self) -> dict[str, dict[str, Any]]:
        listed = json.loads(self.cli("site", "list", "--json").stdout)
        return {site["name"]: site for site in listed}


@pytest.fixture(scope="module")
def stack(
    openstack_site: OpenStackSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("journey")
    config = base / "isthmus.yaml"
    config.write_text(
        "health_interval: 1\n"
        f"sites:\n  - name: {EMBEDDED}\n    driver: local\n    config: {{boot_seconds: 1}}\n"
    )
    running = start_isthmus(base / "data", None, "--config", str(config))
    stack = Stack(running, openstack_site)
    try:
        added = json.loads(
            stack.cli(
                *("site", "add", SITE, "--driver", "openstack", "--json"),
                *("--cloud", openstack_site.cloud),
                *("--clouds-yaml", str(openstack_site.clouds_yaml)),
                *("--set", f"default_image={openstack_site.default_image}"),
                *("--set", "timeout=10"),
            ).stdout
        )
        assert added["health"] == "up", added
        assert added["config"]["cloud"] == openstack_site.cloud
        assert added["config"]["clouds_yaml"] == str(Path(openstack_site.clouds_yaml).absolute())
        yield stack
    finally:
        running.stop()


def site_object(conn: Connection, kind: str, isthmus_id: str) -> Any | None:
    """The object Isthmus made for `isthmus_id` in the site (named isthmus-<id>), or None."""
    name = f"isthmus-{isthmus_id}"
    listing = {
        "network": lambda: conn.network.networks(name=name),
        "subnet": lambda: conn.network.subnets(name=name),
        "port": lambda: conn.network.ports(name=name),
        "server": lambda: conn.compute.servers(name=f"^{name}$"),
        "volume": lambda: conn.block_storage.volumes(name=name),
        "image": lambda: conn.image.images(name=name),
    }[kind]
    found = [obj for obj in listing() if obj.name == name]
    assert len(found) <= 1, f"{len(found)} {kind}s named {name} in the site"
    return found[0] if found else None


def test_cli_journey_lands_in_the_real_site_and_leaves_it(stack: Stack, tmp_path: Path) -> None:
    image_file = tmp_path / "journey.img"
    image_file.write_bytes(b"isthmus journey image\n" * 4096)
    made = openstack_json_batch(
        [
            "network create jnet",
            "subnet create --network jnet --subnet-range 10.91.0.0/24 jsub",
            "port create --network jnet jport",
            f"image create --disk-format raw --container-format bare --file {image_file} jimg",
            f"volume create --size 1 --availability-zone {SITE} jvol",
            f"server create --flavor m1.tiny --image jimg --port jport"
            f" --availability-zone {SITE} jvm",
        ],
        stack.isthmus.clouds_yaml,
        "isthmus-demo",
    )
    network, subnet, port, image, volume, server = made
    conn = stack.isthmus_conn()
    wait_for(
        lambda: conn.compute.get_server(server["id"]).status == "ACTIVE",
        timeout=120,
        interval=0.5,
        what="server ACTIVE at Isthmus",
    )
    wait_for(
        lambda: conn.block_storage.get_volume(volume["id"]).status == "available",
        timeout=120,
        interval=0.5,
        what="volume available at Isthmus",
    )
    assert conn.compute.get_server(server["id"]).availability_zone == SITE

    site = stack.site.connection()
    at_site = {
        kind: wait_for(
            lambda k=kind, i=obj["id"]: site_object(site, k, i),
            timeout=120,
            interval=0.5,
            what=f"{kind} in the site",
        )
        for kind, obj in (
            ("network", network),
            ("subnet", subnet),
            ("port", port),
            ("server", server),
            ("volume", volume),
            ("image", image),
        )
    }
    assert at_site["subnet"].cidr == "10.91.0.0/24" == subnet["cidr"]
    assert at_site["subnet"].gateway_ip == subnet["gateway_ip"]
    assert at_site["port"].mac_address == port["mac_address"]
    chosen = [f["ip_address"] for f in port["fixed_ips"]]
    assert [f["ip_address"] for f in at_site["port"].fixed_ips] == chosen
    nova = site.compute.get_server(at_site["server"].id)
    assert nova.status == "ACTIVE" and nova.metadata["isthmus_id"] == server["id"]
    assert at_site["port"].device_id == nova.id  # booted on the port Isthmus made
    assert at_site["volume"].size == 1 and at_site["volume"].status == "available"
    assert at_site["image"].checksum == conn.image.get_image(image["id"]).checksum

    deletes = [
        "server delete --wait jvm",
        "volume delete jvol",
        "port delete jport",
        "image delete jimg",
        "subnet delete jsub",
        "network delete jnet",
    ]
    for item in run_openstack_batch(deletes, stack.isthmus.clouds_yaml, "isthmus-demo"):
        assert "rror" not in item.stderr, f"{item.command}: {item.stderr}"
    for kind, obj in (
        ("server", server),
        ("volume", volume),
        ("port", port),
        ("image", image),
        ("subnet", subnet),
        ("network", network),
    ):
        wait_for(
            lambda k=kind, i=obj["id"]: site_object(site, k, i) is None,
            timeout=120,
            interval=0.5,
            what=f"{kind} gone from the site",
        )


def test_site_credentials_are_never_shown_or_logged(stack: Stack) -> None:
    password = stack.site.password
    shown = stack.cli("site", "show", SITE, "--json").stdout
    assert json.loads(shown)["name"] == SITE and password not in shown
    assert password not in stack.cli("site", "list", "--json").stdout
    api = stack.admin_get(f"/sites/{SITE}")
    assert api.status_code == 200 and password not in api.text
    assert password not in stack.isthmus.output()


def boot(conn: Connection, name: str, zone: str, image: str, network: str) -> str:
    flavor = conn.compute.find_flavor("m1.tiny")
    server = conn.compute.create_server(
        name=name,
        flavor_id=flavor.id,
        image_id=image,
        networks=[{"uuid": network}],
        availability_zone=zone,
    )
    return str(server.id)


def isthmus_servers(conn: Connection) -> dict[str, dict[str, Any]]:
    """Server bodies as Isthmus serves them (with `isthmus:pending_reason`)."""
    response = conn.compute.get("/servers/detail")
    assert response.status_code == 200, response.text
    return {s["id"]: s for s in response.json()["servers"]}


def test_outage_of_nova_and_neutron_mid_create_converges_without_duplicates(
    stack: Stack, tmp_path: Path
) -> None:
    conn = stack.isthmus_conn()
    site = stack.site.connection()
    image_file = tmp_path / "outage.img"
    image_file.write_bytes(b"outage image\n" * 1024)
    image = conn.image.create_image(
        name="outage-img",
        filename=str(image_file),
        disk_format="raw",
        container_format="bare",
        wait=True,
    )
    network = conn.network.create_network(name="outage-net")
    conn.network.create_subnet(network_id=network.id, cidr="10.92.0.0/24", ip_version=4)
    first = [boot(conn, f"os-{i}", SITE, image.id, network.id) for i in range(3)]
    first.append(boot(conn, "emb-0", EMBEDDED, image.id, network.id))

    # mid-way: nova-api dies while Isthmus's engine creates the first servers there
    stack.site.kill("nova-api")

    # builds Nova accepted before that finish binding their ports (a build whose port
    # cannot be bound fails for good, in Nova): wait for them before neutron-server dies
    def bound() -> bool:
        ports = [p for p in site.network.ports() if (p.name or "").startswith("isthmus-")]
        return all(p.status == "ACTIVE" for p in ports if p.device_id)

    wait_for(bound, timeout=180, interval=0.5, what="ports of accepted builds bound")
    stack.site.kill("neutron-server")
    later = [boot(conn, f"os-{i}", SITE, image.id, network.id) for i in range(3, 5)]
    later.append(boot(conn, "emb-1", EMBEDDED, image.id, network.id))
    ours = first + later
    in_site = [s for s in ours if isthmus_servers(conn)[s]["OS-EXT-AZ:availability_zone"] == SITE]
    embedded = [s for s in ours if s not in in_site]
    assert len(in_site) == 5 and len(embedded) == 2

    wait_for(
        lambda: stack.sites()[SITE]["health"] == "down",
        timeout=60,
        interval=0.5,
        what="the site shown down",
    )
    listed = isthmus_servers(conn)  # the API still answers, from its store
    assert set(ours) <= set(listed)
    wait_for(
        lambda: all(isthmus_servers(conn)[s]["status"] == "ACTIVE" for s in embedded),
        timeout=120,
        interval=0.5,
        what="embedded servers ACTIVE",
    )
    waiting = [s for s in in_site if isthmus_servers(conn)[s]["status"] == "BUILD"]
    assert set(later) & set(in_site) <= set(waiting)  # asked for while the site was down
    for server in waiting:
        reason = isthmus_servers(conn)[server].get("isthmus:pending_reason") or ""
        assert SITE in reason, (server, reason)

    for service in ("neutron-server", "nova-api"):
        stack.site.restart(service)
    wait_for(
        lambda: stack.sites()[SITE]["health"] == "up",
        timeout=120,
        interval=0.5,
        what="the site back up",
    )
    wait_for(
        lambda: all(s["status"] == "ACTIVE" for i, s in isthmus_servers(conn).items() if i in ours),
        timeout=180,
        interval=0.5,
        what="every server ACTIVE",
    )
    made = [s for s in site.compute.servers() if (s.name or "").startswith("isthmus-")]
    names = sorted(s.name for s in made)
    assert names == sorted(f"isthmus-{s}" for s in in_site), "duplicates or strays in the site"
    assert all(s.status == "ACTIVE" for s in made)

    for server in ours:
        conn.compute.delete_server(server)
    wait_for(
        lambda: not list(site.compute.servers()),
        timeout=120,
        interval=0.5,
        what="servers gone from the site",
    )
    wait_for(
        lambda: not set(ours) & set(isthmus_servers(conn)),
        timeout=120,
        interval=0.5,
        what="servers gone from Isthmus",
    )
    conn.network.delete_network(network)
    conn.image.delete_image(image)


def test_site_neutron_offers_bgpvpn(openstack_site: OpenStackSite) -> None:
    """The site's Neutron loads networking-bgpvpn's service plugin (Dummy driver), for the
    fabric work to come: the API extension is listed and a BGP VPN can be made."""
    admin = openstack_site.connection(admin=True)
    assert "bgpvpn" in {ext.alias for ext in admin.network.extensions()}
    url = openstack_site.endpoint("neutron-server").rstrip("/") + "/v2.0/bgpvpn/bgpvpns"
    made = httpx.post(
        url,
        json={"bgpvpn": {"name": "probe", "route_targets": ["64512:1"]}},
        headers={"X-Auth-Token": admin.auth_token},
    )
    assert made.status_code == 201, made.text
    vpn = made.json()["bgpvpn"]
    assert vpn["route_targets"] == ["64512:1"]
    gone = httpx.delete(f"{url}/{vpn['id']}", headers={"X-Auth-Token": admin.auth_token})
    assert gone.status_code == 204, gone.text
