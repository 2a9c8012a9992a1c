"""Ansible on top of Isthmus: the openstack.cloud collection that PyPI's `ansible` 12.3.0
bundles runs playbooks/multi_site.yml (network, subnet, router, security group and rule, key
pair, a server in each of the three sites' zones, a volume attached to one) three times
against a live Isthmus over real HTTP: it creates everything, a second run changes nothing
(changed=0 in the PLAY RECAP), and a run with state=absent removes everything.

Ansible lives in its own virtualenv, .venv-ansible (scripts/setup.sh --ansible, which
`make test` passes), with the openstacksdk the collection needs; ISTHMUS_ANSIBLE_VENV points
elsewhere. Without it the test skips, or fails when ISTHMUS_REQUIRE_ANSIBLE=1 (`make test`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.support import Cloud

pytestmark = [pytest.mark.ansible, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).parent / "playbooks" / "multi_site.yml"
ZONES = ("site-a", "site-b", "site-c")
PREFIX = "ans"


def ansible_venv() -> Path:
    """The virtualenv holding ansible-playbook (skip, or fail if it is required, without it)."""
    venv = Path(os.environ.get("ISTHMUS_ANSIBLE_VENV") or REPO / ".venv-ansible")
    if not (venv / "bin" / "ansible-playbook").exists():
        reason = f"no ansible-playbook in {venv} (scripts/setup.sh --ansible installs it)"
        if os.environ.get("ISTHMUS_REQUIRE_ANSIBLE") == "1":
            pytest.fail(f"{reason} and ISTHMUS_REQUIRE_ANSIBLE=1")
        pytest.skip(reason)
    return venv


def public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    blob = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return blob.decode() + " ansible@isthmus-test"


def playbook_env(cloud: Cloud, home: Path) -> dict[str, str]:
    """The caller's environment without OS_*/ANSIBLE_*, pointed at this test's clouds.yaml,
    with Ansible's home, temp dirs and config inside `home` so nothing leaks in or out."""
    assert cloud.clouds_yaml is not None
    (home / "tmp").mkdir(parents=True)
    config = home / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ANSIBLE_", "VIRTUAL_ENV"))
    }
    env.update(
        HOME=str(home),
        OS_CLIENT_CONFIG_FILE=str(cloud.clouds_yaml),
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "tmp"),
        ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_PIPELINING="True",  # modules fed to the interpreter, not copied to temp files
        ANSIBLE_NOCOLOR="True",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_DEPRECATION_WARNINGS="False",
        PYTHONWARNINGS="ignore",
    )
    return env


