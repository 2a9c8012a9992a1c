"""The contract suite against the `openstack` driver, whose site is a REAL
Isthmus in site mode (`isthmus up --site-mode`, a subprocess on a loopback
port) reached through openstacksdk with that Isthmus's own clouds.yaml; plus
what only an OpenStack site shows: how objects are marked there, that foreign
objects are left alone, rule sync, and error mapping at the boundary.

The site-mode Isthmus is asynchronous (its own engine moves servers BUILD ->
ACTIVE and volumes creating -> available), as a real cloud is.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openstack
import pytest
import yaml
from openstack import exceptions as sdk
from openstack.config import OpenStackConfig
from openstack.connection import Connection

from isthmus.errors import PermanentError, SiteUnavailable, TemporaryError
from isthmus.sites.base import (
    ImageSpec,
    NetworkSpec,
    SecurityGroupSpec,
    SecurityRule,
    ServerSpec,
    VolumeSpec,
)
from isthmus.sites.openstack import OpenStackDriver
from isthmus.sites.openstack.errors import map_http
from isthmus.sites.openstack.network import single_address_pool
from tests.contract.driver_contract import DriverContract, Topology, _id, wait_status
from tests.fixtures.isthmus_process import Running, free_port, start_isthmus

pytestmark = [
    pytest.mark.timeout(120),
    # openstacksdk's own deprecation notices about its internals
    pytest.mark.filterwarnings("ignore:::openstack"),
]

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx8Xq1Kpre7wjkwxZx6UQ6V1cvfyuRIAFtHiXxMnIqo"
DELETE_ORDER = ("server", "snapshot", "volume", "port", "image", "subnet", "security_group")


@pytest.fixture(scope="module")
def lower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A site-mode Isthmus serving one embedded site, `lower` (stopped by its pid)."""
    running = start_isthmus(
        tmp_path_factory.mktemp("lower") / "data", None, "--site-mode", "--site-name", "lower"
    )
    try:
        yield running
    finally:
        running.stop()


def driver_config(lower: Running, **extra: object) -> dict[str, object]:
    return {
        "cloud": "isthmus",
        "clouds_yaml": str(lower.clouds_yaml),
        "default_image": "isthmus-minimal",
        "settle_seconds": 20,
        **extra,
    }


