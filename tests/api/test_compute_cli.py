"""Compute against the real clients: the `openstack` CLI (python-openstackclient)
and openstacksdk, over HTTP, negotiating the microversion themselves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.openstack_cli import openstack_json, run_openstack
from tests.support import Cloud, add_network, project_id

pytestmark = pytest.mark.cli


def _run(cloud: Cloud, args: list[str], who: str = "isthmus-demo") -> str:
    assert cloud.clouds_yaml is not None
    proc = run_openstack(args, cloud.clouds_yaml, who)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _json(cloud: Cloud, args: list[str], who: str = "isthmus-demo") -> Any:
    assert cloud.clouds_yaml is not None
    return openstack_json(args, cloud.clouds_yaml, who)


def test_openstack_cli_server_lifecycle(live_cloud: Cloud) -> None:
    cloud = live_cloud
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="cli-net")
    # at 2.1, the flavor shown as "name (id)" (from 2.47 the CLI shows the embedded
    # flavor: tests/api/test_compute_microversions_cli.py)
    server = _json(
        cloud,
        [
            "--os-compute-api-version", "2.1",
            "server", "create", "--flavor", "m1.tiny", "--image", "isthmus-minimal",
            "--network", net, "--availability-zone", "site-b", "--wait", "cli-vm",
        ],
    )  # fmt: skip
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-AZ:availability_zone"] == "site-b"
    assert server["flavor"].startswith("m1.tiny")
    assert "isthmus-minimal" in server["image"]
    listed = _json(cloud, ["server", "list"])
    assert [(s["Name"], s["Status"]) for s in listed] == [("cli-vm", "ACTIVE")]
    assert listed[0]["Flavor"] == "m1.tiny" and listed[0]["Image"] == "isthmus-minimal"
    assert "cli-net" in str(listed[0]["Networks"])
    shown = _json(cloud, ["server", "show", "cli-vm"])
    assert shown["id"] == server["id"] and shown["addresses"]
    _run(cloud, ["server", "stop", "cli-vm"])
    cloud.wait_idle()
    assert _json(cloud, ["server", "show", "cli-vm"])["status"] == "SHUTOFF"
    _run(cloud, ["server", "start", "cli-vm"])
    cloud.wait_idle()
    assert _json(cloud, ["server", "show", "cli-vm"])["status"] == "ACTIVE"
    assert cloud.clouds_yaml is not None
    wrong = run_openstack(["server", "start", "cli-vm"], cloud.clouds_yaml, "isthmus-demo")
    assert wrong.returncode != 0 and "409" in wrong.stderr
    admin_view = _json(cloud, ["server", "list", "--all-projects", "--long"], who="isthmus")
    assert [s["Availability Zone"] for s in admin_view] == ["site-b"]
    _run(cloud, ["server", "delete", "--wait", "cli-vm"])
    assert _json(cloud, ["server", "list"]) == []


def test_openstack_cli_flavors_keypairs_zones_limits(live_cloud: Cloud, tmp_path: Path) -> None:
    cloud = live_cloud
    flavors = _json(cloud, ["flavor", "list"])
    assert {f["Name"] for f in flavors} >= {"m1.tiny", "m1.small", "m1.xlarge"}
    tiny = next(f for f in flavors if f["Name"] == "m1.tiny")
    assert (tiny["RAM"], tiny["Disk"], tiny["VCPUs"], tiny["Is Public"]) == (512, 1, 1, True)
    key_file = tmp_path / "cli-key"
    created = _json(cloud, ["keypair", "create", "--private-key", str(key_file), "cli-key"])
    assert created["name"] == "cli-key" and created["fingerprint"]
    assert key_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert [k["Name"] for k in _json(cloud, ["keypair", "list"])] == ["cli-key"]
    zones = _json(cloud, ["availability", "zone", "list", "--compute"])
    assert sorted(z["Zone Name"] for z in zones) == ["site-a", "site-b", "site-c"]
    assert {z["Zone Status"] for z in zones} == {"available"}
    admin_zones = _json(cloud, ["availability", "zone", "list", "--compute", "--long"], "isthmus")
    assert sorted(z["Host Name"] for z in admin_zones) == ["site-a", "site-b", "site-c"]
    limits = {row["Name"]: row["Value"] for row in _json(cloud, ["limits", "show", "--absolute"])}
    # the CLI prints the SDK's names for Nova's maxTotalInstances, totalInstancesUsed, ...
    assert limits["instances"] == 100 and limits["instances_used"] == 0
    assert limits["keypairs"] == 100 and limits["total_cores_used"] == 0


@pytest.fixture
def sdk_connection(live_cloud: Cloud) -> Iterator[Any]:
    openstack = pytest.importorskip("openstack")
    assert live_cloud.clouds_yaml is not None
    previous = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(live_cloud.clouds_yaml)
    try:
        config = openstack.config.OpenStackConfig(config_files=[str(live_cloud.clouds_yaml)])
        connection = openstack.connect(cloud="isthmus-demo", config=config)
        yield connection
        connection.close()
    finally:
        if previous is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = previous


def test_openstacksdk_servers_and_keypairs(live_cloud: Cloud, sdk_connection: Any) -> None:
    conn = sdk_connection
    net, _ = add_network(live_cloud.service, project_id(live_cloud.service, "demo"))
    image = conn.image.find_image("isthmus-minimal", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    keypair = conn.compute.create_keypair(name="sdk-key")
    assert keypair.private_key and keypair.fingerprint
    created = conn.compute.create_server(
        name="sdk-vm",
        image_id=image.id,
        flavor_id=flavor.id,
        networks=[{"uuid": net}],
        key_name="sdk-key",
        metadata={"made-by": "sdk"},
        min_count=2,
        max_count=2,
    )
    server = conn.compute.wait_for_server(created, status="ACTIVE", wait=60)
    assert server.availability_zone in ("site-a", "site-b", "site-c")
    names = sorted(s.name for s in conn.compute.servers())
    assert names == ["sdk-vm-1", "sdk-vm-2"]
    page = list(conn.compute.servers(paginated=True, limit=1))
    assert sorted(s.name for s in page) == names  # the SDK follows servers_links
    assert conn.compute.fetch_server_metadata(server).metadata == {"made-by": "sdk"}
    conn.compute.stop_server(server)
    conn.compute.wait_for_server(server, status="SHUTOFF", wait=60)
    conn.compute.reboot_server(server, "HARD")
    conn.compute.wait_for_server(server, status="ACTIVE", wait=60)
    for each in conn.compute.servers():
        conn.compute.delete_server(each)
        conn.compute.wait_for_delete(each, wait=60)
    assert list(conn.compute.servers()) == []
    limits = conn.compute.get_limits()
    assert limits.absolute.instances == 100
    conn.compute.delete_keypair("sdk-key")
    assert list(conn.compute.keypairs()) == []
