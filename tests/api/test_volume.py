"""Block Storage v3: volumes, snapshots, types, zones, limits, quotas, isolation."""

from __future__ import annotations

from typing import Any

from isthmus.store import repo
from tests.support import Cloud, add_network, add_server, project_id

V3 = "/volume/v3"


def create_volume(cloud: Cloud, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = cloud.client.post(f"{V3}/volumes", headers=headers, json={"volume": fields})
    assert response.status_code == 202, response.text
    return response.json()["volume"]


def show(cloud: Cloud, path: str, headers: dict[str, str] | None = None) -> Any:
    return cloud.client.get(f"{V3}/{path}", headers=headers or cloud.demo)


def project_of(cloud: Cloud, headers: dict[str, str]) -> str:
    token = headers["X-Auth-Token"]
    return cloud.client.get(
        "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": token}
    ).json()["token"]["project"]["id"]


def test_version_documents(cloud: Cloud) -> None:
    for path in ("/volume", "/volume/", "/volume/v3/"):
        response = cloud.client.get(path)
        assert response.status_code == 200
        (version,) = response.json()["versions"]
        assert (version["id"], version["status"]) == ("v3.0", "CURRENT")
        assert (version["min_version"], version["version"]) == ("3.0", "3.70")  # issue 10
    answer = show(cloud, "volumes")
    assert answer.headers["OpenStack-API-Version"] == "volume 3.0"


def test_volume_lifecycle_in_the_asked_zone(cloud: Cloud) -> None:
    project = project_of(cloud, cloud.demo)
    created = create_volume(
        cloud, cloud.demo, size=1, name="v1", availability_zone="site-b", metadata={"a": "1"}
    )
    assert (created["status"], created["availability_zone"]) == ("creating", "site-b")
    assert created["volume_type"] == "__DEFAULT__"
    assert "os-vol-tenant-attr:tenant_id" not in created  # show/list only, as in Cinder
    volume_id = created["id"]
    cloud.wait_idle()
    site = cloud.service.sites.get("site-b")
    assert site.observe("volume", volume_id).status == "available"
    # the same resource through the catalog's path (with project id) and without it
    body = show(cloud, f"{project}/volumes/{volume_id}").json()["volume"]
    assert body == show(cloud, f"volumes/{volume_id}").json()["volume"]
    assert (body["status"], body["size"], body["metadata"]) == ("available", 1, {"a": "1"})
    assert body["attachments"] == [] and body["bootable"] == "false"
    assert body["os-vol-tenant-attr:tenant_id"] == project
    assert "os-vol-host-attr:host" not in body
    assert show(cloud, f"volumes/{volume_id}", cloud.admin).json()["volume"][
        "os-vol-host-attr:host"
    ] == ("site-b")
    assert [v["name"] for v in show(cloud, "volumes").json()["volumes"]] == ["v1"]
    detail = show(cloud, "volumes/detail?name=v1&status=available").json()["volumes"]
    assert [v["id"] for v in detail] == [volume_id]
    assert show(cloud, "volumes/detail?status=error").json()["volumes"] == []

    update = {"volume": {"name": "v1b", "description": "d", "metadata": {"b": "2"}}}
    updated = cloud.client.put(f"{V3}/volumes/{volume_id}", headers=cloud.demo, json=update)
    assert updated.status_code == 200
    assert updated.json()["volume"]["name"] == "v1b"
    assert updated.json()["volume"]["metadata"] == {"b": "2"}
    assert "os-vol-tenant-attr:tenant_id" not in updated.json()["volume"]

    extend = {"os-extend": {"new_size": 3}}
    answer = cloud.client.post(f"{V3}/volumes/{volume_id}/action", headers=cloud.demo, json=extend)
    assert answer.status_code == 202, answer.text
    shrink = {"os-extend": {"new_size": 2}}
    cloud.wait_idle()
    body = show(cloud, f"volumes/{volume_id}").json()["volume"]
    assert (body["status"], body["size"]) == ("available", 3)
    assert site.state.find("volume", volume_id).spec["size_gb"] == 3  # type: ignore[attr-defined]
    answer = cloud.client.post(f"{V3}/volumes/{volume_id}/action", headers=cloud.demo, json=shrink)
    assert answer.status_code == 400

    assert cloud.client.delete(f"{V3}/volumes/{volume_id}", headers=cloud.demo).status_code == 202
    gone = show(cloud, f"volumes/{volume_id}")
    assert gone.status_code == 404 or gone.json()["volume"]["status"] == "deleting"
    cloud.wait_idle()
    missing = show(cloud, f"volumes/{volume_id}")
    assert missing.status_code == 404
    assert missing.json()["itemNotFound"]["code"] == 404
    assert site.observe("volume", volume_id) is None


