"""Server actions through the real `openstack` CLI (python-openstackclient, which
negotiates the microversion itself), each server named as the CLI takes it:
pause/unpause, suspend/resume, lock (with a reason) / unlock, console log,
add/remove port, rebuild, resize with confirm and revert, shelve/unshelve into
another zone."""

from __future__ import annotations

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


def _status(cloud: Cloud, name: str) -> str:
    cloud.wait_idle()
    return str(_json(cloud, ["server", "show", name])["status"])


def test_openstack_cli_server_actions(live_cloud: Cloud) -> None:
    cloud = live_cloud
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="act-net")
    server = _json(
        cloud,
        [
            "server", "create", "--flavor", "m1.tiny", "--image", "isthmus-minimal",
            "--network", net, "--availability-zone", "site-a", "--wait", "act-vm",
        ],
    )  # fmt: skip
    assert server["status"] == "ACTIVE"
    for verb, status in (
        ("pause", "PAUSED"),
        ("unpause", "ACTIVE"),
        ("suspend", "SUSPENDED"),
        ("resume", "ACTIVE"),
    ):
        _run(cloud, ["server", verb, "act-vm"])
        assert _status(cloud, "act-vm") == status, verb
    _run(cloud, ["server", "lock", "--reason", "audit", "act-vm"])
    shown = _json(cloud, ["server", "show", "act-vm"])
    assert shown["locked"] is True and shown["locked_reason"] == "audit"
    assert cloud.clouds_yaml is not None
    refused = run_openstack(["server", "stop", "act-vm"], cloud.clouds_yaml, "isthmus-demo")
    assert refused.returncode != 0 and "is locked" in refused.stderr
    _run(cloud, ["server", "unlock", "act-vm"])
    assert _json(cloud, ["server", "show", "act-vm"])["locked"] is False
    log = _run(cloud, ["console", "log", "show", "act-vm"])
    assert "booting act-vm" in log and "now paused" in log
    short = _run(cloud, ["console", "log", "show", "--lines", "3", "act-vm"]).strip()
    assert short and short.splitlines() == log.strip().splitlines()[-2:]
    # interfaces: a port by name in, then out again
    _json(cloud, ["port", "create", "--network", net, "act-port"])
    _run(cloud, ["server", "add", "port", "act-vm", "act-port"])
    cloud.wait_idle()
    port = _json(cloud, ["port", "show", "act-port"])
    assert port["device_id"] == server["id"]
    _run(cloud, ["server", "remove", "port", "act-vm", "act-port"])
    cloud.wait_idle()
    assert _json(cloud, ["port", "show", "act-port"])["device_id"] == ""
    # rebuild keeps the server and its addresses
    before = _json(cloud, ["server", "show", "act-vm"])["addresses"]
    _run(cloud, ["server", "rebuild", "--image", "isthmus-minimal", "--wait", "act-vm"])
    assert _json(cloud, ["server", "show", "act-vm"])["id"] == server["id"]
    assert _status(cloud, "act-vm") == "ACTIVE"
    assert _json(cloud, ["server", "show", "act-vm"])["addresses"] == before
    # resize: VERIFY_RESIZE, then confirm; again, then revert
    _run(cloud, ["server", "resize", "--flavor", "m1.small", "--wait", "act-vm"])
    assert _status(cloud, "act-vm") == "VERIFY_RESIZE"
    _run(cloud, ["server", "resize", "--confirm", "act-vm"])
    assert _status(cloud, "act-vm") == "ACTIVE"
    assert "m1.small" in str(_json(cloud, ["server", "show", "act-vm"])["flavor"])
    _run(cloud, ["server", "resize", "--flavor", "m1.tiny", "--wait", "act-vm"])
    assert _status(cloud, "act-vm") == "VERIFY_RESIZE"
    _run(cloud, ["server", "resize", "--revert", "act-vm"])
    assert _status(cloud, "act-vm") == "ACTIVE"
    assert "m1.small" in str(_json(cloud, ["server", "show", "act-vm"])["flavor"])
    # shelve offloads; unshelve into another zone
    _run(cloud, ["server", "shelve", "--wait", "act-vm"])
    assert _status(cloud, "act-vm") == "SHELVED_OFFLOADED"
    _run(cloud, ["server", "unshelve", "--availability-zone", "site-c", "--wait", "act-vm"])
    back = _json(cloud, ["server", "show", "act-vm"])
    assert back["status"] == "ACTIVE" and back["OS-EXT-AZ:availability_zone"] == "site-c"
    assert back["addresses"] == before
    _run(cloud, ["server", "delete", "--wait", "act-vm"])
