"""Volumes made from an image, from a snapshot and from another volume (clone):
Cinder's checks before anything is written, the volume in its source's site, the
image copied into the volume's site, bootable and volume_image_metadata."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from isthmus.store.tables import Binding
from tests.api.test_image import create_image, upload
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud

V3 = "/volume/v3"


def post_volume(cloud: Cloud, **fields: Any) -> Any:
    return cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json={"volume": fields})


def show(cloud: Cloud, volume_id: str) -> dict[str, Any]:
    answer = cloud.client.get(f"{V3}/volumes/{volume_id}", headers=cloud.demo)
    assert answer.status_code == 200, answer.text
    return answer.json()["volume"]


def public_image(cloud: Cloud) -> dict[str, Any]:
    images = cloud.client.get("/image/v2/images", headers=cloud.demo).json()["images"]
    return next(i for i in images if i["name"] == "isthmus-minimal")


def bound_sites(cloud: Cloud, resource_id: str) -> set[str]:
    with cloud.service.db.read() as session:
        return set(session.scalars(select(Binding.site).where(Binding.resource_id == resource_id)))


def test_volume_from_image_is_bootable_in_its_site(cloud: Cloud) -> None:
    image = public_image(cloud)
    answer = post_volume(cloud, size=1, imageRef=image["id"], availability_zone="site-b")
    assert answer.status_code == 202, answer.text
    created = answer.json()["volume"]
    assert created["bootable"] == "true" and created["availability_zone"] == "site-b"
    assert "volume_image_metadata" not in created  # an extension's: show and list only
    cloud.wait_idle()
    body = show(cloud, created["id"])
    assert body["status"] == "available"
    meta = body["volume_image_metadata"]
    assert (meta["image_id"], meta["image_name"]) == (image["id"], "isthmus-minimal")
    assert meta["disk_format"] == image["disk_format"]
    # the image was copied into the volume's site for it, then left again
    site = cloud.service.sites.get("site-b")
    observed = site.observe("volume", created["id"])
    assert observed is not None and observed.status == "available"
    assert "site-b" not in bound_sites(cloud, image["id"])
    listed = cloud.client.get(
        f"{V3}/volumes/detail?glance_metadata={{'image_name': 'isthmus-minimal'}}",
        headers=cloud.demo,
    ).json()["volumes"]
    assert [v["id"] for v in listed] == [created["id"]]


def test_clone_and_volume_from_snapshot_stay_in_the_source_site(cloud: Cloud) -> None:
    image = public_image(cloud)
    source = post_volume(cloud, size=2, imageRef=image["id"], availability_zone="site-a").json()
    source_id = source["volume"]["id"]
    cloud.wait_idle()
    clone = post_volume(cloud, source_volid=source_id, name="clone")
    assert clone.status_code == 202, clone.text
    cloned = clone.json()["volume"]
    assert (cloned["size"], cloned["source_volid"]) == (2, source_id)
    assert (cloned["availability_zone"], cloned["bootable"]) == ("site-a", "true")
    bigger = post_volume(cloud, source_volid=source_id, size=3).json()["volume"]
    assert bigger["size"] == 3
    snap = cloud.client.post(
        f"{V3}/snapshots", headers=cloud.demo, json={"snapshot": {"volume_id": source_id}}
    )
    assert snap.status_code == 202
    cloud.wait_idle()
    from_snapshot = post_volume(cloud, snapshot_id=snap.json()["snapshot"]["id"]).json()["volume"]
    assert from_snapshot["availability_zone"] == "site-a" and from_snapshot["size"] == 2
    assert from_snapshot["bootable"] == "true"
    cloud.wait_idle()
    for volume_id in (cloned["id"], bigger["id"], from_snapshot["id"]):
        body = show(cloud, volume_id)
        assert body["status"] == "available", body
        assert body["volume_image_metadata"]["image_id"] == image["id"]
    site = cloud.service.sites.get("site-a")
    assert site.observe("volume", cloned["id"]) is not None
    # the source may go once its clones are made: they are volumes of their own
    assert (
        cloud.client.delete(f"{V3}/volumes/{cloned['id']}", headers=cloud.demo).status_code == 202
    )


def test_bad_sources_are_refused_and_change_nothing(cloud: Cloud) -> None:
    image = public_image(cloud)
    source = post_volume(cloud, size=2, availability_zone="site-a").json()["volume"]
    queued = create_image(cloud, cloud.demo, name="no-data")
    big = create_image(cloud, cloud.demo, name="big", min_disk=5)
    assert upload(cloud, cloud.demo, big["id"], b"x" * 1024).status_code == 204
    private = create_image(cloud, cloud.admin, name="admins", visibility="private")
    assert upload(cloud, cloud.admin, private["id"], b"y" * 16).status_code == 204
    cloud.wait_idle()
    missing = "0b5f4ab6-1f5b-4cd5-bb8f-3b3f3e4b0a5e"
    before = snapshot(cloud.service)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"source_volid": missing}, 404, "could not be found"),
        ({"snapshot_id": missing}, 404, "could not be found"),
        ({"size": 1, "imageRef": missing}, 400, "Invalid image identifier"),
        ({"size": 1, "imageRef": private["id"]}, 400, "Invalid image identifier"),
        ({"size": 1, "imageRef": queued["id"]}, 400, "is not active"),
        ({"size": 1, "imageRef": big["id"]}, 400, "minDisk"),
        ({"imageRef": image["id"]}, 400, "size is required"),
        ({"source_volid": source["id"], "size": 1}, 400, "cannot be smaller"),
        ({"source_volid": source["id"], "availability_zone": "site-b"}, 400, "same availability"),
        ({"size": 1, "source_volid": source["id"], "imageRef": image["id"]}, 400, "only one"),
        ({"size": 1, "backup_id": missing}, 400, "backup"),
    ]
    for fields, status, words in cases:
        answer = post_volume(cloud, **fields)
        assert answer.status_code == status, (fields, answer.text)
        assert words in answer.text, (fields, answer.text)
    after = difference(before, snapshot(cloud.service))
    assert [p for p in after.split("; ") if p and not p.startswith("sites:")] == []


def test_image_metadata_actions(cloud: Cloud) -> None:
    image = public_image(cloud)
    made = post_volume(cloud, size=1, imageRef=image["id"]).json()["volume"]
    cloud.wait_idle()
    action = f"{V3}/volumes/{made['id']}/action"
    shown = cloud.client.post(action, headers=cloud.demo, json={"os-show_image_metadata": None})
    assert shown.status_code == 200 and shown.json()["metadata"]["image_id"] == image["id"]
    added = cloud.client.post(
        action, headers=cloud.demo, json={"os-set_image_metadata": {"metadata": {"os": "linux"}}}
    )
    assert added.status_code == 200 and added.json()["metadata"]["os"] == "linux"
    assert show(cloud, made["id"])["volume_image_metadata"]["os"] == "linux"
    removed = cloud.client.post(
        action, headers=cloud.demo, json={"os-unset_image_metadata": {"key": "os"}}
    )
    assert removed.status_code == 200
    assert "os" not in show(cloud, made["id"])["volume_image_metadata"]
    missing = cloud.client.post(
        action, headers=cloud.demo, json={"os-unset_image_metadata": {"key": "os"}}
    )
    assert missing.status_code == 404
