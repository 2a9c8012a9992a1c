"""Image v2 members: an owner shares a `shared` image with another project, the
member accepts, sees it in its list and boots from it; Glance's refusals (403 for a
non-shared image or the wrong party, 404, 409, 400), each changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_image import IMAGES, create_image, names, patch, upload
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, add_network, make_service, project_id

V = "/compute/v2.1"


@pytest.fixture
def quiet_cloud(tmp_path: Path, db_url: str) -> Iterator[Cloud]:
    """A cloud whose engine and health checks do not run: only requests write."""
    service = make_service(tmp_path / "data", db_url)
    yield Cloud(service)
    service.db.dispose()


def members(image_id: str, member: str = "") -> str:
    return f"{IMAGES}/{image_id}/members" + (f"/{member}" if member else "")


def message(response: Any) -> str:
    return str(response.json()["error"]["message"])


def test_an_owner_shares_an_image_and_the_member_accepts_it(cloud: Cloud) -> None:
    image = create_image(cloud, cloud.demo, name="golden", visibility="shared")
    assert upload(cloud, cloud.demo, image["id"], b"golden bytes").status_code == 204
    other = cloud.new_member("other")
    other_id = project_id(cloud.service, "other")
    third = cloud.new_member("third")
    assert cloud.client.get(f"{IMAGES}/{image['id']}", headers=other).status_code == 404
    assert "golden" not in names(cloud, other)

    added = cloud.client.post(members(image["id"]), headers=cloud.demo, json={"member": other_id})
    assert added.status_code == 200, added.text
    body = added.json()
    assert (body["image_id"], body["member_id"], body["status"]) == (
        image["id"],
        other_id,
        "pending",
    )
    assert body["schema"] == "/v2/schemas/member" and body["created_at"] == body["updated_at"]

    # pending: usable by id, listed only when asked for
    assert cloud.client.get(f"{IMAGES}/{image['id']}", headers=other).status_code == 200
    assert "golden" not in names(cloud, other)
    assert "golden" in names(cloud, other, "?member_status=pending")
    assert "golden" in names(cloud, other, "?visibility=shared&member_status=all")
    assert "golden" not in names(cloud, other, "?visibility=shared")
    assert "golden" in names(cloud, cloud.demo, "?visibility=shared")
    assert cloud.client.get(f"{IMAGES}/{image['id']}", headers=third).status_code == 404

    listed = cloud.client.get(members(image["id"]), headers=cloud.demo).json()
    assert [m["member_id"] for m in listed["members"]] == [other_id]
    assert listed["schema"] == "/v2/schemas/members"
    own = cloud.client.get(members(image["id"], other_id), headers=other)
    assert own.status_code == 200 and own.json()["status"] == "pending"

    accepted = cloud.client.put(
        members(image["id"], other_id), headers=other, json={"status": "accepted"}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert "golden" in names(cloud, other)
    assert "golden" not in names(cloud, other, "?member_status=pending")
    data = cloud.client.get(f"{IMAGES}/{image['id']}/file", headers=other)
    assert data.content == b"golden bytes"

    # the member boots from it (Compute sees the membership)
    net, _ = add_network(cloud.service, other_id, "10.9.0.0/24", "other-net")
    server = {"name": "from-shared", "flavorRef": "1", "imageRef": image["id"]}
    server["networks"] = [{"uuid": net}]
    booted = cloud.client.post(f"{V}/servers", headers=other, json={"server": server})
    assert booted.status_code == 202, booted.text
    cloud.wait_idle()
    shown = cloud.client.get(f"{V}/servers/{booted.json()['server']['id']}", headers=other)
    assert shown.json()["server"]["status"] == "ACTIVE"

    rejected = cloud.client.put(
        members(image["id"], other_id), headers=other, json={"status": "rejected"}
    )
    assert rejected.json()["status"] == "rejected"
    assert "golden" not in names(cloud, other)
    assert "golden" in names(cloud, other, "?member_status=rejected")

    gone = cloud.client.delete(members(image["id"], other_id), headers=cloud.demo)
    assert gone.status_code == 204
    assert cloud.client.get(f"{IMAGES}/{image['id']}", headers=other).status_code == 404
    assert cloud.client.get(members(image["id"]), headers=cloud.demo).json()["members"] == []


def test_member_refusals_change_nothing(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    shared = create_image(cloud, cloud.demo, name="shared", visibility="shared")
    private = create_image(cloud, cloud.demo, name="private", visibility="private")
    other = cloud.new_member("other")
    other_id = project_id(cloud.service, "other")
    third = cloud.new_member("third")
    added = cloud.client.post(members(shared["id"]), headers=cloud.demo, json={"member": other_id})
    assert added.status_code == 200

    before = snapshot(cloud.service)
    refusals: list[tuple[str, str, dict[str, str], Any, int, str]] = [
        ("post", members(private["id"]), cloud.demo, {"member": other_id}, 403, "Only shared"),
        ("get", members(private["id"]), cloud.demo, None, 403, "Only shared"),
        ("post", members(shared["id"]), cloud.demo, {"member": other_id}, 409, "already"),
        ("post", members(shared["id"]), cloud.demo, {}, 400, "not specified"),
        ("post", members(shared["id"]), cloud.demo, {"member": 7}, 400, "member"),
        ("post", members(shared["id"]), other, {"member": "x"}, 403, "not permitted"),
        ("post", members(shared["id"]), third, {"member": "x"}, 404, "could not be found"),
        ("get", members(shared["id"], "nobody"), cloud.demo, None, 404, "not a member"),
        ("get", members(shared["id"]), third, None, 404, "could not be found"),
        ("put", members(shared["id"], other_id), cloud.demo, {"status": "accepted"}, 403, "status"),
        ("put", members(shared["id"], other_id), other, {"status": "maybe"}, 400, "Invalid"),
        ("put", members(shared["id"], other_id), other, {}, 400, "Status not specified"),
        ("put", members(shared["id"], "nobody"), other, {"status": "accepted"}, 404, "member"),
        ("delete", members(shared["id"], other_id), other, None, 403, "not permitted"),
        ("delete", members(shared["id"], "nobody"), cloud.demo, None, 404, "not a member"),
        ("get", f"{IMAGES}?member_status=maybe", other, None, 400, "status"),
    ]
    for method, path, headers, body, status, words in refusals:
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        answer = cloud.client.request(method.upper(), path, **kwargs)
        assert answer.status_code == status, (method, path, body, answer.text)
        assert words in message(answer), (method, path, answer.text)
    # a member may not change the image itself
    rename = [{"op": "replace", "path": "/name", "value": "mine"}]
    assert patch(cloud, other, shared["id"], rename).status_code == 403
    assert cloud.client.delete(f"{IMAGES}/{shared['id']}", headers=other).status_code == 403
    after = snapshot(cloud.service)
    assert after == before, difference(before, after)
