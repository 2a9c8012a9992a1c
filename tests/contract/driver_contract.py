"""The driver contract suite (sites/base.py), run against every driver.

A driver's test module subclasses `DriverContract` and provides a `driver`
fixture (a fresh, empty, reachable site) and `make_image_file` support through
`tmp_path`. Every later driver (openstack, aws) must pass the same tests.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from isthmus.errors import PermanentError, SiteError, TemporaryError
from isthmus.model.specs import (
    FixedIp,
    ImageSpec,
    NetworkSpec,
    PortSpec,
    SecurityGroupSpec,
    SecurityRule,
    ServerSpec,
    SnapshotSpec,
    SubnetSpec,
    VolumeSpec,
)
from isthmus.sites import progress
from isthmus.sites.base import SiteDriver
from tests.waiting import wait_for


def _id() -> str:
    return str(uuid.uuid4())


def wait_status(
    driver: SiteDriver, kind: str, isthmus_id: str, wanted: str, timeout: float = 60.0
) -> str:

    def reached() -> str:
        observed = driver.observe(kind, isthmus_id)
        status = observed.status if observed else "missing"
        assert status == wanted, f"{kind} {isthmus_id} stayed {status}, wanted {wanted}"
        return status

    what = f"{kind} {isthmus_id} to be {wanted}"
    return wait_for(reached, timeout=timeout, interval=0.2, what=what, ignoring=(AssertionError,))


class Topology:
    """A network, subnet, security group and port made present in the site."""

    def __init__(self, driver: SiteDriver) -> None:
        self.network = NetworkSpec(isthmus_id=_id(), name="contract-net")
        self.subnet = SubnetSpec(
            isthmus_id=_id(),
            name="contract-sub",
            network_id=self.network.isthmus_id,
            cidr="10.77.0.0/24",
            gateway_ip="10.77.0.1",
        )
        self.group = SecurityGroupSpec(
            isthmus_id=_id(),
            name="contract-sg",
            rules=(
                SecurityRule(direction="egress"),
                SecurityRule(
                    direction="ingress",
                    protocol="tcp",
                    port_range_min=22,
                    port_range_max=22,
                    remote_ip_prefix="0.0.0.0/0",
                ),
            ),
        )
        self.port = PortSpec(
            isthmus_id=_id(),
            name="contract-port",
            network_id=self.network.isthmus_id,
            mac_address="fa:16:3e:00:00:01",
            fixed_ips=(FixedIp(self.subnet.isthmus_id, "10.77.0.10"),),
            security_group_ids=(self.group.isthmus_id,),
        )
        for spec in (self.network, self.subnet, self.group, self.port):
            driver.ensure(spec)


class DriverContract:
    """Tests every driver must pass. Subclasses provide the `driver` fixture."""

    def count(self, driver: SiteDriver, kind: str, isthmus_id: str) -> int:
        return sum(1 for o in driver.inventory() if o.kind == kind and o.isthmus_id == isthmus_id)

    def test_check_reports_health_and_capacity(self, driver: SiteDriver) -> None:
        report = driver.check()
        assert report.health in ("up", "degraded")
        assert report.capacity.get("vcpus", 0) > 0

    def test_ensure_is_idempotent(self, driver: SiteDriver) -> None:
        spec = NetworkSpec(isthmus_id=_id(), name="twice")
        first = driver.ensure(spec)
        second = driver.ensure(spec)
        assert first.site_id == second.site_id
        assert self.count(driver, "network", spec.isthmus_id) == 1

    def test_ensure_updates_towards_spec(self, driver: SiteDriver) -> None:
        spec = NetworkSpec(isthmus_id=_id(), name="before")
        driver.ensure(spec)
        driver.ensure(NetworkSpec(isthmus_id=spec.isthmus_id, name="after"))
        assert self.count(driver, "network", spec.isthmus_id) == 1

    def test_observe_missing_is_none_and_delete_missing_succeeds(self, driver: SiteDriver) -> None:
        missing = _id()
        for kind in ("network", "subnet", "port", "server", "volume", "image"):
            assert driver.observe(kind, missing) is None
            driver.delete(kind, missing)

    def test_delete_removes_and_is_repeatable(self, driver: SiteDriver) -> None:
        spec = NetworkSpec(isthmus_id=_id(), name="gone")
        driver.ensure(spec)
        driver.delete("network", spec.isthmus_id)
        driver.delete("network", spec.isthmus_id)
        assert driver.observe("network", spec.isthmus_id) is None
        assert self.count(driver, "network", spec.isthmus_id) == 0

    def test_port_before_its_network_is_retryable(self, driver: SiteDriver) -> None:
        port = PortSpec(
            isthmus_id=_id(), name="early", network_id=_id(), mac_address="fa:16:3e:00:00:02"
        )
        with pytest.raises(TemporaryError):
            driver.ensure(port)
        assert self.count(driver, "port", port.isthmus_id) == 0

    def test_server_boots_on_its_port_and_powers_off_and_on(self, driver: SiteDriver) -> None:
        topo = Topology(driver)
        server = ServerSpec(isthmus_id=_id(), name="vm", port_ids=(topo.port.isthmus_id,))
        observed = driver.ensure(server)
        assert observed.status in ("BUILD", "ACTIVE")
        wait_status(driver, "server", server.isthmus_id, "ACTIVE")
        driver.ensure(ServerSpec(**{**server.__dict__, "power_on": False}))
        wait_status(driver, "server", server.isthmus_id, "SHUTOFF")
        driver.ensure(server)
        wait_status(driver, "server", server.isthmus_id, "ACTIVE")
        assert self.count(driver, "server", server.isthmus_id) == 1
        driver.delete("server", server.isthmus_id)
        assert driver.observe("server", server.isthmus_id) is None

    def drive(self, driver: SiteDriver, spec: ServerSpec, wanted: str) -> None:
        """Ensure `spec` until the site shows `wanted` (the engine calls `ensure`
        again while a server's status is transient: a change may take steps)."""

        def reached() -> str:
            status = driver.ensure(spec).status
            assert status == wanted, f"server {spec.isthmus_id} is {status}, wanted {wanted}"
            return status

        what = f"server {spec.isthmus_id} to be {wanted}"
        wait_for(reached, timeout=120, interval=0.5, what=what, ignoring=(AssertionError,))

    def test_server_pauses_suspends_and_stops_as_its_spec_says(self, driver: SiteDriver) -> None:
        topo = Topology(driver)
        server = ServerSpec(isthmus_id=_id(), name="vm", port_ids=(topo.port.isthmus_id,))
        driver.ensure(server)
        wait_status(driver, "server", server.isthmus_id, "ACTIVE")
        site_id = driver.observe("server", server.isthmus_id).site_id  # type: ignore[union-attr]
        for run_state, power_on, wanted in (
            ("paused", True, "PAUSED"),
            ("active", True, "ACTIVE"),
            ("suspended", True, "SUSPENDED"),
            ("suspended", False, "SHUTOFF"),  # a suspended server is resumed, then stopped
            ("rescued", True, "RESCUE"),  # a stopped one started, then rescued
            ("active", True, "ACTIVE"),
        ):
            spec = ServerSpec(**{**server.__dict__, "run_state": run_state, "power_on": power_on})
            self.drive(driver, spec, wanted)
        assert driver.observe("server", server.isthmus_id).site_id == site_id  # type: ignore[union-attr]
        assert self.count(driver, "server", server.isthmus_id) == 1
        driver.delete("server", server.isthmus_id)

    def test_server_rebuilds_in_place_and_gets_interfaces(self, driver: SiteDriver) -> None:
        topo = Topology(driver)
        server = ServerSpec(isthmus_id=_id(), name="vm", port_ids=(topo.port.isthmus_id,))
        driver.ensure(server)
        wait_status(driver, "server", server.isthmus_id, "ACTIVE")
        site_id = driver.observe("server", server.isthmus_id).site_id  # type: ignore[union-attr]
        rebuilt = ServerSpec(**{**server.__dict__, "rebuild_count": 1})
        self.drive(driver, rebuilt, "ACTIVE")
        assert driver.observe("server", server.isthmus_id).site_id == site_id  # type: ignore[union-attr]
        second = PortSpec(
            isthmus_id=_id(),
            name="contract-port-2",
            network_id=topo.network.isthmus_id,
            mac_address="fa:16:3e:00:00:03",
            fixed_ips=(FixedIp(topo.subnet.isthmus_id, "10.77.0.11"),),
            security_group_ids=(topo.group.isthmus_id,),
        )
        driver.ensure(second)
        both = ServerSpec(
            **{**rebuilt.__dict__, "port_ids": (topo.port.isthmus_id, second.isthmus_id)}
        )
        self.drive(driver, both, "ACTIVE")
        log = driver.console_output(server.isthmus_id, None)
        assert isinstance(log, str)
        assert driver.console_output(server.isthmus_id, 0) == ""
        driver.delete("server", server.isthmus_id)
        with pytest.raises(PermanentError):
            driver.console_output(server.isthmus_id, None)

    def test_image_of_a_server_is_made_and_written_to_isthmus(
        self, driver: SiteDriver, tmp_path: Path
    ) -> None:
        topo = Topology(driver)
        server = ServerSpec(isthmus_id=_id(), name="vm", port_ids=(topo.port.isthmus_id,))
        driver.ensure(server)
        wait_status(driver, "server", server.isthmus_id, "ACTIVE")
        target = tmp_path / "snapshot"
        image = ImageSpec(
            isthmus_id=_id(), name="snap", data_path=str(target), snapshot_of=server.isthmus_id
        )
        seen: list[dict[str, object]] = []

        def made() -> str:
            observed = driver.ensure(image)
            assert observed.status == "active", f"image is {observed.status}"
            seen.append(dict(observed.details["snapshot"]))
            return observed.status

        wait_for(made, timeout=120, interval=0.5, what="the image", ignoring=(AssertionError,))
        data = target.read_bytes()
        assert seen[-1]["size"] == len(data)
        assert seen[-1]["checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
        assert self.count(driver, "image", image.isthmus_id) == 1
        driver.delete("image", image.isthmus_id)
        driver.delete("server", server.isthmus_id)
        missing = ImageSpec(isthmus_id=_id(), name="x", data_path=str(target), snapshot_of=_id())
        with pytest.raises(PermanentError):
            driver.ensure(missing)

    def test_server_larger_than_the_site_is_permanent(self, driver: SiteDriver) -> None:
        huge = ServerSpec(isthmus_id=_id(), name="huge", vcpus=10**6)
        with pytest.raises(PermanentError, match="No valid host"):
            driver.ensure(huge)
        assert self.count(driver, "server", huge.isthmus_id) == 0

    def test_network_with_ports_leaves_after_them(self, driver: SiteDriver) -> None:
        topo = Topology(driver)
        with pytest.raises(SiteError):
            driver.delete("network", topo.network.isthmus_id)
        driver.delete("port", topo.port.isthmus_id)
        driver.delete("subnet", topo.subnet.isthmus_id)
        driver.delete("network", topo.network.isthmus_id)
        assert driver.observe("network", topo.network.isthmus_id) is None

    def test_volume_attach_detach_and_snapshot(self, driver: SiteDriver) -> None:
        topo = Topology(driver)
        server = ServerSpec(isthmus_id=_id(), name="vm", port_ids=(topo.port.isthmus_id,))
        driver.ensure(server)
        wait_status(driver, "server", server.isthmus_id, "ACTIVE")
        volume = VolumeSpec(isthmus_id=_id(), name="vol", size_gb=1)
        assert driver.ensure(volume).status == "available"
        attached = VolumeSpec(
            **{**volume.__dict__, "attached_server_id": server.isthmus_id, "device": "/dev/vdb"}
        )
        assert driver.ensure(attached).status == "in-use"
        assert driver.ensure(volume).status == "available"
        snapshot = SnapshotSpec(isthmus_id=_id(), name="snap", volume_id=volume.isthmus_id)
        assert driver.ensure(snapshot).status == "available"
        driver.delete("snapshot", snapshot.isthmus_id)
        driver.delete("volume", volume.isthmus_id)
        assert driver.observe("volume", volume.isthmus_id) is None

    def test_volumes_from_a_snapshot_and_a_volume(self, driver: SiteDriver) -> None:
        source = VolumeSpec(isthmus_id=_id(), name="source", size_gb=1)
        driver.ensure(source)
        wait_status(driver, "volume", source.isthmus_id, "available")
        snapshot = SnapshotSpec(isthmus_id=_id(), name="snap", volume_id=source.isthmus_id)
        driver.ensure(snapshot)
        wait_status(driver, "snapshot", snapshot.isthmus_id, "available")
        made = [
            VolumeSpec(
                isthmus_id=_id(), name="from-snap", size_gb=1, snapshot_id=snapshot.isthmus_id
            ),
            VolumeSpec(isthmus_id=_id(), name="clone", size_gb=2, source_volid=source.isthmus_id),
        ]
        for spec in made:
            driver.ensure(spec)
        for spec in made:
            wait_status(driver, "volume", spec.isthmus_id, "available", timeout=180)
        for spec in made:
            driver.delete("volume", spec.isthmus_id)
        driver.delete("snapshot", snapshot.isthmus_id)
        driver.delete("volume", source.isthmus_id)
        for spec in made:
            assert driver.observe("volume", spec.isthmus_id) is None

    def test_volume_from_an_image(self, driver: SiteDriver, tmp_path: Path) -> None:
        data = b"contract volume image\n" * 64
        path = tmp_path / "volume-image.raw"
        path.write_bytes(data)
        image = ImageSpec(
            isthmus_id=_id(),
            name="volimg",
            size=len(data),
            data_path=str(path),
            checksum=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )
        assert driver.ensure(image).status == "active"
        volume = VolumeSpec(
            isthmus_id=_id(), name="from-image", size_gb=1, image_id=image.isthmus_id
        )
        driver.ensure(volume)
        wait_status(driver, "volume", volume.isthmus_id, "available", timeout=180)
        driver.delete("volume", volume.isthmus_id)
        driver.delete("image", image.isthmus_id)
        assert driver.observe("volume", volume.isthmus_id) is None

    def test_server_boots_from_its_root_volume(self, driver: SiteDriver) -> None:
        topo = Topology(driver)
        server_id = _id()
        root = VolumeSpec(isthmus_id=_id(), name="root", size_gb=1, root_of=server_id)
        # attaching until the site attaches it, when it makes the server (`observe`
        # shows the site's own status: available)
        wait_for(
            lambda: driver.ensure(root).status == "attaching",
            timeout=120,
            interval=0.5,
            what=f"root volume {root.isthmus_id} to be made (attaching)",
        )
        server = ServerSpec(
            isthmus_id=server_id,
            name="bfv",
            port_ids=(topo.port.isthmus_id,),
            root_volume_id=root.isthmus_id,
        )
        driver.ensure(server)
        wait_status(driver, "server", server_id, "ACTIVE", timeout=180)
        assert driver.ensure(root).status in ("attaching", "in-use")
        wait_status(driver, "volume", root.isthmus_id, "in-use", timeout=120)
        driver.delete("server", server_id)
        wait_for(
            lambda: driver.observe("server", server_id) is None,
            timeout=120,
            interval=0.5,
            what=f"server {server_id} to leave the site",
        )
        kept = VolumeSpec(isthmus_id=root.isthmus_id, name="root", size_gb=1)
        # an ordinary volume once its server let it go (retryable until the site did)
        wait_for(
            lambda: driver.ensure(kept).status == "available",
            timeout=120,
            interval=0.5,
            what=f"volume {root.isthmus_id} to be let go by its deleted server",
            ignoring=(TemporaryError,),
        )
        driver.delete("volume", root.isthmus_id)

    def test_image_is_copied_and_checked(self, driver: SiteDriver, tmp_path: Path) -> None:
        data = b"contract image\n" * 100
        path = tmp_path / "image.raw"
        path.write_bytes(data)
        good = ImageSpec(
            isthmus_id=_id(),
            name="img",
            size=len(data),
            data_path=str(path),
            checksum=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )
        assert driver.ensure(good).status == "active"
        bad = ImageSpec(
            isthmus_id=_id(), name="bad", size=len(data), data_path=str(path), checksum="0" * 32
        )
        with pytest.raises(TemporaryError, match="checksum"):
            driver.ensure(bad)
        driver.delete("image", good.isthmus_id)
        driver.delete("image", bad.isthmus_id)
        assert driver.observe("image", good.isthmus_id) is None

    def test_image_copy_reports_its_progress(self, driver: SiteDriver, tmp_path: Path) -> None:
        """sites/base.py: a copy reports (bytes_done, bytes_total) from the start to
        the last byte through the reporter installed around `ensure`."""
        data = b"".join(bytes([i]) * 65536 for i in range(1, 49)) + b"tail"  # 3 MiB + 4
        path = tmp_path / "progress.raw"
        path.write_bytes(data)
        spec = ImageSpec(
            isthmus_id=_id(),
            name="progress",
            size=len(data),
            data_path=str(path),
            checksum=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )
        reports: list[tuple[int, int]] = []
        with progress.reporting(lambda done, total: reports.append((done, total))):
            assert driver.ensure(spec).status == "active"
        assert reports[0] == (0, len(data)) and reports[-1] == (len(data), len(data))
        assert {total for _, total in reports} == {len(data)}
        done = [d for d, _ in reports]
        assert done == sorted(done), "progress went backwards"
        assert any(0 < d < len(data) for d in done), reports
        reports.clear()
        with progress.reporting(lambda done, total: reports.append((done, total))):
            assert driver.ensure(spec).status == "active"
        assert reports == []  # an image already in the site is not copied again
        driver.delete("image", spec.isthmus_id)

    def test_inventory_lists_what_isthmus_made(self, driver: SiteDriver) -> None:
        topo = Topology(driver)
        tags = {(o.kind, o.isthmus_id) for o in driver.inventory()}
        assert ("network", topo.network.isthmus_id) in tags
        assert ("port", topo.port.isthmus_id) in tags

    def test_foreign_leaves_out_what_isthmus_made(self, driver: SiteDriver) -> None:
        Topology(driver)
        ours = {o.site_id for o in driver.inventory()}
        assert ours and not ours & {o.site_id for o in driver.foreign()}
