"""Boot from volume (Nova's block_device_mapping_v2): the root volume made or taken
in the server's site and attached as /dev/vda, the server showing image "" and the
volume in os-extended-volumes, delete_on_termination honoured, Nova's 400s
writing nothing."""

from __future__ import annotations

from typing import Any

from tests.api.test_volume_sources import public_image
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, add_network, project_id

V = "/compute/v2.1"
V3 = "/volume/v3"


def network(cloud: Cloud) -> str:
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"))
    return net


def boot(cloud: Cloud, net: str, mapping: dict[str, Any], **extra: Any) -> Any:
    server = {
        "name": "bfv",
        "flavorRef": "1",
        "imageRef": "",
        "networks": [{"uuid": net}],
        "block_device_mapping_v2": [{"boot_index": 0, "destination_type": "volume", **mapping}],
        **extra,
    }
    return cloud.client.post(f"{V}/servers", headers=cloud.demo, json={"server": server})


def volume(cloud: Cloud, volume_id: str) -> dict[str, Any]:
    answer = cloud.client.get(f"{V3}/volumes/{volume_id}", headers=cloud.demo)
    assert answer.status_code == 200, answer.text
    return answer.json()["volume"]


def server(cloud: Cloud, server_id: str) -> dict[str, Any]:
    answer = cloud.client.get(
        f"{V}/servers/{server_id}",
        headers={**cloud.demo, "OpenStack-API-Version": "compute 2.3"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["server"]


def root_of(cloud: Cloud, server_id: str) -> str:
    (attached,) = server(cloud, server_id)["os-extended-volumes:volumes_attached"]
    return str(attached["id"])


def test_boot_from_an_image_volume_deleted_with_the_server(cloud: Cloud) -> None:
    net = network(cloud)
    image = public_image(cloud)
    answer = boot(
        cloud,
        net,
        {
            "source_type": "image",
            "uuid": image["id"],
            "volume_size": 1,
            "delete_on_termination": True,
        },
        availability_zone="site-b",
    )
    assert answer.status_code == 202, answer.text
    server_id = answer.json()["server"]["id"]
    cloud.wait_idle()
    body = server(cloud, server_id)
    assert body["status"] == "ACTIVE" and body["image"] == ""
    assert body["OS-EXT-AZ:availability_zone"] == "site-b"
    (attached,) = body["os-extended-volumes:volumes_attached"]
    assert attached["delete_on_termination"] is True
    root = volume(cloud, attached["id"])
    assert (root["status"], root["bootable"], root["availability_zone"]) == (
        "in-use",
        "true",
        "site-b",
    )
    assert root["attachments"][0]["device"] == "/dev/vda"
    assert root["attachments"][0]["server_id"] == server_id
    assert root["volume_image_metadata"]["image_id"] == image["id"]
    site = cloud.service.sites.get("site-b")
    assert site.observe("server", server_id) is not None
    assert site.observe("volume", attached["id"]) is not None
    # an attached root volume is not deleted through Cinder
    refused = cloud.client.delete(f"{V3}/volumes/{attached['id']}", headers=cloud.demo)
    assert refused.status_code == 400
    assert cloud.client.delete(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 204
    cloud.wait_idle()
    gone = cloud.client.get(f"{V3}/volumes/{attached['id']}", headers=cloud.demo)
    assert gone.status_code == 404
    assert site.observe("volume", attached["id"]) is None


def test_boot_from_an_existing_volume_kept_after_the_server(cloud: Cloud) -> None:
    net = network(cloud)
    image = public_image(cloud)
    made = cloud.client.post(
        f"{V3}/volumes",
        headers=cloud.demo,
        json={"volume": {"size": 1, "imageRef": image["id"], "availability_zone": "site-a"}},
    ).json()["volume"]
    cloud.wait_idle()
    answer = boot(cloud, net, {"source_type": "volume", "uuid": made["id"]})
    assert answer.status_code == 202, answer.text
    server_id = answer.json()["server"]["id"]
    cloud.wait_idle()
    body = server(cloud, server_id)
    assert body["OS-EXT-AZ:availability_zone"] == "site-a"  # the volume's zone
    assert root_of(cloud, server_id) == made["id"]
    assert volume(cloud, made["id"])["status"] == "in-use"
    assert cloud.client.delete(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 204
    cloud.wait_idle()
    kept = volume(cloud, made["id"])
    assert (kept["status"], kept["attachments"]) == ("available", [])
    # and it boots another server
    again = boot(cloud, net, {"source_type": "volume", "uuid": made["id"]})
    assert again.status_code == 202, again.text
    cloud.wait_idle()
    assert server(cloud, again.json()["server"]["id"])["status"] == "ACTIVE"


def test_boot_from_a_snapshot_and_a_blank_volume(cloud: Cloud) -> None:
    net = network(cloud)
    source = cloud.client.post(
        f"{V3}/volumes",
        headers=cloud.demo,
        json={"volume": {"size": 1, "availability_zone": "site-b"}},
    ).json()["volume"]
    cloud.wait_idle()
    snap = cloud.client.post(
        f"{V3}/snapshots", headers=cloud.demo, json={"snapshot": {"volume_id": source["id"]}}
    ).json()["snapshot"]
    cloud.wait_idle()
    answer = boot(cloud, net, {"source_type": "snapshot", "uuid": snap["id"], "volume_size": 2})
    assert answer.status_code == 202, answer.text
    server_id = answer.json()["server"]["id"]
    blank = boot(cloud, net, {"source_type": "blank", "volume_size": 1}, name="blank")
    assert blank.status_code == 202, blank.text
    cloud.wait_idle()
    assert server(cloud, server_id)["OS-EXT-AZ:availability_zone"] == "site-b"
    root = volume(cloud, root_of(cloud, server_id))
    assert (root["size"], root["snapshot_id"], root["status"]) == (2, snap["id"], "in-use")
    blank_root = volume(cloud, root_of(cloud, blank.json()["server"]["id"]))
    assert (blank_root["size"], blank_root["status"]) == (1, "in-use")


def test_bad_mappings_are_novas_400s_and_change_nothing(cloud: Cloud) -> None:
    net = network(cloud)
    image = public_image(cloud)
    busy = cloud.client.post(
        f"{V3}/volumes",
        headers=cloud.demo,
        json={"volume": {"size": 1, "availability_zone": "site-a"}},
    ).json()["volume"]
    cloud.wait_idle()
    missing = "0b5f4ab6-1f5b-4cd5-bb8f-3b3f3e4b0a5e"
    before = snapshot(cloud.service)
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"source_type": "volume", "uuid": missing}, {}, "failed to get volume"),
        ({"source_type": "snapshot", "uuid": missing}, {}, "failed to get snapshot"),
        ({"source_type": "image", "uuid": missing, "volume_size": 1}, {}, "could not be found"),
        ({"source_type": "image", "uuid": image["id"]}, {}, "non-zero size"),
        ({"source_type": "blank"}, {}, "non-zero size"),
        ({"source_type": "disk", "uuid": missing}, {}, "source_type"),
        ({"source_type": "volume", "uuid": busy["id"]}, {"max_count": 2}, "multiple instances"),
        (
            {"source_type": "volume", "uuid": busy["id"]},
            {"availability_zone": "site-b"},
            "not in the same availability zone",
        ),
        ({"source_type": "image", "uuid": image["id"], "volume_size": "x"}, {}, "integer"),
    ]
    for mapping, extra, words in cases:
        answer = boot(cloud, net, mapping, **extra)
        assert answer.status_code == 400, (mapping, answer.text)
        assert words in answer.text, (mapping, answer.text)
    after = difference(before, snapshot(cloud.service))
    assert [p for p in after.split("; ") if p and not p.startswith("sites:")] == []
