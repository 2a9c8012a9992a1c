"""Compute microversions through the real clients: the `openstack` CLI of the test
virtualenv (python-openstackclient 10 on openstacksdk 4, which negotiates the
newest version it knows: 2.96 for servers) with its default negotiation and with
`--os-compute-api-version 2.96`, and Debian bookworm's CLI (Zed: OSC 6 on
novaclient 18, which knows up to 2.92) at its default and at 2.92."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.openstack_cli import _env, openstack_json, run_openstack
from tests.support import Cloud, add_network, project_id

pytestmark = pytest.mark.cli

PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl cli@test"
)
DEBIAN_OPENSTACK = Path("/usr/bin/openstack")


# `server create --wait` is not used: its clients poll every 5 s, uvicorn closes an idle
# keep-alive connection after 5 s, and the two racing once reset a poll (seen here with
# Debian's CLI); the engine is waited for instead.


def _json(cloud: Cloud, args: list[str], who: str = "isthmus-demo") -> Any:
    assert cloud.clouds_yaml is not None
    return openstack_json(args, cloud.clouds_yaml, who)


def _debian_json(cloud: Cloud, args: list[str], who: str = "isthmus-demo") -> Any:
    assert cloud.clouds_yaml is not None
    proc = subprocess.run(
        [str(DEBIAN_OPENSTACK), "--os-cloud", who, *args, "-f", "json"],
        env=_env(cloud.clouds_yaml),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_cli_negotiates_the_newest_and_2_96(live_cloud: Cloud, tmp_path: Path) -> None:
    cloud = live_cloud
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="mv-cli-net")
    latest = ["--os-compute-api-version", "2.96"]
    server = _json(
        cloud,
        [
            *latest, "server", "create", "--flavor", "m1.tiny", "--image", "isthmus-minimal",
            "--network", net, "--availability-zone", "site-a", "--description", "cli made",
            "--hostname", "web-1.example.org", "--tag", "blue", "mv-cli",
        ],
    )  # fmt: skip
    cloud.wait_idle()  # (not --wait: see above)
    shown = _json(cloud, [*latest, "server", "show", "mv-cli"])
    assert shown["status"] == "ACTIVE"
    assert shown["description"] == "cli made"
    assert shown["pinned_availability_zone"] == "site-a"
    assert shown["OS-EXT-SRV-ATTR:hostname"] == "web-1.example.org"
    assert shown["locked"] is False and shown["tags"] == ["blue"]
    assert shown["flavor"]["original_name"] == "m1.tiny"  # 2.47's embedded flavor
    # the default negotiation (openstacksdk: the newest it knows) reads it as well
    default = _json(cloud, ["server", "show", "mv-cli"])
    assert default["id"] == server["id"] and default["description"] == "cli made"
    listed = _json(cloud, [*latest, "server", "list", "--long"])
    assert [s["Name"] for s in listed] == ["mv-cli"]
    assert _json(cloud, ["server", "list"])[0]["Status"] == "ACTIVE"
    flavor = _json(cloud, [*latest, "flavor", "show", "m1.tiny"])
    assert flavor["swap"] == 0 and flavor["properties"] == {}  # 2.75 and 2.61
    assert _json(cloud, ["flavor", "show", "m1.tiny"])["name"] == "m1.tiny"
    key_file = tmp_path / "key.pub"
    key_file.write_text(PUBLIC_KEY + "\n")
    made = _json(cloud, [*latest, "keypair", "create", "--public-key", str(key_file), "cli-key"])
    assert made["name"] == "cli-key" and made["type"] == "ssh"
    assert _json(cloud, ["keypair", "show", "cli-key"])["type"] == "ssh"
    assert cloud.clouds_yaml is not None
    generated = run_openstack(
        [*latest, "keypair", "create", "no-key"], cloud.clouds_yaml, "isthmus-demo"
    )
    # 2.92: no generated key pairs (the CLI makes the key itself, or the server says 400)
    if generated.returncode != 0:
        assert "400" in generated.stderr or "public_key" in generated.stderr
    too_new = run_openstack(
        ["--os-compute-api-version", "2.97", "server", "list"], cloud.clouds_yaml, "isthmus-demo"
    )
    assert too_new.returncode != 0


@pytest.mark.skipif(not DEBIAN_OPENSTACK.exists(), reason="Debian's openstack CLI not installed")
def test_debian_cli_at_its_default_and_at_2_92(live_cloud: Cloud, tmp_path: Path) -> None:
    cloud = live_cloud
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="deb-net")
    at_292 = ["--os-compute-api-version", "2.92"]
    server = _debian_json(
        cloud,
        [
            *at_292, "server", "create", "--flavor", "m1.tiny", "--image", "isthmus-minimal",
            "--network", net, "--description", "from zed", "deb-vm",
        ],
    )  # fmt: skip
    cloud.wait_idle()
    shown = _debian_json(cloud, [*at_292, "server", "show", "deb-vm"])
    assert shown["status"] == "ACTIVE"
    assert shown["description"] == "from zed" and shown["locked"] is False
    assert "original_name" in str(shown["flavor"])  # 2.47's embedded flavor, as the CLI shows it
    default = _debian_json(cloud, ["server", "show", "deb-vm"])
    assert default["id"] == server["id"]
    assert [s["Name"] for s in _debian_json(cloud, ["server", "list"])] == ["deb-vm"]
    assert _debian_json(cloud, [*at_292, "flavor", "show", "m1.tiny"])["name"] == "m1.tiny"
    key_file = tmp_path / "key.pub"
    key_file.write_text(PUBLIC_KEY + "\n")
    made = _debian_json(
        cloud, [*at_292, "keypair", "create", "--public-key", str(key_file), "deb-key"]
    )
    assert made["name"] == "deb-key"
