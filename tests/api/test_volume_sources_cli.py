"""Volume sources, extend and boot from volume through the real `openstack` CLI
(python-openstackclient over openstacksdk/cinderclient, negotiating its own
versions): `volume create --image/--snapshot/--source`, `volume set --size`,
`server create --volume` and `--block-device`, and the volume API at 3.70."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.openstack_cli import openstack_json, run_openstack
from tests.support import Cloud, add_network, project_id

pytestmark = pytest.mark.cli


def _json(cloud: Cloud, args: list[str]) -> Any:
    assert cloud.clouds_yaml is not None
    return openstack_json(args, cloud.clouds_yaml, "isthmus-demo")


def _run(cloud: Cloud, args: list[str]) -> None:
    assert cloud.clouds_yaml is not None
    proc = run_openstack(args, cloud.clouds_yaml, "isthmus-demo")
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"


def test_volume_sources_extend_and_boot_from_volume(live_cloud: Cloud) -> None:
    cloud = live_cloud
    from_image = _json(
        cloud,
        ["volume", "create", "--image", "isthmus-minimal", "--size", "1",
         "--availability-zone", "site-b", "--bootable", "img-vol"],
    )  # fmt: skip
    assert from_image["availability_zone"] == "site-b"
    cloud.wait_idle()
    shown = _json(cloud, ["volume", "show", "img-vol"])
    assert shown["status"] == "available" and shown["bootable"] in (True, "true")
    assert shown["volume_image_metadata"]["image_name"] == "isthmus-minimal"
    clone = _json(cloud, ["volume", "create", "--source", "img-vol", "clone-vol"])
    snap = _json(cloud, ["volume", "snapshot", "create", "--volume", "img-vol", "snap"])
    cloud.wait_idle()
    from_snap = _json(cloud, ["volume", "create", "--snapshot", snap["id"], "snap-vol"])
    cloud.wait_idle()
    for name, source_key, source in (
        ("clone-vol", "source_volid", from_image["id"]),
        ("snap-vol", "snapshot_id", snap["id"]),
    ):
        body = _json(cloud, ["volume", "show", name])
        assert (body["status"], body["availability_zone"]) == ("available", "site-b")
        assert body[source_key] == source
    assert clone["size"] == 1 and from_snap["size"] == 1
    _run(cloud, ["volume", "set", "--size", "3", "clone-vol"])
    cloud.wait_idle()
    assert _json(cloud, ["volume", "show", "clone-vol"])["size"] == 3
    # the newest volume microversion through the CLI
    latest = _json(cloud, ["--os-volume-api-version", "3.70", "volume", "show", "clone-vol"])
    assert latest["id"] == clone["id"]

    image_id = _json(cloud, ["image", "show", "isthmus-minimal"])["id"]
    net, _ = add_network(cloud.service, project_id(cloud.service, "demo"), name="bfv-net")
    by_volume = _json(
        cloud,
        ["server", "create", "--flavor", "m1.tiny", "--volume", "clone-vol",
         "--network", net, "bfv-1"],
    )  # fmt: skip
    by_mapping = _json(
        cloud,
        ["server", "create", "--flavor", "m1.tiny", "--network", net,
         "--block-device",
         f"source_type=image,uuid={image_id},destination_type=volume,"
         "volume_size=1,boot_index=0,delete_on_termination=true",
         "--availability-zone", "site-c", "bfv-2"],
    )  # fmt: skip
    cloud.wait_idle()  # (not --wait: see test_compute_microversions_cli.py)
    assert (by_volume["name"], by_mapping["name"]) == ("bfv-1", "bfv-2")
    first = _json(cloud, ["server", "show", "bfv-1"])
    assert (first["status"], first["OS-EXT-AZ:availability_zone"]) == ("ACTIVE", "site-b")
    assert [v["id"] for v in first["volumes_attached"]] == [clone["id"]]
    second = _json(cloud, ["server", "show", "bfv-2"])
    assert (second["status"], second["OS-EXT-AZ:availability_zone"]) == ("ACTIVE", "site-c")
    (root,) = second["volumes_attached"]
    assert _json(cloud, ["volume", "show", clone["id"]])["status"] == "in-use"
    _run(cloud, ["server", "delete", "bfv-1", "bfv-2"])
    cloud.wait_idle()
    assert _json(cloud, ["volume", "show", clone["id"]])["status"] == "available"
    names = {v["Name"] for v in _json(cloud, ["volume", "list"])}
    assert names == {"img-vol", "clone-vol", "snap-vol"}  # bfv-2's root went with it
    assert root["id"] not in {v["ID"] for v in _json(cloud, ["volume", "list"])}