def test_bad_requests_change_nothing(cloud: Cloud) -> None:
    cases = [
        {"size": 0},
        {"name": "no-size"},
        {"size": "big"},
        {"size": 1, "availability_zone": "nowhere"},
        {"size": 1, "volume_type": "no-such-type"},
        {"size": 1, "metadata": {"k": 1}},
    ]
    for fields in cases:
        response = cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json={"volume": fields})
        assert response.status_code == 400, (fields, response.text)
        assert response.json()["badRequest"]["code"] == 400
    # a clone of a volume that does not exist: Cinder's 404 (clones are served since issue 10)
    missing = {"size": 1, "source_volid": "0b5f4ab6-1f5b-4cd5-bb8f-3b3f3e4b0a5e"}
    response = cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json={"volume": missing})
    assert response.status_code == 404, response.text
    bad_body = cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json={"size": 1})
    assert bad_body.status_code == 400
    assert show(cloud, "volumes").json()["volumes"] == []


def test_quota_limits_and_quota_sets(cloud: Cloud) -> None:
    project = project_of(cloud, cloud.demo)
    denied = cloud.client.put(
        f"{V3}/os-quota-sets/{project}", headers=cloud.demo, json={"quota_set": {"volumes": 1}}
    )
    assert denied.status_code == 403
    quota = {"quota_set": {"volumes": 1, "gigabytes": 5}}
    answer = cloud.client.put(f"{V3}/os-quota-sets/{project}", headers=cloud.admin, json=quota)
    assert answer.status_code == 200, answer.text
    assert answer.json()["quota_set"]["volumes"] == 1
    too_big = cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json={"volume": {"size": 6}})
    assert too_big.status_code == 413
    assert "gigabytes" in too_big.json()["overLimit"]["message"]
    create_volume(cloud, cloud.demo, size=2)
    second = cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json={"volume": {"size": 1}})
    assert second.status_code == 413
    absolute = show(cloud, "limits").json()["limits"]["absolute"]
    assert (absolute["maxTotalVolumes"], absolute["totalVolumesUsed"]) == (1, 1)
    assert (absolute["maxTotalVolumeGigabytes"], absolute["totalGigabytesUsed"]) == (5, 2)
    usage = show(cloud, f"os-quota-sets/{project}?usage=true").json()["quota_set"]
    assert usage["gigabytes"] == {"limit": 5, "in_use": 2, "reserved": 0, "allocated": 0}
    admin_project = project_of(cloud, cloud.admin)
    assert show(cloud, f"os-quota-sets/{admin_project}").status_code == 403
    bad_key = {"quota_set": {"backups": 3}}
    assert (
        cloud.client.put(
            f"{V3}/os-quota-sets/{project}", headers=cloud.admin, json=bad_key
        ).status_code
        == 400
    )