def run_playbook(
    venv: Path, env: dict[str, str], home: Path, **extra: str
) -> tuple[dict[str, int], str]:
    """ansible-playbook on localhost (local connection, the venv's own Python running the
    modules); the PLAY RECAP's counts for localhost and the output. Asserts it succeeded;
    prints its time."""
    variables = {
        "cloud": "isthmus-demo",
        "prefix": PREFIX,
        "ansible_python_interpreter": str(venv / "bin" / "python"),
        **extra,
    }
    command = [
        str(venv / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
        "-e", json.dumps(variables), str(PLAYBOOK),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        command, env=env, cwd=home, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    shown = {k: v for k, v in extra.items() if k != "public_key"}
    print(f"ansible-playbook {shown or ''}: exit {proc.returncode} in {took:.1f} s")
    output = f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    recap = re.search(r"^localhost\s*:\s*(.*)$", proc.stdout, re.MULTILINE)
    assert proc.returncode == 0 and recap, output
    counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}
    print(f"  PLAY RECAP localhost: {counts}")
    return counts, output


def named(cloud: Cloud, path: str, key: str) -> list[dict[str, Any]]:
    """The demo project's resources at `path` whose name starts with the playbook's prefix."""
    response = cloud.client.get(path, headers=cloud.demo)
    assert response.status_code == 200, response.text
    return [r for r in response.json()[key] if (r.get("name") or "").startswith(PREFIX)]


def check_created(cloud: Cloud, key: str) -> set[str]:
    """Everything the playbook makes is there, as asked; returns the ids of it all."""
    (network,) = named(cloud, "/network/v2.0/networks", "networks")
    (subnet,) = named(cloud, "/network/v2.0/subnets", "subnets")
    assert (subnet["network_id"], subnet["cidr"]) == (network["id"], "10.42.0.0/24")
    (router,) = named(cloud, "/network/v2.0/routers", "routers")
    ports = cloud.client.get(
        f"/network/v2.0/ports?device_id={router['id']}", headers=cloud.demo
    ).json()["ports"]
    assert [ip["subnet_id"] for p in ports for ip in p["fixed_ips"]] == [subnet["id"]]
    (group,) = named(cloud, "/network/v2.0/security-groups", "security_groups")
    rules = [r for r in group["security_group_rules"] if r["direction"] == "ingress"]
    assert [(r["protocol"], r["port_range_min"], r["port_range_max"], r["remote_ip_prefix"])
            for r in rules] == [("tcp", 22, 22, "0.0.0.0/0")]  # fmt: skip
    keypairs = cloud.client.get("/compute/v2.1/os-keypairs", headers=cloud.demo).json()
    assert [(k["keypair"]["name"], k["keypair"]["public_key"]) for k in keypairs["keypairs"]] == [
        (f"{PREFIX}-key", key)
    ]
    servers = named(cloud, "/compute/v2.1/servers/detail", "servers")
    by_name = {s["name"]: s for s in servers}
    assert sorted(by_name) == [f"{PREFIX}-{zone}" for zone in ZONES]
    for zone in ZONES:
        server = by_name[f"{PREFIX}-{zone}"]
        assert (server["status"], server["OS-EXT-AZ:availability_zone"]) == ("ACTIVE", zone)
        assert server["key_name"] == f"{PREFIX}-key"
        assert [g["name"] for g in server["security_groups"]] == [f"{PREFIX}-sg"]
        assert list(server["addresses"]) == [f"{PREFIX}-net"]
    (volume,) = named(cloud, "/volume/v3/volumes/detail", "volumes")
    assert (volume["status"], volume["availability_zone"]) == ("in-use", "site-a")
    attached_to = by_name[f"{PREFIX}-site-a"]["id"]
    assert [a["server_id"] for a in volume["attachments"]] == [attached_to]
    listed = cloud.client.get(
        f"/compute/v2.1/servers/{attached_to}/os-volume_attachments", headers=cloud.demo
    ).json()["volumeAttachments"]
    assert [a["volumeId"] for a in listed] == [volume["id"]]
    return {network["id"], subnet["id"], router["id"], group["id"], volume["id"]} | {
        s["id"] for s in servers
    }


def check_removed(cloud: Cloud, made: set[str]) -> None:
    """Nothing the playbook made is left, in the API nor in any site."""
    for path, key in (
        ("/network/v2.0/networks", "networks"),
        ("/network/v2.0/subnets", "subnets"),
        ("/network/v2.0/routers", "routers"),
        ("/network/v2.0/security-groups", "security_groups"),
        ("/compute/v2.1/servers/detail", "servers"),
        ("/volume/v3/volumes/detail", "volumes"),
    ):
        assert named(cloud, path, key) == [], path
    assert cloud.client.get("/compute/v2.1/os-keypairs", headers=cloud.demo).json() == {
        "keypairs": []
    }
    ports = cloud.client.get("/network/v2.0/ports", headers=cloud.demo).json()["ports"]
    assert ports == []
    cloud.wait_idle()
    for zone in ZONES:
        left = [o for o in cloud.service.sites.get(zone).inventory() if o.isthmus_id in made]
        assert left == [], zone


def test_playbook_creates_is_idempotent_and_removes(live_cloud: Cloud, tmp_path: Path) -> None:
    venv = ansible_venv()
    home = tmp_path / "ansible-home"
    env = playbook_env(live_cloud, home)
    key = public_key()

    first, output = run_playbook(venv, env, home, public_key=key)
    assert (first["failed"], first["changed"]) == (0, first["ok"]), output  # each task made
    made = check_created(live_cloud, key)

    second, output = run_playbook(venv, env, home, public_key=key)
    assert (second["failed"], second["changed"]) == (0, 0), output
    assert check_created(live_cloud, key) == made

    third, output = run_playbook(venv, env, home, public_key=key, state="absent")
    assert (third["failed"], third["changed"]) == (0, third["ok"]), output  # each removed
    check_removed(live_cloud, made)
