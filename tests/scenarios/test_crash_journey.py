"""A crash under concurrent load loses no accepted request and invents none.

300 server creates are sent by 30 clients at once to a real `isthmus up`; the
process is killed with SIGKILL while requests are still arriving, then started
again on the same data dir. Afterwards:

- every create that was answered 202 exists exactly once (API and sites) and ends
  ACTIVE in the zone it asked for;
- nothing else exists, except possibly a request that was cut off by the kill
  without an answer (its client cannot know; either outcome is honest);
- no site holds a twin or an object Isthmus does not know.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.isthmus_process import Running, password_token, start_isthmus
from tests.scenarios.test_crash_recovery import SITES, assert_sites_hold_exactly
from tests.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.slow

CREATES = 300
CONCURRENCY = 30
KILL_AFTER = 120  # answers seen before the kill: well inside the run


def _prepare(running: Running, passwords: dict[str, str]) -> tuple[httpx.Client, str, str]:
    """The demo project's client, a network with a subnet, the default image; quotas raised."""
    admin = httpx.Client(
        headers={"X-Auth-Token": password_token(running.url, "admin", passwords["admin"])},
        timeout=30,
    )
    demo = httpx.Client(
        headers={"X-Auth-Token": password_token(running.url, "demo", passwords["demo"])}, timeout=60
    )
    project = demo.get(f"{running.url}/identity/v3/auth/projects").json()["projects"][0]["id"]
    raised = admin.put(
        f"{running.url}/compute/v2.1/os-quota-sets/{project}",
        json={"quota_set": {"instances": 1000, "cores": 1000, "ram": 1000 * 1024}},
    )
    assert raised.status_code == 200, raised.text
    admin.close()
    net = demo.post(
        f"{running.url}/network/v2.0/networks", json={"network": {"name": "journey-net"}}
    ).json()["network"]
    demo.post(
        f"{running.url}/network/v2.0/subnets",
        json={"subnet": {"network_id": net["id"], "cidr": "10.77.0.0/22", "ip_version": 4}},
    ).raise_for_status()
    image = demo.get(f"{running.url}/image/v2/images", params={"name": "isthmus-minimal"}).json()[
        "images"
    ][0]["id"]
    return demo, str(net["id"]), str(image)


def test_sigkill_during_300_concurrent_creates_loses_and_invents_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "isthmus.yaml"
    capacity = {"vcpus": 400, "ram_mb": 400 * 1024, "disk_gb": 4000, "boot_seconds": 0.2}
    config.write_text(
        yaml.safe_dump(
            {
                "workers": 2,
                "sites": [{"name": s, "driver": "local", "config": capacity} for s in SITES],
            }
        )
    )
    running = start_isthmus(data_dir, None, "--config", str(config))
    restarted: Running | None = None
    try:
        passwords = yaml.safe_load((data_dir / "secrets.yaml").read_text())
        demo, net, image = _prepare(running, passwords)

        accepted: dict[str, str] = {}  # name -> id, answered 202
        unanswered: set[str] = set()  # cut off by the kill: outcome unknown to the client
        refused: set[str] = set()  # sent after the kill: connection refused
        other: list[str] = []  # any other answer: a failure of the test
        answers = 0
        lock = threading.Lock()
        answered_enough = threading.Event()

        def create(index: int) -> None:
            nonlocal answers
            name = f"journey-{index}"
            body = {
                "server": {
                    "name": name,
                    "flavorRef": "1",
                    "imageRef": image,
                    "networks": [{"uuid": net}],
                    "availability_zone": SITES[index % 3],
                }
            }
            try:
                response = demo.post(f"{running.url}/compute/v2.1/servers", json=body)
            except httpx.ConnectError:
                with lock:
                    refused.add(name)  # never reached the service: must not exist
                return
            except httpx.HTTPError:
                with lock:
                    unanswered.add(name)
                return
            with lock:
                answers += 1
                if response.status_code == 202:
                    accepted[name] = response.json()["server"]["id"]
                else:
                    other.append(f"{name}: {response.status_code} {response.text[:200]}")
                if answers >= KILL_AFTER:
                    answered_enough.set()

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            futures = [pool.submit(create, i) for i in range(CREATES)]
            assert answered_enough.wait(120), f"only {answers} answers before the deadline"
            running.kill()
            for future in futures:
                future.result()
        demo.close()
        assert not other, other
        print(f"\naccepted {len(accepted)}, cut off {len(unanswered)}, refused {len(refused)}")
        assert len(accepted) + len(unanswered) + len(refused) == CREATES
        assert KILL_AFTER <= len(accepted) < CREATES, "the kill did not land mid-run"

        restarted = start_isthmus(data_dir, None, "--config", str(config))
        client = httpx.Client(
            headers={"X-Auth-Token": password_token(restarted.url, "demo", passwords["demo"])},
            timeout=60,
        )
        servers: list[dict] = []

        def all_active() -> bool:
            response = client.get(
                f"{restarted.url}/compute/v2.1/servers/detail", params={"limit": 1000}
            )
            assert response.status_code == 200, response.text
            servers[:] = response.json()["servers"]
            return bool(servers) and all(s["status"] == "ACTIVE" for s in servers)

        with contextlib.suppress(WaitTimeout):  # the assertions below say what is wrong
            wait_for(all_active, timeout=180, interval=1, what="every server ACTIVE")
        client.close()

        names = Counter(s["name"] for s in servers)
        assert not {n: c for n, c in names.items() if c > 1}, "a create exists twice"
        by_name = {s["name"]: s for s in servers}
        for name, server_id in accepted.items():
            assert name in by_name, f"accepted {name} ({server_id}) was lost"
            assert by_name[name]["id"] == server_id
        invented = set(by_name) - set(accepted) - unanswered
        assert not invented, f"exists without a request that could have made it: {invented}"
        assert not set(by_name) & refused
        assert {s["status"] for s in servers} == {"ACTIVE"}
        for server in servers:
            index = int(server["name"].rsplit("-", 1)[1])
            assert server["OS-EXT-AZ:availability_zone"] == SITES[index % 3]

        assert_sites_hold_exactly(restarted, servers)
    finally:
        running.kill()
        if restarted is not None:
            restarted.stop()
