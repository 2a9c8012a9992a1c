"""Image v2: create, upload, download, patch, tags, delete, visibility, limits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from isthmus.service import DEFAULT_IMAGE_NAME
from isthmus.store import repo
from isthmus.store.tables import Resource
from tests.support import Cloud, add_network, add_server, project_id

IMAGES = "/image/v2/images"
PATCH = "application/openstack-images-v2.1-json-patch"


def create_image(cloud: Cloud, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"disk_format": "raw", "container_format": "bare", **fields}
    response = cloud.client.post(IMAGES, headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def upload(cloud: Cloud, headers: dict[str, str], image_id: str, data: bytes) -> Any:
    return cloud.client.put(
        f"{IMAGES}/{image_id}/file",
        headers={**headers, "Content-Type": "application/octet-stream"},
        content=data,
    )


def patch(cloud: Cloud, headers: dict[str, str], image_id: str, ops: list[Any]) -> Any:
    return cloud.client.patch(
        f"{IMAGES}/{image_id}",
        headers={**headers, "Content-Type": PATCH},
        content=json.dumps(ops),
    )


def names(cloud: Cloud, headers: dict[str, str], query: str = "") -> list[str]:
    return [
        i["name"] for i in cloud.client.get(f"{IMAGES}{query}", headers=headers).json()["images"]
    ]


def test_versions_schemas_and_the_default_image(cloud: Cloud) -> None:
    for path in ("/image", "/image/"):
        current = [v for v in cloud.client.get(path).json()["versions"] if v["status"] == "CURRENT"]
        assert len(current) == 1 and current[0]["links"][0]["href"].endswith("/image/v2/")
        assert current[0]["id"] == "v2.10"  # delete from one store (multi-store, 2.8-2.10)
    schema = cloud.client.get("/image/v2/schemas/image", headers=cloud.demo).json()
    assert schema["name"] == "image" and "disk_format" in schema["properties"]
    assert cloud.client.get("/image/v2/schemas/images", headers=cloud.demo).json()["name"] == (
        "images"
    )
    (default,) = cloud.client.get(IMAGES, headers=cloud.demo).json()["images"]
    assert (default["name"], default["visibility"], default["status"]) == (
        DEFAULT_IMAGE_NAME,
        "public",
        "active",
    )
    data = cloud.client.get(f"{IMAGES}/{default['id']}/file", headers=cloud.demo).content
    assert hashlib.md5(data).hexdigest() == default["checksum"]
    assert hashlib.sha512(data).hexdigest() == default["os_hash_value"]
    assert len(data) == default["size"] == default["virtual_size"]


def test_image_lifecycle(cloud: Cloud) -> None:
    image = create_image(cloud, cloud.demo, name="img", min_disk=1, tags=["x"], color="blue")
    assert (image["status"], image["visibility"], image["color"]) == ("queued", "shared", "blue")
    assert (image["size"], image["checksum"], image["tags"]) == (None, None, ["x"])
    image_id = image["id"]
    assert cloud.client.get(f"{IMAGES}/{image_id}/file", headers=cloud.demo).status_code == 204

    data = bytes(range(256)) * 4096 + b"tail"
    assert upload(cloud, cloud.demo, image_id, data).status_code == 204
    shown = cloud.client.get(f"{IMAGES}/{image_id}", headers=cloud.demo).json()
    assert shown["status"] == "active"
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert (shown["os_hash_algo"], shown["os_hash_value"]) == (
        "sha512",
        hashlib.sha512(data).hexdigest(),
    )
    assert shown["size"] == len(data)
    downloaded = cloud.client.get(f"{IMAGES}/{image_id}/file", headers=cloud.demo)
    assert downloaded.status_code == 200 and downloaded.content == data
    assert downloaded.headers["Content-MD5"] == shown["checksum"]
    assert upload(cloud, cloud.demo, image_id, b"again").status_code == 409
    for site in ("site-a", "site-b", "site-c"):  # uploading touches no site
        assert cloud.service.sites.get(site).inventory() == []

    ops = [
        {"op": "replace", "path": "/name", "value": "img2"},
        {"op": "add", "path": "/tags", "value": ["x", "y"]},
        {"op": "replace", "path": "/min_ram", "value": 256},
        {"op": "add", "path": "/shape", "value": "round"},
        {"op": "remove", "path": "/color"},
    ]
    patched = patch(cloud, cloud.demo, image_id, ops)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["tags"], body["min_ram"]) == ("img2", ["x", "y"], 256)
    assert body["shape"] == "round" and "color" not in body
    assert cloud.client.put(f"{IMAGES}/{image_id}/tags/z", headers=cloud.demo).status_code == 204
    assert cloud.client.delete(f"{IMAGES}/{image_id}/tags/x", headers=cloud.demo).status_code == 204
    assert names(cloud, cloud.demo, "?tag=z") == ["img2"]
    assert names(cloud, cloud.demo, "?tag=x") == []
    assert names(cloud, cloud.demo, "?name=img2&status=active") == ["img2"]

    assert cloud.client.delete(f"{IMAGES}/{image_id}", headers=cloud.demo).status_code == 204
    assert cloud.client.get(f"{IMAGES}/{image_id}", headers=cloud.demo).status_code == 404
    assert not (Path(cloud.service.images_dir) / image_id).exists()
    assert names(cloud, cloud.demo) == [DEFAULT_IMAGE_NAME]


def test_bad_input_and_policy(cloud: Cloud) -> None:
    for body, status in (
        ({"name": "x", "disk_format": "floppy"}, 400),
        ({"name": "x", "container_format": "box"}, 400),
        ({"name": "x", "min_disk": -1}, 400),
        ({"name": "x", "visibility": "public"}, 403),
        ({"name": "x", "status": "active"}, 403),
        ({"name": "x", "id": "not-a-uuid"}, 400),
        ({"name": "x", "color": 3}, 400),
    ):
        response = cloud.client.post(IMAGES, headers=cloud.demo, json=body)
        assert response.status_code == status, (body, response.text)
    assert names(cloud, cloud.demo) == [DEFAULT_IMAGE_NAME]

    no_format = cloud.client.post(IMAGES, headers=cloud.demo, json={"name": "bare"}).json()
    assert upload(cloud, cloud.demo, no_format["id"], b"data").status_code == 400
    image = create_image(cloud, cloud.demo, name="keep", protected=True)
    assert cloud.client.delete(f"{IMAGES}/{image['id']}", headers=cloud.demo).status_code == 403
    for ops, status in (
        ([{"op": "replace", "path": "/visibility", "value": "public"}], 403),
        ([{"op": "replace", "path": "/status", "value": "active"}], 403),
        ([{"op": "remove", "path": "/name"}], 403),
        ([{"op": "remove", "path": "/nothing"}], 409),
        ([{"op": "move", "path": "/name"}], 400),
        ([{"op": "replace", "path": "/protected", "value": False}, {"op": "bad"}], 400),
    ):
        answer = patch(cloud, cloud.demo, image["id"], ops)
        assert answer.status_code == status, (ops, answer.text)
    plain_json = cloud.client.patch(f"{IMAGES}/{image['id']}", headers=cloud.demo, json=[])
    assert plain_json.status_code == 400
    unprotect = [{"op": "replace", "path": "/protected", "value": False}]
    assert patch(cloud, cloud.demo, image["id"], unprotect).status_code == 200
    assert cloud.client.delete(f"{IMAGES}/{image['id']}", headers=cloud.demo).status_code == 204

    public = create_image(cloud, cloud.admin, name="pub", visibility="public")
    assert public["visibility"] == "public"


def test_visibility_between_projects(cloud: Cloud) -> None:
    mine = create_image(cloud, cloud.demo, name="mine", visibility="private")
    public = create_image(cloud, cloud.admin, name="everyone", visibility="public")
    community = create_image(cloud, cloud.demo, name="shared-widely", visibility="community")
    other = cloud.new_member("other")
    assert cloud.client.get(f"{IMAGES}/{mine['id']}", headers=other).status_code == 404
    assert cloud.client.get(f"{IMAGES}/{mine['id']}/file", headers=other).status_code == 404
    assert cloud.client.delete(f"{IMAGES}/{mine['id']}", headers=other).status_code == 404
    assert sorted(names(cloud, other)) == sorted([DEFAULT_IMAGE_NAME, "everyone"])
    assert names(cloud, other, "?visibility=community") == ["shared-widely"]
    assert cloud.client.get(f"{IMAGES}/{community['id']}", headers=other).status_code == 200
    assert cloud.client.get(f"{IMAGES}/{public['id']}", headers=other).status_code == 200
    rename = [{"op": "replace", "path": "/name", "value": "mine-now"}]
    assert patch(cloud, other, public["id"], rename).status_code == 403
    assert cloud.client.delete(f"{IMAGES}/{public['id']}", headers=other).status_code == 403
    assert "mine" in names(cloud, cloud.admin)


def test_upload_size_cap_and_paging(cloud: Cloud) -> None:
    cloud.service.config.max_image_size = 10
    image = create_image(cloud, cloud.demo, name="small")
    too_big = upload(cloud, cloud.demo, image["id"], b"x" * 11)
    assert too_big.status_code == 413
    after = cloud.client.get(f"{IMAGES}/{image['id']}", headers=cloud.demo).json()
    assert (after["status"], after["size"]) == ("queued", None)
    assert not [p for p in Path(cloud.service.images_dir).iterdir() if p.name.endswith(".part")]
    assert upload(cloud, cloud.demo, image["id"], b"x" * 10).status_code == 204

    for name in ("p1", "p2", "p3"):
        create_image(cloud, cloud.demo, name=name)
    first = cloud.client.get(f"{IMAGES}?limit=2&sort_key=name&sort_dir=asc", headers=cloud.demo)
    page = first.json()
    assert [i["name"] for i in page["images"]] == [DEFAULT_IMAGE_NAME, "p1"]
    rest: list[str] = []
    while "next" in page:
        page = cloud.client.get(f"/image{page['next']}", headers=cloud.demo).json()
        rest += [i["name"] for i in page["images"]]
    assert rest == ["p2", "p3", "small"]
    assert cloud.client.get(f"{IMAGES}?marker=nope", headers=cloud.demo).status_code == 400


def test_data_file_stays_while_a_site_holds_a_copy(cloud: Cloud) -> None:
    image = create_image(cloud, cloud.demo, name="boot")
    assert upload(cloud, cloud.demo, image["id"], b"bootable bytes").status_code == 204
    project = project_id(cloud.service)
    network, _ = add_network(cloud.service, project)
    server = add_server(cloud.service, project, network, az="site-b", image_id=image["id"])
    cloud.wait_idle()
    site = cloud.service.sites.get("site-b")
    assert site.observe("image", image["id"]) is not None
    data_file = Path(cloud.service.images_dir) / image["id"]

    assert cloud.client.delete(f"{IMAGES}/{image['id']}", headers=cloud.demo).status_code == 204
    assert cloud.client.get(f"{IMAGES}/{image['id']}", headers=cloud.demo).status_code == 404
    assert "boot" not in names(cloud, cloud.demo)
    cloud.wait_idle()
    assert data_file.exists()  # the server in site-b still uses its copy

    with cloud.service.db.session() as session:
        for row in session.scalars(
            select(Resource).where((Resource.id == server) | (Resource.device_id == server))
        ):
            repo.mark_deleting(session, row)
    cloud.wait_idle()
    assert site.observe("image", image["id"]) is None
    assert not data_file.exists()
