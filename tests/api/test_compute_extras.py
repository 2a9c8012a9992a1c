"""Compute v2.1 beyond servers: flavors, key pairs, availability zones, limits,
quota sets and volume attachments."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from typing import Any

from isthmus.store import repo
from isthmus.store.tables import Resource
from isthmus.store.work import enqueue
from tests.api.test_compute import V, boot_ok, demo_network, show
from tests.support import Cloud, project_id

# -- flavors ----------------------------------------------------------------------------------


def test_flavor_list_detail_show_filters_and_pages(cloud: Cloud) -> None:
    client = cloud.client
    brief = client.get(f"{V}/flavors", headers=cloud.demo).json()["flavors"]
    assert [f["name"] for f in brief] == [
        "m1.tiny",
        "m1.small",
        "m1.medium",
        "m1.large",
        "m1.xlarge",
    ]
    assert set(brief[0]) == {"id", "name", "links"}
    detail = client.get(f"{V}/flavors/detail", headers=cloud.demo).json()["flavors"]
    tiny = detail[0]
    assert (tiny["vcpus"], tiny["ram"], tiny["disk"]) == (1, 512, 1)
    assert tiny["os-flavor-access:is_public"] is True and tiny["OS-FLV-EXT-DATA:ephemeral"] == 0
    assert tiny["swap"] == "" and tiny["rxtx_factor"] == 1.0
    shown = client.get(f"{V}/flavors/3", headers=cloud.demo).json()["flavor"]
    assert shown["name"] == "m1.medium" and shown["links"][0]["rel"] == "self"
    assert client.get(f"{V}/flavors/99", headers=cloud.demo).status_code == 404
    big = client.get(f"{V}/flavors/detail?minRam=8192&minDisk=80", headers=cloud.demo).json()
    assert [f["name"] for f in big["flavors"]] == ["m1.large", "m1.xlarge"]
    assert client.get(f"{V}/flavors?minRam=x", headers=cloud.demo).status_code == 400
    page = client.get(f"{V}/flavors?limit=2", headers=cloud.demo).json()
    assert [f["id"] for f in page["flavors"]] == ["1", "2"]
    href = page["flavors_links"][0]["href"]
    rest = client.get(href[href.index("/compute/") :], headers=cloud.demo).json()
    assert [f["id"] for f in rest["flavors"]] == ["3", "4"]
    desc = client.get(f"{V}/flavors?sort_key=memory_mb&sort_dir=desc", headers=cloud.demo)
    assert desc.json()["flavors"][0]["name"] == "m1.xlarge"


def test_admin_manages_flavors_and_extra_specs(cloud: Cloud) -> None:
    client = cloud.client
    body = {"flavor": {"name": "c1.custom", "ram": 1024, "vcpus": 2, "disk": 5, "id": "c1"}}
    assert client.post(f"{V}/flavors", headers=cloud.demo, json=body).status_code == 403
    created = client.post(f"{V}/flavors", headers=cloud.admin, json=body)
    assert created.status_code == 200, created.text
    assert created.json()["flavor"]["id"] == "c1"
    assert client.post(f"{V}/flavors", headers=cloud.admin, json=body).status_code == 409
    renamed = {"flavor": {**body["flavor"], "id": "c2"}}
    assert client.post(f"{V}/flavors", headers=cloud.admin, json=renamed).status_code == 409
    bad = {"flavor": {"name": "bad", "ram": 0, "vcpus": 1, "disk": 1}}
    assert client.post(f"{V}/flavors", headers=cloud.admin, json=bad).status_code == 400
    auto = {"flavor": {"name": "auto", "ram": 64, "vcpus": 1, "disk": 0}}
    auto_id = client.post(f"{V}/flavors", headers=cloud.admin, json=auto).json()["flavor"]["id"]
    assert len(auto_id) == 36
    specs_url = f"{V}/flavors/c1/os-extra_specs"
    added = client.post(specs_url, headers=cloud.admin, json={"extra_specs": {"hw:cpu": "2"}})
    assert added.status_code == 200 and added.json() == {"extra_specs": {"hw:cpu": "2"}}
    assert (
        client.post(specs_url, headers=cloud.demo, json={"extra_specs": {"a": "b"}}).status_code
        == 403
    )
    assert client.get(specs_url, headers=cloud.demo).json() == {"extra_specs": {"hw:cpu": "2"}}
    assert client.get(f"{specs_url}/hw:cpu", headers=cloud.demo).json() == {"hw:cpu": "2"}
    assert client.delete(f"{specs_url}/hw:cpu", headers=cloud.admin).status_code == 202
    assert client.get(f"{specs_url}/hw:cpu", headers=cloud.demo).status_code == 404
    # private flavors: invisible to members until access is granted
    private = {"flavor": {"name": "p1", "ram": 64, "vcpus": 1, "disk": 0, "id": "p1"}}
    private["flavor"]["os-flavor-access:is_public"] = False
    assert client.post(f"{V}/flavors", headers=cloud.admin, json=private).status_code == 200
    assert client.get(f"{V}/flavors/p1", headers=cloud.demo).status_code == 404
    demo = project_id(cloud.service, "demo")
    granted = client.post(
        f"{V}/flavors/p1/action",
        headers=cloud.admin,
        json={"addTenantAccess": {"tenant": demo}},
    )
    assert granted.json() == {"flavor_access": [{"flavor_id": "p1", "tenant_id": demo}]}
    assert client.get(f"{V}/flavors/p1", headers=cloud.demo).status_code == 200
    all_flavors = client.get(f"{V}/flavors?is_public=none", headers=cloud.admin).json()["flavors"]
    assert "p1" in {f["id"] for f in all_flavors}
    assert client.delete(f"{V}/flavors/c1", headers=cloud.demo).status_code == 403
    assert client.delete(f"{V}/flavors/c1", headers=cloud.admin).status_code == 202
    assert client.get(f"{V}/flavors/c1", headers=cloud.admin).status_code == 404


def test_server_keeps_its_flavor_copy_after_flavor_delete(cloud: Cloud) -> None:
    body = {"flavor": {"name": "temp", "ram": 256, "vcpus": 1, "disk": 1, "id": "temp"}}
    assert cloud.client.post(f"{V}/flavors", headers=cloud.admin, json=body).status_code == 200
    server_id = boot_ok(cloud, demo_network(cloud), flavorRef="temp")
    assert cloud.client.delete(f"{V}/flavors/temp", headers=cloud.admin).status_code == 202
    cloud.wait_idle()
    server = show(cloud, server_id)
    assert server["status"] == "ACTIVE" and server["flavor"]["id"] == "temp"


# -- key pairs --------------------------------------------------------------------------------


def _ssh_keygen(tmp: Path, kind: str) -> str:
    path = tmp / f"key-{kind}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True, timeout=30
    )
    return path.with_suffix(".pub").read_text().strip()


def _md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def test_keypairs_generate_import_duplicate_and_per_user(cloud: Cloud, tmp_path: Path) -> None:
    client = cloud.client
    url = f"{V}/os-keypairs"
    generated = client.post(url, headers=cloud.demo, json={"keypair": {"name": "gen"}})
    assert generated.status_code == 200, generated.text
    key = generated.json()["keypair"]
    assert key["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert key["public_key"].startswith("ssh-rsa ")
    assert key["fingerprint"] == _md5_fingerprint(key["public_key"])
    for kind in ("ed25519", "ecdsa", "rsa"):
        public = _ssh_keygen(tmp_path, kind)
        imported = client.post(
            url, headers=cloud.demo, json={"keypair": {"name": f"imp-{kind}", "public_key": public}}
        )
        assert imported.status_code == 200, imported.text
        assert "private_key" not in imported.json()["keypair"]
        assert imported.json()["keypair"]["fingerprint"] == _md5_fingerprint(public)
    duplicate = client.post(url, headers=cloud.demo, json={"keypair": {"name": "gen"}})
    assert duplicate.status_code == 409
    for bad in ("ssh-rsa notbase64!", "hello world", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="):
        response = client.post(
            url, headers=cloud.demo, json={"keypair": {"name": "bad", "public_key": bad}}
        )
        assert response.status_code == 400, bad
    bad_name = client.post(url, headers=cloud.demo, json={"keypair": {"name": "a/b"}})
    assert bad_name.status_code == 400
    listed = client.get(url, headers=cloud.demo).json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == ["gen", "imp-ecdsa", "imp-ed25519", "imp-rsa"]
    shown = client.get(f"{url}/gen", headers=cloud.demo).json()["keypair"]
    assert shown["public_key"] == key["public_key"] and shown["user_id"]
    # key pairs are per user: another user neither sees nor reaches them, and may reuse names
    other = cloud.new_member("other")
    assert client.get(url, headers=other).json()["keypairs"] == []
    assert client.get(f"{url}/gen", headers=other).status_code == 404
    assert client.delete(f"{url}/gen", headers=other).status_code == 404
    assert client.post(url, headers=other, json={"keypair": {"name": "gen"}}).status_code == 200
    assert client.delete(f"{url}/gen", headers=cloud.demo).status_code == 202
    assert client.get(f"{url}/gen", headers=cloud.demo).status_code == 404
    assert client.get(f"{url}/gen", headers=other).status_code == 200


# -- zones, limits, quota sets ------------------------------------------------------------------


def test_availability_zones_one_per_site(cloud: Cloud) -> None:
    zones = cloud.client.get(f"{V}/os-availability-zone", headers=cloud.demo).json()
    info = zones["availabilityZoneInfo"]
    assert [z["zoneName"] for z in info] == ["site-a", "site-b", "site-c"]
    assert all(z["zoneState"]["available"] for z in info)
    assert (
        cloud.client.get(f"{V}/os-availability-zone/detail", headers=cloud.demo).status_code == 403
    )
    detail = cloud.client.get(f"{V}/os-availability-zone/detail", headers=cloud.admin).json()
    assert detail["availabilityZoneInfo"][1]["hosts"]["site-b"]["nova-compute"]["available"]
    cloud.service.sites.get("site-b").set_down(True)
    try:
        cloud.service.health.check_all()
        info = cloud.client.get(f"{V}/os-availability-zone", headers=cloud.demo).json()
        states = {z["zoneName"]: z["zoneState"]["available"] for z in info["availabilityZoneInfo"]}
        assert states == {"site-a": True, "site-b": False, "site-c": True}
    finally:
        cloud.service.sites.get("site-b").set_down(False)
        cloud.service.health.check_all()


def test_limits_and_quota_sets(cloud: Cloud) -> None:
    client = cloud.client
    boot_ok(cloud, demo_network(cloud), flavorRef="2")  # 1 vCPU, 2048 MiB
    assert client.post(f"{V}/os-keypairs", headers=cloud.demo, json={"keypair": {"name": "k"}})
    absolute = client.get(f"{V}/limits", headers=cloud.demo).json()["limits"]["absolute"]
    assert absolute["totalInstancesUsed"] == 1
    assert absolute["totalCoresUsed"] == 1 and absolute["totalRAMUsed"] == 2048
    assert absolute["maxTotalInstances"] == 100 and absolute["maxTotalKeypairs"] == 100
    assert absolute["maxTotalRAMSize"] > 0 and absolute["maxServerMeta"] == 128
    demo = project_id(cloud.service, "demo")
    admin = project_id(cloud.service, "admin")
    assert client.get(f"{V}/limits?tenant_id={admin}", headers=cloud.demo).status_code == 403
    theirs = client.get(f"{V}/limits?tenant_id={demo}", headers=cloud.admin).json()
    assert theirs["limits"]["absolute"]["totalInstancesUsed"] == 1
    quota = client.get(f"{V}/os-quota-sets/{demo}", headers=cloud.demo).json()["quota_set"]
    assert quota["id"] == demo and quota["instances"] == 100 and quota["key_pairs"] == 100
    assert client.get(f"{V}/os-quota-sets/{admin}", headers=cloud.demo).status_code == 403
    detail = client.get(f"{V}/os-quota-sets/{demo}/detail", headers=cloud.demo).json()
    assert detail["quota_set"]["instances"] == {"limit": 100, "in_use": 1, "reserved": 0}
    defaults = client.get(f"{V}/os-quota-sets/{demo}/defaults", headers=cloud.demo).json()
    assert defaults["quota_set"]["cores"] == 400
    update = {"quota_set": {"instances": 7, "key_pairs": 1}}
    assert (
        client.put(f"{V}/os-quota-sets/{demo}", headers=cloud.demo, json=update).status_code == 403
    )
    updated = client.put(f"{V}/os-quota-sets/{demo}", headers=cloud.admin, json=update)
    assert updated.status_code == 200 and updated.json()["quota_set"]["instances"] == 7
    assert (
        client.get(f"{V}/limits", headers=cloud.demo).json()["limits"]["absolute"][
            "maxTotalInstances"
        ]
        == 7
    )
    over = client.post(f"{V}/os-keypairs", headers=cloud.demo, json={"keypair": {"name": "k2"}})
    assert over.status_code == 413
    below_use = {"quota_set": {"instances": 0}}
    assert (
        client.put(f"{V}/os-quota-sets/{demo}", headers=cloud.admin, json=below_use).status_code
        == 400
    )
    forced = {"quota_set": {"instances": 0, "force": True}}
    assert (
        client.put(f"{V}/os-quota-sets/{demo}", headers=cloud.admin, json=forced).status_code == 200
    )
    unknown = {"quota_set": {"bananas": 3}}
    assert (
        client.put(f"{V}/os-quota-sets/{demo}", headers=cloud.admin, json=unknown).status_code
        == 400
    )
    assert client.delete(f"{V}/os-quota-sets/{demo}", headers=cloud.admin).status_code == 202
    back = client.get(f"{V}/os-quota-sets/{demo}", headers=cloud.demo).json()["quota_set"]
    assert back["instances"] == 100


# -- volume attachments ----------------------------------------------------------------------------


def add_volume(
    cloud: Cloud, site: str, project: str | None = None, status: str = "available"
) -> str:
    """A volume written directly in the store, as the Volume API does."""
    with cloud.service.db.session() as session:
        volume = repo.add(
            session,
            "volume",
            project_id=project or project_id(cloud.service, "demo"),
            name="vol",
            status=status,
            site=site,
            spec={"size": 1},
        )
        enqueue(session, volume.id, "volume", site)
        return volume.id


def volume_row(cloud: Cloud, volume_id: str) -> Resource:
    with cloud.service.db.read() as session:
        volume = session.get(Resource, volume_id)
        assert volume is not None
        session.expunge(volume)  # keep its loaded state readable after the session
        return volume


def test_attach_and_detach_volume(cloud: Cloud) -> None:
    client = cloud.client
    server_id = boot_ok(cloud, demo_network(cloud), availability_zone="site-a")
    same = add_volume(cloud, "site-a")
    second = add_volume(cloud, "site-a")
    elsewhere = add_volume(cloud, "site-b")
    cloud.wait_idle()
    url = f"{V}/servers/{server_id}/os-volume_attachments"
    attached = client.post(url, headers=cloud.demo, json={"volumeAttachment": {"volumeId": same}})
    assert attached.status_code == 200, attached.text
    attachment = attached.json()["volumeAttachment"]
    assert attachment == {"id": same, "serverId": server_id, "volumeId": same, "device": "/dev/vdb"}
    assert volume_row(cloud, same).status in ("attaching", "in-use")  # the engine is quick
    busy = client.post(url, headers=cloud.demo, json={"volumeAttachment": {"volumeId": same}})
    assert busy.status_code == 400 and "must be 'available'" in busy.text
    cross = client.post(url, headers=cloud.demo, json={"volumeAttachment": {"volumeId": elsewhere}})
    assert cross.status_code == 400
    message = cross.json()["badRequest"]["message"]
    assert "site-a" in message and "site-b" in message
    missing = client.post(url, headers=cloud.demo, json={"volumeAttachment": {"volumeId": "nope"}})
    assert missing.status_code == 404
    cloud.wait_idle()
    volume = volume_row(cloud, same)
    assert volume.status == "in-use" and volume.device_id == server_id
    assert volume.spec["device"] == "/dev/vdb"
    second_attach = client.post(
        url, headers=cloud.demo, json={"volumeAttachment": {"volumeId": second}}
    )
    assert second_attach.json()["volumeAttachment"]["device"] == "/dev/vdc"
    cloud.wait_idle()
    server = show(cloud, server_id)
    assert sorted(v["id"] for v in server["os-extended-volumes:volumes_attached"]) == sorted(
        [same, second]
    )
    listed = client.get(url, headers=cloud.demo).json()["volumeAttachments"]
    assert {a["volumeId"] for a in listed} == {same, second}
    assert client.get(f"{url}/{same}", headers=cloud.demo).json()["volumeAttachment"]["device"]
    assert client.get(f"{url}/{elsewhere}", headers=cloud.demo).status_code == 404
    assert client.delete(f"{url}/{same}", headers=cloud.demo).status_code == 202
    assert volume_row(cloud, same).status in ("detaching", "available")
    assert client.delete(f"{url}/{same}", headers=cloud.demo).status_code == 404
    cloud.wait_idle()
    detached = volume_row(cloud, same)
    assert detached.status == "available" and detached.device_id is None
    site_obj = cloud.service.sites.get("site-a").state.find("volume", same)
    assert site_obj is not None and site_obj.spec["attached_server_id"] is None
    # deleting the server detaches what is still attached
    assert client.delete(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 204
    cloud.wait_idle()
    gone_with_server = volume_row(cloud, second)
    assert gone_with_server.status == "available" and gone_with_server.device_id is None


def test_attach_needs_a_visible_volume_and_a_running_server(cloud: Cloud) -> None:
    client = cloud.client
    server_id = boot_ok(cloud, demo_network(cloud), availability_zone="site-a")
    theirs = add_volume(cloud, "site-a", project=project_id(cloud.service, "admin"))
    mine = add_volume(cloud, "site-a")
    url = f"{V}/servers/{server_id}/os-volume_attachments"
    cloud.wait_idle()
    hidden = client.post(url, headers=cloud.demo, json={"volumeAttachment": {"volumeId": theirs}})
    assert hidden.status_code == 404
    assert client.post(url, headers=cloud.demo, json={"volumeAttachment": {}}).status_code == 400
    assert (
        client.post(
            f"{V}/servers/{server_id}/action", headers=cloud.demo, json={"os-stop": None}
        ).status_code
        == 202
    )
    body: dict[str, Any] = {"volumeAttachment": {"volumeId": mine}}
    pending = client.post(url, headers=cloud.demo, json=body)
    if pending.status_code == 409:  # still powering off: Nova says the task is in the way
        assert "task_state powering-off" in pending.text
        cloud.wait_idle()
        pending = client.post(url, headers=cloud.demo, json=body)
    assert pending.status_code == 200  # stopped servers take volumes, as in Nova
