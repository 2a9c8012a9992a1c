"""Image sharing and the interoperable import through the real clients over HTTP:
the `openstack` CLI (image add project, member list, set --accept, remove project;
image create --import, image stage, image import with glance-direct and
copy-image) and openstacksdk (`conn.image.import_image`), whose import into a site
shows its copy part way (a site's `copy_rate` paces it) before the site holds it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.openstack_cli import BatchItem, run_openstack_batch
from tests.support import Cloud, make_service, project_id, serve_in_thread
from tests.waiting import wait_for

pytestmark = pytest.mark.cli

MIB = 1024 * 1024
PROGRESS = re.compile(r"^site-b: (\d+)% ")


def with_cloud_for(clouds_yaml: Path, name: str, password: str) -> Path:
    """clouds.yaml with one more cloud, `isthmus-NAME`: user NAME in project NAME."""
    document = yaml.safe_load(clouds_yaml.read_text())
    entry = dict(document["clouds"]["isthmus-demo"])
    entry["auth"] = {
        **entry["auth"],
        "username": name,
        "password": password,
        "project_name": name,
    }
    document["clouds"][f"isthmus-{name}"] = entry
    clouds_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    return clouds_yaml


def test_image_members_with_the_cli(live_cloud: Cloud, tmp_path: Path) -> None:
    cloud = live_cloud
    assert cloud.clouds_yaml is not None
    cloud.new_member("other")
    other_id = project_id(cloud.service, "other")
    clouds = with_cloud_for(cloud.clouds_yaml, "other", "other-pw")
    source = tmp_path / "disk.raw"
    source.write_bytes(b"shared bytes" * 100)

    def batch(who: str, *commands: str) -> list[BatchItem]:
        return run_openstack_batch(list(commands), clouds, who)

    # the owner's own `image add project` would look the project up first, which a
    # member may not (Isthmus' Keystone answers the project list with [] where
    # Keystone refuses it, so the CLI gives up): the admin adds the member here
    (created,) = batch(
        "isthmus-demo",
        f"image create --file {source} --disk-format raw --container-format bare --shared"
        " golden -f json",
    )
    image = created.json()
    (added,) = batch("isthmus", f"image add project {image['id']} {other_id} -f json")
    (listed,) = batch("isthmus-demo", "image member list golden -f json")
    assert (image["visibility"], image["status"]) == ("shared", "active")
    assert (added.json()["member_id"], added.json()["status"]) == (other_id, "pending")
    assert [(m["Member ID"], m["Status"]) for m in listed.json()] == [(other_id, "pending")]

    before, accepted, after, shown = batch(
        "isthmus-other",
        "image list -f json",
        f"image set --accept {image['id']}",
        "image list -f json",
        f"image member list {image['id']} -f json",
    )
    assert "golden" not in [i["Name"] for i in before.json()]
    assert accepted.stderr.strip() == ""
    assert "golden" in [i["Name"] for i in after.json()]
    assert [(m["Member ID"], m["Status"]) for m in shown.json()] == [(other_id, "accepted")]

    (removed,) = batch("isthmus", f"image remove project {image['id']} {other_id}")
    assert removed.stderr.strip() == ""
    (gone,) = batch("isthmus-other", "image list -f json")
    assert "golden" not in [i["Name"] for i in gone.json()]


def test_image_import_with_the_cli(live_cloud: Cloud, tmp_path: Path) -> None:
    cloud = live_cloud
    assert cloud.clouds_yaml is not None
    clouds = cloud.clouds_yaml
    source = tmp_path / "disk.raw"
    data = bytes(range(256)) * 400
    source.write_bytes(data)

    # made here, not by `image create` without --file, which would read the batch's stdin
    bare = {"name": "staged", "disk_format": "raw", "container_format": "bare"}
    assert cloud.client.post("/image/v2/images", headers=cloud.demo, json=bare).status_code == 201
    created, staged, imported = run_openstack_batch(
        [
            f"image create --import --file {source} --disk-format raw --container-format bare"
            " via-import -f json",
            f"image stage --file {source} staged",
            "image import staged --method glance-direct --store site-b -f json",
        ],
        clouds,
        "isthmus-demo",
    )
    assert created.json()["name"] == "via-import", created.stderr
    assert staged.stderr.strip() == "" and imported.json()["name"] == "staged", imported.stderr
    cloud.wait_idle()
    images = {
        i["name"]: i
        for i in cloud.client.get("/image/v2/images", headers=cloud.demo).json()["images"]
    }
    assert images["via-import"]["status"] == "active" and images["via-import"]["size"] == len(data)
    assert images["via-import"]["stores"] == "site-a"  # the default store
    assert images["staged"]["stores"] == "site-b"

    (copied,) = run_openstack_batch(
        ["image import staged --method copy-image --store site-c -f json"], clouds, "isthmus"
    )
    assert copied.json()["name"] == "staged", copied.stderr
    cloud.wait_idle()
    shown = cloud.client.get(f"/image/v2/images/{images['staged']['id']}", headers=cloud.demo)
    assert shown.json()["stores"] == "site-b,site-c"
    assert cloud.service.sites.get("site-c").observe("image", images["staged"]["id"]) is not None


@pytest.fixture
def paced_cloud(tmp_path: Path) -> Iterator[Cloud]:
    """A served cloud whose sites take image copies at 4 MiB/s."""
    service = make_service(tmp_path / "data", None, run_engine=True, copy_rate=4 * MIB)
    service.start()
    cloud = Cloud(service)
    http = serve_in_thread(cloud, tmp_path / "data")
    try:
        yield cloud
    finally:
        http.should_exit = True
        http.thread.join(timeout=10)
        service.stop()


def test_openstacksdk_import_shows_the_copy_into_a_site(
    paced_cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    openstack = pytest.importorskip("openstack")
    cloud = paced_cloud
    assert cloud.clouds_yaml is not None
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(cloud.clouds_yaml))
    config = openstack.config.OpenStackConfig(config_files=[str(cloud.clouds_yaml)])
    conn = openstack.connect(cloud="isthmus-demo", config=config)
    try:
        data = bytes(range(256)) * (32 * 1024)  # 8 MiB: about two seconds into a site
        image = conn.image.create_image(
            name="sdk-import", disk_format="raw", container_format="bare", allow_duplicates=True
        )
        conn.image.stage_image(image, data=data)
        assert conn.image.get_image(image).status == "uploading"
        conn.image.import_image(image, method="glance-direct", stores=["site-b"])

        def seen() -> dict[str, Any]:
            return dict(cloud.client.get(f"/image/v2/images/{image.id}", headers=cloud.demo).json())

        def part_way() -> dict[str, Any] | None:
            body = seen()
            match = PROGRESS.match(body.get("isthmus:copy_progress", ""))
            return body if match and 0 < int(match.group(1)) < 100 else None

        copying = wait_for(part_way, timeout=30, interval=0.05, what="the copy part way")
        assert (
            copying["status"] == "active" and copying["os_glance_importing_to_stores"] == "site-b"
        )
        assert "stores" not in copying
        done = wait_for(
            lambda: seen() if seen().get("stores") == "site-b" else None,
            timeout=60,
            what="site-b to hold the image",
        )
        assert done["os_glance_importing_to_stores"] == ""
        assert "isthmus:copy_progress" not in done
        fetched = conn.image.get_image(image)
        assert (fetched.status, fetched.size) == ("active", len(data))
        assert b"".join(conn.image.download_image(fetched, stream=True).iter_content(MIB)) == data
    finally:
        conn.close()
