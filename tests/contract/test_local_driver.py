"""The contract suite against the embedded `local` driver, plus what only an
embedded site does (being taken down and brought back)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.errors import SiteUnavailable
from isthmus.model.specs import ImageSpec, NetworkSpec
from isthmus.sites import progress
from isthmus.sites.local import LocalDriver
from isthmus.sites.local.images import CHUNK, file_md5
from tests.contract.driver_contract import DriverContract


class TestLocalDriver(DriverContract):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> Iterator[LocalDriver]:
        driver = LocalDriver("contract", tmp_path / "site", {"vcpus": 8, "boot_seconds": 0.3})
        yield driver
        driver.close()


def test_a_down_site_refuses_every_call_and_keeps_its_state(tmp_path: Path) -> None:
    driver = LocalDriver("s", tmp_path / "site")
    network = NetworkSpec(isthmus_id="n-1", name="n")
    driver.ensure(network)
    driver.set_down(True)
    for call in (
        driver.check,
        driver.inventory,
        lambda: driver.ensure(network),
        lambda: driver.delete("network", "n-1"),
        lambda: driver.observe("network", "n-1"),
    ):
        with pytest.raises(SiteUnavailable):
            call()
    # a second process (another driver object on the same directory) sees it down too
    assert LocalDriver("s", tmp_path / "site").is_down
    driver.set_down(False)
    observed = driver.observe("network", "n-1")
    assert observed is not None and observed.status == "ACTIVE"


def test_copy_rate_paces_image_copies_and_keeps_sparse_images_sparse(tmp_path: Path) -> None:
    """`copy_rate` (bytes/s) is the embedded site's simulated WAN bandwidth: a copy
    reports its progress chunk by chunk as it goes, and runs of zeros stay holes."""
    size = 64 * 1024 * 1024
    path = tmp_path / "sparse.raw"
    with path.open("wb") as out:  # a sparse 64 MiB image: data at the start and the end
        out.write(b"boot sector")
        out.seek(size - 4)
        out.write(b"tail")
    checksum = file_md5(path)
    driver = LocalDriver("paced", tmp_path / "site", {"copy_rate": 32 * 1024 * 1024})
    spec = ImageSpec(
        isthmus_id="img-1", name="sparse", size=size, data_path=str(path), checksum=checksum
    )
    reports: list[tuple[int, int, float]] = []
    with progress.reporting(lambda done, total: reports.append((done, total, time.monotonic()))):
        assert driver.ensure(spec).status == "active"
    assert [r[:2] for r in reports] == [(n * CHUNK, size) for n in range(0, size // CHUNK + 1)]
    # paced: the last chunk came no earlier than size / copy_rate after the first report
    assert reports[-1][2] - reports[0][2] >= size / (32 * 1024 * 1024) - 0.05
    copy = driver.state.find("image", "img-1")
    assert copy is not None
    target = tmp_path / "site" / "images" / copy.site_id
    assert target.stat().st_size == size and file_md5(target) == checksum
    assert target.stat().st_blocks * 512 < size // 4, "the holes were written out"
    driver.close()