def test_snapshots_and_volumes_from_them(cloud: Cloud) -> None:
    volume = create_volume(cloud, cloud.demo, size=2, name="src", availability_zone="site-c")
    cloud.wait_idle()
    answer = cloud.client.post(
        f"{V3}/snapshots",
        headers=cloud.demo,
        json={"snapshot": {"volume_id": volume["id"], "name": "s1", "force": False}},
    )
    assert answer.status_code == 202, answer.text
    snapshot = answer.json()["snapshot"]
    assert (snapshot["status"], snapshot["size"]) == ("creating", 2)
    cloud.wait_idle()
    assert show(cloud, f"snapshots/{snapshot['id']}").json()["snapshot"]["status"] == "available"
    assert cloud.service.sites.get("site-c").observe("snapshot", snapshot["id"]) is not None
    listed = show(cloud, f"snapshots/detail?volume_id={volume['id']}").json()["snapshots"]
    assert [s["name"] for s in listed] == ["s1"]

    blocked = cloud.client.delete(f"{V3}/volumes/{volume['id']}", headers=cloud.demo)
    assert blocked.status_code == 400
    assert "dependent snapshots" in blocked.json()["badRequest"]["message"]

    wrong_zone = cloud.client.post(
        f"{V3}/volumes",
        headers=cloud.demo,
        json={"volume": {"snapshot_id": snapshot["id"], "availability_zone": "site-a"}},
    )
    assert wrong_zone.status_code == 400
    too_small = cloud.client.post(
        f"{V3}/volumes",
        headers=cloud.demo,
        json={"volume": {"snapshot_id": snapshot["id"], "size": 1}},
    )
    assert too_small.status_code == 400
    clone = create_volume(cloud, cloud.demo, snapshot_id=snapshot["id"], name="clone")
    assert (clone["availability_zone"], clone["size"]) == ("site-c", 2)
    assert clone["snapshot_id"] == snapshot["id"]
    cloud.wait_idle()
    assert show(cloud, f"volumes/{clone['id']}").json()["volume"]["status"] == "available"
    pinned = cloud.client.delete(f"{V3}/snapshots/{snapshot['id']}", headers=cloud.demo)
    assert pinned.status_code == 400

    assert cloud.client.delete(f"{V3}/volumes/{clone['id']}", headers=cloud.demo).status_code == 202
    cloud.wait_idle()
    deleted = cloud.client.delete(f"{V3}/snapshots/{snapshot['id']}", headers=cloud.demo)
    assert deleted.status_code == 202
    cloud.wait_idle()
    assert show(cloud, f"snapshots/{snapshot['id']}").status_code == 404
    assert (
        cloud.client.delete(f"{V3}/volumes/{volume['id']}", headers=cloud.demo).status_code == 202
    )
    cloud.wait_idle()
    assert cloud.service.sites.get("site-c").inventory() == []


def test_tenant_isolation(cloud: Cloud) -> None:
    volume = create_volume(cloud, cloud.demo, size=1, name="mine")
    other = cloud.new_member("other")
    assert show(cloud, f"volumes/{volume['id']}", other).status_code == 404
    assert show(cloud, "volumes/detail?all_tenants=1", other).json()["volumes"] == []
    update = {"volume": {"name": "stolen"}}
    assert (
        cloud.client.put(f"{V3}/volumes/{volume['id']}", headers=other, json=update).status_code
        == 404
    )
    assert cloud.client.delete(f"{V3}/volumes/{volume['id']}", headers=other).status_code == 404
    snap = {"snapshot": {"volume_id": volume["id"]}}
    assert cloud.client.post(f"{V3}/snapshots", headers=other, json=snap).status_code == 404
    assert show(cloud, "volumes", cloud.admin).json()["volumes"] == []
    everyone = show(cloud, "volumes/detail?all_tenants=true", cloud.admin).json()["volumes"]
    assert [v["id"] for v in everyone] == [volume["id"]]