def site_connection(lower: Running) -> Connection:
    """openstacksdk straight to the lower Isthmus (what an operator would use)."""
    config = OpenStackConfig(config_files=[str(lower.clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud="isthmus"))


def wait_idle(lower: Running, timeout: float = 30.0) -> None:
    """Until the lower Isthmus has no queued work (deleted objects really gone)."""
    token = site_connection(lower).auth_token
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        work = httpx.get(
            f"{lower.url}/isthmus/v1/work", headers={"X-Auth-Token": token}, timeout=10
        ).json()
        if work["total"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the site-mode Isthmus did not go idle: {work}")


def empty_site(driver: OpenStackDriver, lower: Running) -> None:
    """Delete every Isthmus object in the site, dependents first, and wait for it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = driver.inventory()
        if not left:
            break
        by_kind = {kind: [o for o in left if o.kind == kind] for kind in (*DELETE_ORDER, "network")}
        for kind in (*DELETE_ORDER, "network"):
            for observed in by_kind[kind]:
                try:
                    driver.delete(kind, observed.isthmus_id)
                except TemporaryError:
                    pass  # e.g. a network whose ports are still going: next round
        time.sleep(0.2)
    assert not driver.inventory(), "the site did not empty"
    wait_idle(lower)


class TestOpenStackDriver(DriverContract):
    @pytest.fixture
    def driver(self, lower: Running) -> Iterator[OpenStackDriver]:
        driver = OpenStackDriver("contract", driver_config(lower))
        empty_site(driver, lower)
        yield driver
        try:
            empty_site(driver, lower)
        finally:
            driver.close()


# -- what only an OpenStack site shows ------------------------------------------------------


@pytest.fixture
def site(lower: Running) -> Iterator[OpenStackDriver]:
    driver = OpenStackDriver("lower", driver_config(lower))
    empty_site(driver, lower)
    yield driver
    try:
        empty_site(driver, lower)
    finally:
        driver.close()


def test_objects_are_named_and_marked_with_their_isthmus_id(
    site: OpenStackDriver, lower: Running, tmp_path: Path
) -> None:
    topo = Topology(site)
    server = ServerSpec(
        isthmus_id=_id(),
        name="marked",
        port_ids=(topo.port.isthmus_id,),
        metadata=(("role", "web"),),
        key_name="mykey",
        public_key=PUBLIC_KEY,
    )
    site.ensure(server)
    volume = VolumeSpec(isthmus_id=_id(), name="data", size_gb=2)
    site.ensure(volume)
    conn = site_connection(lower)

    network = conn.network.find_network(f"isthmus-{topo.network.isthmus_id}")
    assert network is not None and network.description == "contract-net"
    assert f"isthmus_id={topo.network.isthmus_id}" in network.tags
    subnet = conn.network.find_subnet(f"isthmus-{topo.subnet.isthmus_id}")
    assert subnet.cidr == "10.77.0.0/24" and subnet.gateway_ip == "10.77.0.1"
    assert subnet.allocation_pools == [{"start": "10.77.0.254", "end": "10.77.0.254"}]
    port = conn.network.find_port(f"isthmus-{topo.port.isthmus_id}")
    assert port.mac_address == "fa:16:3e:00:00:01"
    assert [f["ip_address"] for f in port.fixed_ips] == ["10.77.0.10"]
    group = conn.network.find_security_group(f"isthmus-{topo.group.isthmus_id}")
    assert port.security_group_ids == [group.id]

    found = conn.compute.find_server(f"isthmus-{server.isthmus_id}")
    nova = conn.compute.get_server(found.id)
    assert nova.metadata["isthmus_id"] == server.isthmus_id
    assert nova.metadata["isthmus_name"] == "marked"
    assert nova.metadata["role"] == "web"
    # the smallest flavor that fits 1 vCPU / 512 MiB / 1 GiB
    assert conn.compute.get_flavor(nova.flavor.id).name == "m1.tiny"
    assert nova.key_name.startswith("isthmus-mykey-")
    cinder = conn.block_storage.find_volume(f"isthmus-{volume.isthmus_id}")
    assert cinder.metadata["isthmus_id"] == volume.isthmus_id and cinder.size == 2

    data = tmp_path / "img.raw"
    data.write_bytes(b"x" * 4096)
    image = ImageSpec(
        isthmus_id=_id(),
        name="img",
        size=4096,
        data_path=str(data),
        checksum=hashlib.md5(data.read_bytes(), usedforsecurity=False).hexdigest(),
    )
    site.ensure(image)
    glance = conn.image.find_image(f"isthmus-{image.isthmus_id}")
    assert glance.properties["isthmus_id"] == image.isthmus_id
    assert glance.visibility == "private" and glance.status == "active"


def test_foreign_objects_are_never_listed_or_touched(site: OpenStackDriver, lower: Running) -> None:
    conn = site_connection(lower)
    foreign = conn.network.create_network(name="someone-elses")
    lookalike = conn.network.create_network(name="isthmus-not-a-uuid")
    try:
        mine = NetworkSpec(isthmus_id=_id(), name="mine")
        site.ensure(mine)
        listed = {o.site_id for o in site.inventory()}
        assert foreign.id not in listed and lookalike.id not in listed
        # the site's own default image is named isthmus-minimal: not ours either
        assert all(o.kind != "image" for o in site.inventory())
        site.delete("network", mine.isthmus_id)
        assert conn.network.get_network(foreign.id).name == "someone-elses"
    finally:
        conn.network.delete_network(foreign)
        conn.network.delete_network(lookalike)


def test_security_group_rules_are_made_equal_to_the_spec(
    site: OpenStackDriver, lower: Running
) -> None:
    conn = site_connection(lower)
    group_id = _id()
    spec = SecurityGroupSpec(
        isthmus_id=group_id,
        name="web",
        rules=(
            SecurityRule(direction="egress"),
            SecurityRule(direction="ingress", protocol="tcp", port_range_min=80, port_range_max=80),
            SecurityRule(direction="ingress", remote_group_id=group_id),  # members talk freely
            SecurityRule(direction="ingress", remote_group_id=_id()),  # a group not in the site
        ),
    )
    observed = site.ensure(spec)
    assert len(observed.details["skipped_rules"]) == 1

    def rules() -> set[tuple[object, ...]]:
        return {
            (r.direction, r.ether_type, r.protocol, r.port_range_min, r.remote_group_id)
            for r in conn.network.security_group_rules(security_group_id=observed.site_id)
        }

    wanted = {
        ("egress", "IPv4", None, None, None),
        ("ingress", "IPv4", "tcp", 80, None),
        ("ingress", "IPv4", None, None, observed.site_id),
    }
    assert rules() == wanted  # Neutron's default IPv6 egress rule went
    conn.network.create_security_group_rule(
        security_group_id=observed.site_id, direction="ingress", protocol="udp", ethertype="IPv4"
    )
    site.ensure(spec)
    assert rules() == wanted


def test_server_reboot_is_asked_once_per_increment(site: OpenStackDriver, lower: Running) -> None:
    topo = Topology(site)
    server = ServerSpec(isthmus_id=_id(), name="vm", port_ids=(topo.port.isthmus_id,))
    site.ensure(server)
    wait_status(site, "server", server.isthmus_id, "ACTIVE")
    again = ServerSpec(**{**server.__dict__, "reboot_count": 1})
    assert site.ensure(again).status == "REBOOT"
    wait_status(site, "server", server.isthmus_id, "ACTIVE")
    assert site.ensure(again).status == "ACTIVE"  # already done: not rebooted again
    nova = site_connection(lower).compute.find_server(f"isthmus-{server.isthmus_id}")
    assert site_connection(lower).compute.get_server(nova.id).metadata["isthmus_reboots"] == "1"


def test_missing_prerequisites_are_retryable_and_bad_input_permanent(
    site: OpenStackDriver,
) -> None:
    with pytest.raises(TemporaryError, match="not yet present"):
        site.ensure(ServerSpec(isthmus_id=_id(), name="vm", image_id=_id()))
    with pytest.raises(PermanentError, match="No valid host"):
        site.ensure(ServerSpec(isthmus_id=_id(), name="big", ram_mb=10**7))
    mapped = OpenStackDriver("lower", {**site_config(site), "flavor_map": {"m1.x": "nope"}})
    with pytest.raises(PermanentError, match="no flavor 'nope'"):
        mapped.ensure(ServerSpec(isthmus_id=_id(), name="vm", flavor_name="m1.x"))
    with pytest.raises(PermanentError, match="no data"):
        site.ensure(ImageSpec(isthmus_id=_id(), name="i", data_path="/nonexistent"))


def test_check_reports_the_sites_limits_and_degrades_when_a_service_fails(
    site: OpenStackDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = site.check()
    assert report.health == "up", report.message
    # the site-mode Isthmus's default project quotas
    assert report.capacity == {"vcpus": 400, "ram_mb": 1024 * 1024, "disk_gb": 10000}
    assert report.usage["vcpus"] == 0 and report.usage["servers"] == 0
    capped = OpenStackDriver("lower", {**site_config(site), "vcpus": 16})
    try:
        assert capped.check().capacity["vcpus"] == 16
    finally:
        capped.close()

    def image_service_down(**query: object) -> object:
        error = sdk.HttpException(message="Service Unavailable", details="glance is down")
        error.status_code = 503
        raise error

    monkeypatch.setattr(site.connection().image, "images", image_service_down)
    report = site.check()
    assert report.health == "degraded"
    assert "image" in report.message and "glance is down" in report.message
    assert report.capacity["vcpus"] == 400


def site_config(driver: OpenStackDriver) -> dict[str, object]:
    return {
        "cloud": driver.cloud,
        "clouds_yaml": driver.clouds_yaml,
        "default_image": driver.default_image,
    }


def test_unreachable_or_misconfigured_sites_are_unavailable(lower: Running, tmp_path: Path) -> None:
    text = lower.clouds_yaml.read_text()
    dead = tmp_path / "dead.yaml"
    dead.write_text(text.replace(lower.url, f"http://127.0.0.1:{free_port()}"))
    wrong = tmp_path / "wrong.yaml"
    clouds = yaml.safe_load(text)
    clouds["clouds"]["isthmus"]["auth"]["password"] = "not-the-password"
    wrong.write_text(yaml.safe_dump(clouds))
    for config, match in (
        ({"cloud": "isthmus", "clouds_yaml": str(dead)}, "cannot be reached"),
        ({"cloud": "isthmus", "clouds_yaml": str(wrong)}, "authentication failed"),
        ({"cloud": "nosuchcloud", "clouds_yaml": str(lower.clouds_yaml)}, "configuration"),
        ({}, "names no `cloud`"),
    ):
        driver = OpenStackDriver("broken", config)
        try:
            with pytest.raises(SiteUnavailable, match=match) as caught:
                driver.check()
            assert "not-the-password" not in str(caught.value)
            with pytest.raises(SiteUnavailable):
                driver.ensure(NetworkSpec(isthmus_id=_id(), name="n"))
        finally:
            driver.close()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, SiteUnavailable),
        (503, SiteUnavailable),
        (401, SiteUnavailable),
        (409, TemporaryError),
        (429, TemporaryError),
        (400, PermanentError),
        (403, PermanentError),
        (413, PermanentError),
    ],
)
def test_http_errors_map_to_site_errors(status: int, error: type) -> None:
    mapped = map_http("s", "create (port)", status, "the site's words", None)
    assert type(mapped) is error
    assert "the site's words" in str(mapped)


def test_quota_is_permanent_whatever_the_status_and_busy_400s_are_retryable() -> None:
    quota = "Quota exceeded for resources: ['port']."
    assert isinstance(map_http("s", "create (port)", 409, quota, None), PermanentError)
    busy = "Invalid volume: Volume status must be available, currently attaching."
    assert isinstance(map_http("s", "delete (volume)", 400, busy, None), TemporaryError)


def test_404_is_permanent_on_create_and_retryable_otherwise() -> None:
    assert isinstance(map_http("s", "x", 404, "gone", None, create=True), PermanentError)
    assert isinstance(map_http("s", "x", 404, "gone", None), TemporaryError)


def test_single_address_pool_is_the_last_usable_address() -> None:
    assert single_address_pool("10.0.0.0/24", "10.0.0.1") == [
        {"start": "10.0.0.254", "end": "10.0.0.254"}
    ]
    assert single_address_pool("10.0.0.0/24", "10.0.0.254") == [
        {"start": "10.0.0.253", "end": "10.0.0.253"}
    ]
    assert single_address_pool("fd00::/64", None)[0]["start"] == "fd00::ffff:ffff:ffff:ffff"
