"""Block Storage microversions 3.0 - 3.70: negotiation (header, latest, 400/406),
the version document, and the body and behaviour changes each version brings."""

from __future__ import annotations

from typing import Any

from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, add_network, add_server, project_id

V3 = "/volume/v3"


def changed(before: Any, cloud: Cloud) -> list[str]:
    """What a refused request changed in the store (the health loop's site rows aside)."""
    after = difference(before, snapshot(cloud.service))
    return [part for part in after.split("; ") if part and not part.startswith("sites:")]


def at(headers: dict[str, str], version: str) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"volume {version}"}


def make_volume(cloud: Cloud, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = cloud.client.post(
        f"{V3}/volumes", headers=headers, json={"volume": {"size": 1, **fields}}
    )
    assert response.status_code == 202, response.text
    return response.json()["volume"]


def test_negotiation_and_version_document(cloud: Cloud) -> None:
    (version,) = cloud.client.get("/volume/").json()["versions"]
    assert (version["min_version"], version["version"]) == ("3.0", "3.70")
    plain = cloud.client.get(f"{V3}/volumes", headers=cloud.demo)
    assert plain.headers["OpenStack-API-Version"] == "volume 3.0"
    assert plain.headers["Vary"] == "OpenStack-API-Version"
    latest = cloud.client.get(f"{V3}/volumes", headers=at(cloud.demo, "latest"))
    assert latest.headers["OpenStack-API-Version"] == "volume 3.70"
    mid = cloud.client.get(f"{V3}/volumes", headers=at(cloud.demo, "3.42"))
    assert mid.headers["OpenStack-API-Version"] == "volume 3.42"
    # another service's version in the same header is not ours: 3.0
    mixed = {**cloud.demo, "OpenStack-API-Version": "compute 2.90, volume 3.61"}
    assert cloud.client.get(f"{V3}/volumes", headers=mixed).headers["OpenStack-API-Version"] == (
        "volume 3.61"
    )
    for too_far in ("3.71", "4.0", "2.9"):
        refused = cloud.client.get(f"{V3}/volumes", headers=at(cloud.demo, too_far))
        assert refused.status_code == 406, refused.text
        assert "maximum is 3.70" in refused.text
    malformed = cloud.client.get(f"{V3}/volumes", headers=at(cloud.demo, "3.x"))
    assert malformed.status_code == 400
    assert "invalid format" in malformed.text
    # an error still names the version it was answered in
    missing = cloud.client.get(f"{V3}/volumes/nope", headers=at(cloud.demo, "3.50"))
    assert missing.status_code == 404
    assert missing.headers["OpenStack-API-Version"] == "volume 3.50"


def test_volume_body_per_version(cloud: Cloud) -> None:
    created = make_volume(cloud, cloud.demo, name="mv")
    assert "group_id" not in created and "volume_type_id" not in created
    cloud.wait_idle()
    path = f"{V3}/volumes/{created['id']}"
    old = cloud.client.get(path, headers=cloud.demo).json()["volume"]
    for key in ("group_id", "shared_targets", "service_uuid", "volume_type_id", "consumes_quota"):
        assert key not in old
    v313 = cloud.client.get(path, headers=at(cloud.demo, "3.13")).json()["volume"]
    assert v313["group_id"] is None and "shared_targets" not in v313
    v348 = cloud.client.get(path, headers=at(cloud.demo, "3.48")).json()["volume"]
    assert v348["shared_targets"] is False and v348["service_uuid"]
    assert "volume_type_id" not in v348
    latest = cloud.client.get(path, headers=at(cloud.demo, "3.70")).json()["volume"]
    assert latest["volume_type_id"] and latest["consumes_quota"] is True
    assert "provider_id" not in latest and "cluster_name" not in latest  # admins only
    admin = cloud.client.get(path, headers=at(cloud.admin, "3.70")).json()["volume"]
    assert admin["provider_id"] is None and admin["cluster_name"] is None
    # the create answer follows the version too (but has no extension attributes)
    newer = make_volume(cloud, at(cloud.demo, "3.65"), name="mv2")
    assert newer["consumes_quota"] is True and "os-vol-tenant-attr:tenant_id" not in newer


def test_lists_filters_like_count_and_summary(cloud: Cloud) -> None:
    make_volume(cloud, cloud.demo, name="alpha-1", metadata={"tier": "gold"})
    make_volume(cloud, cloud.demo, name="alpha-2", size=2)
    make_volume(cloud, cloud.demo, name="beta")
    cloud.wait_idle()

    def names(query: str, version: str) -> list[str]:
        answer = cloud.client.get(f"{V3}/volumes/detail?{query}", headers=at(cloud.demo, version))
        assert answer.status_code == 200, answer.text
        return sorted(v["name"] for v in answer.json()["volumes"])

    assert names("name~=alpha", "3.34") == ["alpha-1", "alpha-2"]
    assert names("size=2", "3.31") == ["alpha-2"]
    assert names("metadata={'tier':'gold'}", "3.31") == ["alpha-1"]
    assert names("bogus=1", "3.30") == ["alpha-1", "alpha-2", "beta"]  # ignored before 3.31
    refused = cloud.client.get(f"{V3}/volumes?bogus=1", headers=at(cloud.demo, "3.31"))
    assert refused.status_code == 400 and "Invalid filters bogus" in refused.text
    assert names("created_at=gt:2000-01-01T00:00:00", "3.60") == ["alpha-1", "alpha-2", "beta"]
    assert names("created_at=lt:2000-01-01T00:00:00", "3.60") == []
    counted = cloud.client.get(
        f"{V3}/volumes?with_count=true&limit=1", headers=at(cloud.demo, "3.45")
    ).json()
    assert counted["count"] == 3 and len(counted["volumes"]) == 1
    not_yet = cloud.client.get(f"{V3}/volumes?with_count=true", headers=at(cloud.demo, "3.44"))
    assert "count" not in not_yet.json()
    summary = cloud.client.get(f"{V3}/volumes/summary", headers=at(cloud.demo, "3.36")).json()
    assert summary["volume-summary"] == {
        "total_count": 3,
        "total_size": 4,
        "metadata": {"tier": ["gold"]},
    }
    too_old = cloud.client.get(f"{V3}/volumes/summary", headers=at(cloud.demo, "3.11"))
    assert too_old.status_code == 404
    filters = cloud.client.get(
        f"{V3}/resource_filters?resource=volume", headers=at(cloud.demo, "3.33")
    ).json()["resource_filters"]
    assert filters[0]["resource"] == "volume" and "name" in filters[0]["filters"]


def test_snapshot_bodies_and_in_use_snapshots(cloud: Cloud) -> None:
    volume = make_volume(cloud, cloud.demo, name="snapme")
    cloud.wait_idle()
    created = cloud.client.post(
        f"{V3}/snapshots", headers=cloud.demo, json={"snapshot": {"volume_id": volume["id"]}}
    )
    assert created.status_code == 202, created.text
    body = created.json()["snapshot"]
    assert "user_id" not in body and "links" not in body
    assert "os-extended-snapshot-attributes:progress" not in body  # show and detail only
    cloud.wait_idle()
    path = f"{V3}/snapshots/{body['id']}"
    assert "user_id" not in cloud.client.get(path, headers=cloud.demo).json()["snapshot"]
    newer = cloud.client.get(path, headers=at(cloud.demo, "3.65")).json()["snapshot"]
    assert newer["user_id"] and newer["consumes_quota"] is True
    assert newer["group_snapshot_id"] is None
    listed = cloud.client.get(f"{V3}/snapshots", headers=cloud.demo).json()["snapshots"]
    assert listed[0]["metadata"] == {} and "updated_at" in listed[0]

    # an in-use volume: force before 3.66, none needed from 3.66 (force=false refused)
    project = project_id(cloud.service)
    network, _ = add_network(cloud.service, project)
    server = add_server(cloud.service, project, network, az=volume["availability_zone"])
    cloud.wait_idle()
    attach = {"volumeAttachment": {"volumeId": volume["id"]}}
    answer = cloud.client.post(
        f"/compute/v2.1/servers/{server}/os-volume_attachments", headers=cloud.demo, json=attach
    )
    assert answer.status_code == 200, answer.text
    cloud.wait_idle()
    ask = {"snapshot": {"volume_id": volume["id"]}}
    before = snapshot(cloud.service)
    old = cloud.client.post(f"{V3}/snapshots", headers=at(cloud.demo, "3.65"), json=ask)
    assert old.status_code == 400, old.text
    forced_off = {"snapshot": {"volume_id": volume["id"], "force": False}}
    refused = cloud.client.post(f"{V3}/snapshots", headers=at(cloud.demo, "3.66"), json=forced_off)
    assert refused.status_code == 400 and "3.66" in refused.text
    assert changed(before, cloud) == []
    taken = cloud.client.post(f"{V3}/snapshots", headers=at(cloud.demo, "3.66"), json=ask)
    assert taken.status_code == 202, taken.text


def test_extend_in_use_from_342_and_create_schema_from_353(cloud: Cloud) -> None:
    volume = make_volume(cloud, cloud.demo, name="grow")
    project = project_id(cloud.service)
    network, _ = add_network(cloud.service, project)
    cloud.wait_idle()
    server = add_server(cloud.service, project, network, az=volume["availability_zone"])
    cloud.wait_idle()
    attach = {"volumeAttachment": {"volumeId": volume["id"]}}
    cloud.client.post(
        f"/compute/v2.1/servers/{server}/os-volume_attachments", headers=cloud.demo, json=attach
    )
    cloud.wait_idle()
    action = f"{V3}/volumes/{volume['id']}/action"
    extend = {"os-extend": {"new_size": 2}}
    before = snapshot(cloud.service)
    old = cloud.client.post(action, headers=at(cloud.demo, "3.41"), json=extend)
    assert old.status_code == 400, old.text
    unknown = {"volume": {"size": 1, "colour": "blue"}}
    strict = cloud.client.post(f"{V3}/volumes", headers=at(cloud.demo, "3.53"), json=unknown)
    assert strict.status_code == 400 and "colour" in strict.text
    assert changed(before, cloud) == []
    lenient = cloud.client.post(f"{V3}/volumes", headers=at(cloud.demo, "3.52"), json=unknown)
    assert lenient.status_code == 202
    grown = cloud.client.post(action, headers=at(cloud.demo, "3.42"), json=extend)
    assert grown.status_code == 202, grown.text
    cloud.wait_idle()
    body = cloud.client.get(f"{V3}/volumes/{volume['id']}", headers=cloud.demo).json()["volume"]
    assert (body["size"], body["status"]) == (2, "in-use")