def test_types_and_availability_zones(cloud: Cloud) -> None:
    types = show(cloud, "types").json()["volume_types"]
    assert [t["name"] for t in types] == ["__DEFAULT__"]
    assert show(cloud, "types/default").json()["volume_type"]["id"] == types[0]["id"]
    fast = {"volume_type": {"name": "fast", "extra_specs": {"speed": "high"}}}
    assert cloud.client.post(f"{V3}/types", headers=cloud.demo, json=fast).status_code == 403
    made = cloud.client.post(f"{V3}/types", headers=cloud.admin, json=fast)
    assert made.status_code == 200, made.text
    assert cloud.client.post(f"{V3}/types", headers=cloud.admin, json=fast).status_code == 409
    volume = create_volume(cloud, cloud.demo, size=1, volume_type="fast")
    assert volume["volume_type"] == "fast"
    type_id = made.json()["volume_type"]["id"]
    in_use = cloud.client.delete(f"{V3}/types/{type_id}", headers=cloud.admin)
    assert in_use.status_code == 400
    default_id = types[0]["id"]
    assert cloud.client.delete(f"{V3}/types/{default_id}", headers=cloud.admin).status_code == 400

    zones = show(cloud, "os-availability-zone").json()["availabilityZoneInfo"]
    assert [(z["zoneName"], z["zoneState"]["available"]) for z in zones] == [
        ("site-a", True),
        ("site-b", True),
        ("site-c", True),
    ]
    for name in ("site-a", "site-b"):
        cloud.service.sites.get(name).set_down(True)  # type: ignore[attr-defined]
    cloud.service.health.check_all()
    zones = show(cloud, "os-availability-zone").json()["availabilityZoneInfo"]
    assert [z["zoneState"]["available"] for z in zones] == [False, False, True]
    placed = [create_volume(cloud, cloud.demo, size=1)["availability_zone"] for _ in range(2)]
    assert placed == ["site-c", "site-c"]  # the only zone that is up
    for name in ("site-a", "site-b"):
        cloud.service.sites.get(name).set_down(False)  # type: ignore[attr-defined]


def test_list_paging_and_sorting(cloud: Cloud) -> None:
    ids = [create_volume(cloud, cloud.demo, size=1, name=name)["id"] for name in "bca"]
    by_name = show(cloud, "volumes?sort=name:asc").json()["volumes"]
    assert [v["name"] for v in by_name] == ["a", "b", "c"]
    newest = show(cloud, "volumes").json()["volumes"]
    assert [v["id"] for v in newest] == ids[::-1]
    first = show(cloud, "volumes/detail?limit=2&sort_key=name&sort_dir=desc").json()
    assert [v["name"] for v in first["volumes"]] == ["c", "b"]
    (link,) = first["volumes_links"]
    assert link["rel"] == "next" and "marker=" in link["href"]
    second = cloud.client.get(link["href"].split("testserver")[-1], headers=cloud.demo).json()
    assert [v["name"] for v in second["volumes"]] == ["a"]
    assert "volumes_links" not in second
    assert show(cloud, "volumes?marker=nope").status_code == 404
    assert show(cloud, "volumes?sort=colour").status_code == 400


def test_attached_volume_shows_its_server_and_cannot_be_deleted(cloud: Cloud) -> None:
    project = project_id(cloud.service)
    network, _ = add_network(cloud.service, project)
    server = add_server(cloud.service, project, network, az="site-a")
    volume = create_volume(cloud, cloud.demo, size=1, availability_zone="site-a")
    cloud.wait_idle()
    with cloud.service.db.session() as session:  # what the Compute API's attach writes
        row = repo.get(session, "volume", volume["id"])
        repo.change(session, row, device_id=server, status="attaching", spec={"device": "/dev/vdb"})
    cloud.wait_idle()
    body = show(cloud, f"volumes/{volume['id']}").json()["volume"]
    assert body["status"] == "in-use"
    (attachment,) = body["attachments"]
    assert (attachment["server_id"], attachment["device"]) == (server, "/dev/vdb")
    assert attachment["volume_id"] == volume["id"]
    for headers, path in (
        (cloud.demo, f"volumes/{volume['id']}"),
        (cloud.admin, f"volumes/{volume['id']}?force=true"),
    ):
        refused = cloud.client.delete(f"{V3}/{path}", headers=headers)
        assert refused.status_code == 400, refused.text
    extend = {"os-extend": {"new_size": 2}}
    action = cloud.client.post(
        f"{V3}/volumes/{volume['id']}/action", headers=cloud.demo, json=extend
    )
    assert action.status_code == 400
    assert show(cloud, f"volumes/{volume['id']}").json()["volume"]["status"] == "in-use"
