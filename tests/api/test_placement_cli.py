"""Placement across sites and the admin views with the real `openstack` CLI: a
server group with anti-affinity and servers created with `--hint group=`, landing
in three different sites (a fourth: ERROR, no valid host), then the admin's
hypervisors, compute services, aggregates and usage, by name where the CLI takes
names."""

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


def test_openstack_cli_server_group_anti_affinity_and_admin_views(live_cloud: Cloud) -> None:
    cloud = live_cloud
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="cli-net")
    group = _json(cloud, ["server", "group", "create", "--policy", "anti-affinity", "spread"])
    assert group["name"] == "spread" and group["policy"] == "anti-affinity"
    zones = []
    for i in range(3):
        server = _json(
            cloud,
            [
                "server", "create", "--flavor", "m1.tiny", "--image", "isthmus-minimal",
                "--network", net, "--hint", f"group={group['id']}", "--wait", f"vm{i}",
            ],
        )  # fmt: skip
        assert server["status"] == "ACTIVE"
        zones.append(server["OS-EXT-AZ:availability_zone"])
    assert sorted(zones) == ["site-a", "site-b", "site-c"]
    assert cloud.clouds_yaml is not None
    fourth = run_openstack(
        [
            "server", "create", "--flavor", "m1.tiny", "--image", "isthmus-minimal",
            "--network", net, "--hint", f"group={group['id']}", "--wait", "vm3",
        ],
        cloud.clouds_yaml,
        "isthmus-demo",
    )  # fmt: skip
    assert fourth.returncode != 0
    failed = _json(cloud, ["server", "show", "vm3"])
    assert failed["status"] == "ERROR" and "No valid host" in str(failed["fault"])
    shown = _json(cloud, ["server", "group", "show", "spread"])
    assert len(shown["members"]) == 4
    listed = _json(cloud, ["server", "group", "list"])
    assert [g["Name"] for g in listed] == ["spread"]

    hypervisors = _json(cloud, ["hypervisor", "list"], "isthmus")
    assert sorted(h["Hypervisor Hostname"] for h in hypervisors) == ["site-a", "site-b", "site-c"]
    assert {h["State"] for h in hypervisors} == {"up"}
    site_b = _json(cloud, ["hypervisor", "show", "site-b"], "isthmus")
    assert site_b["hypervisor_hostname"] == "site-b" and site_b["state"] == "up"
    stats = _json(cloud, ["hypervisor", "stats", "show"], "isthmus")
    assert stats["count"] == 3 and stats["running_vms"] >= 3
    services = _json(cloud, ["compute", "service", "list"], "isthmus")
    assert sorted((s["Binary"], s["Host"], s["Zone"]) for s in services) == [
        ("nova-compute", n, n) for n in ("site-a", "site-b", "site-c")
    ]
    _run(cloud, ["compute", "service", "set", "--disable", "site-c", "nova-compute"], "isthmus")
    services = _json(cloud, ["compute", "service", "list"], "isthmus")
    assert {s["Host"]: s["Status"] for s in services}["site-c"] == "disabled"
    _run(cloud, ["compute", "service", "set", "--enable", "site-c", "nova-compute"], "isthmus")
    aggregates = _json(cloud, ["aggregate", "list"], "isthmus")
    assert sorted((a["Name"], a["Availability Zone"]) for a in aggregates) == [
        (n, n) for n in ("site-a", "site-b", "site-c")
    ]
    usage = _json(cloud, ["usage", "list"], "isthmus")
    assert [len(u["Servers"]) for u in usage] == [4]
    assert {s["name"] for s in usage[0]["Servers"]} == {"vm0", "vm1", "vm2", "vm3"}
    mine = _json(cloud, ["usage", "show"])
    assert len(mine["Servers"]) == 4 and float(mine["CPU Hours"]) > 0

    for name in ("vm0", "vm1", "vm2", "vm3"):
        _run(cloud, ["server", "delete", "--wait", name])
    _run(cloud, ["server", "group", "delete", "spread"])
    assert _json(cloud, ["server", "group", "list"]) == []
