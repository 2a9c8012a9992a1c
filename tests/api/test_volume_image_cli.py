"""The real `openstack` CLI (python-openstackclient over openstacksdk) against
Isthmus over HTTP: volumes, snapshots, zones, types and images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.openstack_cli import BatchItem, run_openstack, run_openstack_batch
from tests.support import Cloud

pytestmark = pytest.mark.cli


def test_volume_and_image_commands(live_cloud: Cloud, tmp_path: Path) -> None:
    cloud = live_cloud
    assert cloud.clouds_yaml is not None
    data = bytes(range(256)) * 1000
    source, saved = tmp_path / "disk.raw", tmp_path / "saved.raw"
    source.write_bytes(data)

    def batch(*commands: str) -> list[BatchItem]:
        assert cloud.clouds_yaml is not None
        return run_openstack_batch(list(commands), cloud.clouds_yaml, "isthmus-demo")

    created, image = batch(
        "volume create --size 1 --availability-zone site-a v1 -f json",
        f"image create --file {source} --disk-format raw --container-format bare img -f json",
    )
    volume = created.json()
    assert (volume["name"], volume["size"], volume["availability_zone"]) == ("v1", 1, "site-a")
    assert image.json()["status"] == "active"
    cloud.wait_idle()

    listed, shown, snapshot, images, image_shown, zones, types, save = batch(
        "volume list -f json",
        "volume show v1 -f json",
        "volume snapshot create --volume v1 s1 -f json",
        "image list -f json",
        "image show img -f json",
        "availability zone list --volume -f json",
        "volume type list -f json",
        f"image save --file {saved} img",
    )
    assert [(v["Name"], v["Status"]) for v in listed.json()] == [("v1", "available")]
    assert shown.json()["status"] == "available"
    assert cloud.service.sites.get("site-a").observe("volume", volume["id"]) is not None
    assert snapshot.json()["volume_id"] == volume["id"]
    assert {"img", "isthmus-minimal"} == {i["Name"] for i in images.json()}
    assert image_shown.json()["size"] == len(data)
    assert [z["Zone Name"] for z in zones.json()] == ["site-a", "site-b", "site-c"]
    assert {z["Zone Status"] for z in zones.json()} == {"available"}
    assert [t["Name"] for t in types.json()] == ["__DEFAULT__"]
    assert save.stderr.strip() == "" and saved.read_bytes() == data
    cloud.wait_idle()

    refused, snapshot_gone, image_gone = batch(
        "volume delete v1", "volume snapshot delete s1", "image delete img"
    )
    assert "dependent snapshots" in refused.stderr
    assert snapshot_gone.stderr.strip() == "" and image_gone.stderr.strip() == ""
    cloud.wait_idle()

    deleted = run_openstack(["volume", "delete", "v1"], cloud.clouds_yaml, "isthmus-demo")
    assert deleted.returncode == 0, deleted.stderr
    cloud.wait_idle()
    volumes = cloud.client.get("/volume/v3/volumes", headers=cloud.demo).json()["volumes"]
    assert volumes == []
    images_left = cloud.client.get("/image/v2/images", headers=cloud.demo).json()["images"]
    assert [i["name"] for i in images_left] == ["isthmus-minimal"]
