"""An image copy into a site shows how far it is while it runs, end to end.

A real Isthmus (engine running, three embedded sites whose image copies are paced by
the local driver's `copy_rate`, the simulated WAN bandwidth of an embedded site)
gets an image through Glance and a server in site-b booting from it. While the
image is copied into site-b, the server's `isthmus:pending_reason`, the admin work
view, the admin resource view of the image, `isthmus work` and the Prometheus gauges
all show the copy part way (strictly between 0 and 100 %); then the server goes
ACTIVE, the site's copy has the image's md5, and the progress is gone everywhere.
Nothing here asserts a duration: the views are polled until they show it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from isthmus.cli.main import app as cli_app
from isthmus.sites.local import LocalDriver
from isthmus.sites.local.images import file_md5
from tests.support import Cloud, add_network, make_service, project_id, serve_in_thread
from tests.waiting import WaitTimeout, wait_for

MIB = 1024 * 1024
IMAGE_MIB = 40
COPY_RATE = 8 * MIB  # bytes/s: the copy into a site takes a few seconds
IMAGES, SERVERS = "/image/v2/images", "/compute/v2.1/servers"
REASON = re.compile(rf"^copying image big to site-b: (\d+)% \(([\d.]+) of {IMAGE_MIB}\.0 MiB\)$")


def image_chunks() -> Iterator[bytes]:
    """IMAGE_MIB MiB, mostly zeros (as raw images are), one marked block per MiB."""
    for index in range(IMAGE_MIB):
        block = bytearray(MIB)
        block[:16] = f"block {index:10d}".encode()
        yield bytes(block)


def part_way(percent: int) -> bool:
    return 0 < percent < 100


def test_an_image_copy_shows_its_progress_until_the_server_is_active(
    tmp_path: Path, db_url: str
) -> None:
    service = make_service(tmp_path / "data", db_url, run_engine=True, copy_rate=COPY_RATE)
    service.start()
    cloud = Cloud(service)
    http = serve_in_thread(cloud, tmp_path / "data")
    try:
        _journey(cloud)
    finally:
        http.should_exit = True
        http.thread.join(timeout=10)
        service.stop()


def _journey(cloud: Cloud) -> None:
    client = cloud.client
    created = client.post(
        IMAGES,
        headers=cloud.demo,
        json={"name": "big", "disk_format": "raw", "container_format": "bare"},
    )
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    uploaded = client.put(
        f"{IMAGES}/{image_id}/file",
        headers={**cloud.demo, "Content-Type": "application/octet-stream"},
        content=image_chunks(),
    )
    assert uploaded.status_code == 204, uploaded.text
    image = client.get(f"{IMAGES}/{image_id}", headers=cloud.demo).json()
    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in image_chunks():
        md5.update(chunk)
    assert (image["status"], image["size"], image["checksum"]) == (
        "active",
        IMAGE_MIB * MIB,
        md5.hexdigest(),
    )

    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"))
    booted = client.post(
        SERVERS,
        headers=cloud.demo,
        json={
            "server": {
                "name": "vm",
                "flavorRef": "1",
                "imageRef": image_id,
                "availability_zone": "site-b",
                "networks": [{"uuid": net}],
            }
        },
    )
    assert booted.status_code == 202, booted.text
    server_id = booted.json()["server"]["id"]

    seen = _watch_the_copy(cloud, server_id, image_id)
    assert set(seen) == {"server", "work", "resource", "cli", "metrics"}, seen

    # the copy ended: the server is ACTIVE, the site's copy checked, no progress left
    server = _server(cloud, server_id)
    assert server["status"] == "ACTIVE", server
    assert "isthmus:pending_reason" not in server
    driver = cloud.service.sites.get("site-b")
    assert isinstance(driver, LocalDriver)
    copy = driver.state.find("image", image_id)
    assert copy is not None and copy.status == "active"
    assert file_md5(driver.directory / "images" / copy.site_id) == image["checksum"]
    work = client.get("/isthmus/v1/work", headers=cloud.admin).json()
    assert work["copies"] == []
    assert "isthmus_copy_bytes{" not in client.get("/metrics", headers=cloud.admin).text


def _server(cloud: Cloud, server_id: str) -> dict[str, Any]:
    response = cloud.client.get(f"{SERVERS}/{server_id}", headers=cloud.demo)
    assert response.status_code == 200, response.text
    return dict(response.json()["server"])


def _watch_the_copy(cloud: Cloud, server_id: str, image_id: str) -> dict[str, int]:
    """Poll every view until each has shown the copy part way or the server is no
    longer in BUILD; returns the part-way percent each view showed."""
    seen: dict[str, int] = {}
    percents: list[int] = []
    runner = CliRunner()
    cli_env = {"OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml), "COLUMNS": "250"}

    def look() -> bool:
        """One look at every view; True once all five showed the copy or the build ended."""
        server = _server(cloud, server_id)
        if server["status"] != "BUILD":
            return True
        match = REASON.match(server.get("isthmus:pending_reason") or "")
        if match:
            percents.append(int(match.group(1)))
            if part_way(int(match.group(1))):
                seen.setdefault("server", int(match.group(1)))
                assert 0 < float(match.group(2)) < IMAGE_MIB
        work = cloud.client.get("/isthmus/v1/work", headers=cloud.admin).json()
        for item in work["copies"]:
            copy = item["progress"]
            assert (item["resource_id"], item["site"], item["kind"]) == (
                image_id,
                "site-b",
                "image",
            )
            assert copy["bytes_total"] == IMAGE_MIB * MIB and copy["updated_at"]
            assert copy["percent"] == copy["bytes_done"] * 100 // copy["bytes_total"]
            if part_way(copy["percent"]):
                seen.setdefault("work", copy["percent"])
        detail = cloud.client.get(f"/isthmus/v1/resources/{image_id}", headers=cloud.admin).json()
        for item in detail["work"]:
            if (
                item["site"] == "site-b"
                and item["progress"]
                and part_way(item["progress"]["percent"])
            ):
                seen.setdefault("resource", item["progress"]["percent"])
        if "cli" not in seen:
            shown = runner.invoke(cli_app, ["work"], env=cli_env)
            assert shown.exit_code == 0, shown.output
            found = re.search(r"copying: (\d+)% \([\d.]+ of 40\.0 MiB\)", shown.output)
            if found and "Copies under way" in shown.output and part_way(int(found.group(1))):
                seen["cli"] = int(found.group(1))
        metrics = cloud.client.get("/metrics", headers=cloud.admin).text
        done = re.search(
            rf'isthmus_copy_bytes{{id="{image_id}",kind="image",site="site-b"}} (\S+)', metrics
        )
        if done and 0 < float(done.group(1)) < IMAGE_MIB * MIB:
            assert f'isthmus_copy_size_bytes{{id="{image_id}",kind="image",site="site-b"}}' in (
                metrics
            )
            seen.setdefault("metrics", int(float(done.group(1)) * 100 // (IMAGE_MIB * MIB)))
        return len(seen) == 5

    # a guard against a hang, not a speed assertion; the caller's assertion names what was missed
    with contextlib.suppress(WaitTimeout):
        wait_for(look, timeout=120, what="every view to show the copy part way")
    assert percents == sorted(percents), f"progress went backwards: {percents}"
    wait_for(
        lambda: _server(cloud, server_id)["status"] != "BUILD",
        timeout=120,
        what="the server to leave BUILD",
    )
    return seen
