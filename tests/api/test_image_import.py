"""Image v2 interoperable import, where each site is a store: discovery, staging,
glance-direct and copy-image into named sites (copies made by the engine, shown as
`stores` / `os_glance_importing_to_stores`), Glance's refusals changing nothing;
also the reserved `os_glance` namespace and deactivate / reactivate."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_image import IMAGES, create_image, patch, upload
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, make_service

SITES = ["site-a", "site-b", "site-c"]


@pytest.fixture
def quiet_cloud(tmp_path: Path, db_url: str) -> Iterator[Cloud]:
    """A cloud whose engine and health checks do not run: only requests write."""
    service = make_service(tmp_path / "data", db_url)
    yield Cloud(service)
    service.db.dispose()


def stage(cloud: Cloud, headers: dict[str, str], image_id: str, data: bytes) -> Any:
    return cloud.client.put(
        f"{IMAGES}/{image_id}/stage",
        headers={**headers, "Content-Type": "application/octet-stream"},
        content=data,
    )


def start_import(cloud: Cloud, headers: dict[str, str], image_id: str, **body: Any) -> Any:
    return cloud.client.post(f"{IMAGES}/{image_id}/import", headers=headers, json=body)


def show(cloud: Cloud, image_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = cloud.client.get(f"{IMAGES}/{image_id}", headers=headers or cloud.demo)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_discovery_lists_the_methods_and_the_sites_as_stores(cloud: Cloud) -> None:
    info = cloud.client.get("/image/v2/info/import", headers=cloud.demo).json()
    assert info["import-methods"]["value"] == ["glance-direct", "copy-image"]
    stores = cloud.client.get("/image/v2/info/stores", headers=cloud.demo).json()["stores"]
    assert [s["id"] for s in stores] == SITES
    assert [s.get("default", False) for s in stores] == [True, False, False]


def test_glance_direct_then_copy_image_into_sites(cloud: Cloud) -> None:
    data = bytes(range(256)) * 512
    image = create_image(cloud, cloud.demo, name="imported")
    assert stage(cloud, cloud.demo, image["id"], data).status_code == 204
    staged = show(cloud, image["id"])
    assert (staged["status"], staged["size"], staged["checksum"]) == ("uploading", None, None)
    assert cloud.client.get(f"{IMAGES}/{image['id']}/file", headers=cloud.demo).status_code == 204

    accepted = start_import(
        cloud, cloud.demo, image["id"], method={"name": "glance-direct"}, stores=["site-b"]
    )
    assert accepted.status_code == 202, accepted.text
    started = show(cloud, image["id"])
    assert started["status"] == "active" and started["size"] == len(data)
    assert started["checksum"] == hashlib.md5(data).hexdigest()
    assert started["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert started["os_glance_importing_to_stores"] in ("site-b", "")
    cloud.wait_idle()
    done = show(cloud, image["id"])
    assert done["stores"] == "site-b"
    assert (done["os_glance_importing_to_stores"], done["os_glance_failed_import"]) == ("", "")
    assert cloud.service.sites.get("site-b").observe("image", image["id"]) is not None
    assert cloud.service.sites.get("site-a").observe("image", image["id"]) is None
    got = cloud.client.get(f"{IMAGES}/{image['id']}/file", headers=cloud.demo)
    assert got.content == data

    # copy-image is an admin's; a store already holding the image is refused
    copy = {"method": {"name": "copy-image"}, "stores": ["site-c"]}
    assert start_import(cloud, cloud.demo, image["id"], **copy).status_code == 403
    again = start_import(
        cloud, cloud.admin, image["id"], method={"name": "copy-image"}, stores=["site-b"]
    )
    assert again.status_code == 400 and "already present" in again.json()["error"]["message"]
    everywhere = start_import(
        cloud, cloud.admin, image["id"], method={"name": "copy-image"}, all_stores=True
    )
    assert everywhere.status_code == 202, everywhere.text
    cloud.wait_idle()
    assert show(cloud, image["id"])["stores"] == ",".join(SITES)
    for site in SITES:
        assert cloud.service.sites.get(site).observe("image", image["id"]) is not None
    nothing_left = start_import(
        cloud, cloud.admin, image["id"], method={"name": "copy-image"}, all_stores=True
    )
    assert nothing_left.status_code == 202

    # an imported image leaves its sites when it is deleted
    assert cloud.client.delete(f"{IMAGES}/{image['id']}", headers=cloud.demo).status_code == 204
    cloud.wait_idle()
    for site in SITES:
        assert cloud.service.sites.get(site).observe("image", image["id"]) is None


def test_import_into_the_default_store(cloud: Cloud) -> None:
    image = create_image(cloud, cloud.demo, name="default-store")
    assert stage(cloud, cloud.demo, image["id"], b"x" * 1000).status_code == 204
    assert (
        start_import(cloud, cloud.demo, image["id"], method={"name": "glance-direct"}).status_code
        == 202
    )
    cloud.wait_idle()
    assert show(cloud, image["id"])["stores"] == "site-a"


def test_import_refusals_change_nothing(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    queued = create_image(cloud, cloud.demo, name="queued")
    staged = create_image(cloud, cloud.demo, name="staged")
    no_format = cloud.client.post(IMAGES, headers=cloud.demo, json={"name": "bare"}).json()
    active = create_image(cloud, cloud.demo, name="active")
    assert stage(cloud, cloud.demo, staged["id"], b"staged").status_code == 204
    assert stage(cloud, cloud.demo, no_format["id"], b"staged").status_code == 204
    assert upload(cloud, cloud.demo, active["id"], b"active").status_code == 204
    other = cloud.new_member("other")

    before = snapshot(cloud.service)
    direct = {"name": "glance-direct"}
    refusals: list[tuple[str, dict[str, str], dict[str, Any], int, str]] = [
        (queued["id"], cloud.demo, {"method": direct}, 409, "staged"),
        (staged["id"], cloud.demo, {}, 400, "'method'"),
        (staged["id"], cloud.demo, {"method": {}}, 400, "'name'"),
        (staged["id"], cloud.demo, {"method": {"name": "web-download"}}, 400, "Unknown import"),
        (staged["id"], cloud.demo, {"method": direct, "all_stores": "yes"}, 400, "boolean"),
        (staged["id"], cloud.demo, {"method": direct, "stores": "site-a"}, 400, "stores"),
        (staged["id"], cloud.demo, {"method": direct, "stores": ["nowhere"]}, 409, "nowhere"),
        (
            staged["id"],
            cloud.demo,
            {"method": direct, "stores": ["site-a"], "all_stores": True},
            400,
            "All_stores",
        ),
        (staged["id"], other, {"method": direct}, 404, "could not be found"),
        (no_format["id"], cloud.demo, {"method": direct}, 409, "container_format"),
        (queued["id"], cloud.admin, {"method": {"name": "copy-image"}}, 409, "status active"),
        (active["id"], cloud.demo, {"method": direct}, 409, "status active"),
    ]
    for image_id, headers, body, status, words in refusals:
        answer = start_import(cloud, headers, image_id, **body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"]["message"], (body, answer.text)
    assert stage(cloud, cloud.demo, active["id"], b"more").status_code == 409
    assert stage(cloud, cloud.demo, staged["id"], b"more").status_code == 409
    assert stage(cloud, other, queued["id"], b"more").status_code == 404
    after = snapshot(cloud.service)
    assert after == before, difference(before, after)


def test_reserved_properties_and_deactivation(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    image = create_image(cloud, cloud.demo, name="img")
    before = snapshot(cloud.service)
    reserved = cloud.client.post(
        IMAGES, headers=cloud.demo, json={"name": "x", "os_glance_importing_to_stores": "a"}
    )
    assert reserved.status_code == 403 and "reserved" in reserved.json()["error"]["message"]
    for op in ("add", "remove"):
        ops = [{"op": op, "path": "/os_glance_failed_import", "value": "x"}]
        assert patch(cloud, cloud.demo, image["id"], ops).status_code == 403
    deactivate = f"{IMAGES}/{image['id']}/actions/deactivate"
    reactivate = f"{IMAGES}/{image['id']}/actions/reactivate"
    assert cloud.client.post(deactivate, headers=cloud.demo).status_code == 403  # queued
    assert cloud.client.post(reactivate, headers=cloud.demo).status_code == 403
    assert snapshot(cloud.service) == before, difference(before, snapshot(cloud.service))

    assert upload(cloud, cloud.demo, image["id"], b"data").status_code == 204
    other = cloud.new_member("other")
    assert cloud.client.post(deactivate, headers=other).status_code == 404
    assert cloud.client.post(deactivate, headers=cloud.demo).status_code == 204
    assert cloud.client.post(deactivate, headers=cloud.demo).status_code == 204
    assert show(cloud, image["id"])["status"] == "deactivated"
    refused = cloud.client.get(f"{IMAGES}/{image['id']}/file", headers=cloud.demo)
    assert refused.status_code == 403 and "deactivated" in refused.json()["error"]["message"]
    assert cloud.client.get(f"{IMAGES}/{image['id']}/file", headers=cloud.admin).content == b"data"
    assert cloud.client.post(reactivate, headers=cloud.demo).status_code == 204
    assert show(cloud, image["id"])["status"] == "active"
    assert cloud.client.get(f"{IMAGES}/{image['id']}/file", headers=cloud.demo).content == b"data"


def test_a_copy_that_fails_for_good_is_a_failed_store(
    quiet_cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    from isthmus.errors import PermanentError

    cloud = quiet_cloud
    broken = cloud.service.sites.get("site-c")

    def refuse(spec: Any) -> Any:
        raise PermanentError("site-c: no space left for images")

    monkeypatch.setattr(broken, "_ensure_image", refuse)
    image = create_image(cloud, cloud.demo, name="half")
    assert stage(cloud, cloud.demo, image["id"], b"some bytes").status_code == 204
    accepted = start_import(
        cloud,
        cloud.demo,
        image["id"],
        method={"name": "glance-direct"},
        stores=["site-b", "site-c"],
        all_stores_must_succeed=False,
    )
    assert accepted.status_code == 202, accepted.text
    importing = show(cloud, image["id"])
    assert importing["os_glance_importing_to_stores"] == "site-b,site-c"
    assert importing["os_glance_failed_import"] == ""
    cloud.wait_idle()
    shown = show(cloud, image["id"])
    assert (shown["status"], shown["stores"]) == ("active", "site-b")
    assert shown["os_glance_importing_to_stores"] == ""
    assert shown["os_glance_failed_import"] == "site-c"

    monkeypatch.undo()
    again = start_import(
        cloud, cloud.admin, image["id"], method={"name": "copy-image"}, stores=["site-c"]
    )
    assert again.status_code == 202, again.text
    cloud.wait_idle()
    shown = show(cloud, image["id"])
    assert (shown["stores"], shown["os_glance_failed_import"]) == ("site-b,site-c", "")


def test_an_admin_removes_an_image_from_one_store(cloud: Cloud) -> None:
    image = create_image(cloud, cloud.demo, name="two-sites")
    assert stage(cloud, cloud.demo, image["id"], b"bytes" * 100).status_code == 204
    body = {"method": {"name": "glance-direct"}, "stores": ["site-a", "site-b"]}
    assert start_import(cloud, cloud.demo, image["id"], **body).status_code == 202
    cloud.wait_idle()
    assert show(cloud, image["id"])["stores"] == "site-a,site-b"

    store = f"/image/v2/stores/site-b/{image['id']}"
    for path, headers, status, words in (
        (store, cloud.demo, 403, "delete_image_location"),
        (f"/image/v2/stores/nowhere/{image['id']}", cloud.admin, 409, "nowhere"),
        (f"/image/v2/stores/site-b/{'0' * 8}-0000-0000-0000-{'0' * 12}", cloud.admin, 404, "find"),
        (f"/image/v2/stores/site-c/{image['id']}", cloud.admin, 404, "not stored"),
    ):
        answer = cloud.client.delete(path, headers=headers)
        assert answer.status_code == status, (path, answer.text)
        assert words in answer.json()["error"]["message"], answer.text
    assert cloud.client.delete(store, headers=cloud.admin).status_code == 204
    cloud.wait_idle()
    assert show(cloud, image["id"])["stores"] == "site-a"
    assert cloud.service.sites.get("site-b").observe("image", image["id"]) is None
    assert cloud.service.sites.get("site-a").observe("image", image["id"]) is not None
