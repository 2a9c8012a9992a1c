"""The contract suite against the embedded `local` driver, plus what only an
embedded site does (being taken down and brought back)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.errors import SiteUnavailable
from isthmus.sites.base import NetworkSpec
from isthmus.sites.local import LocalDriver
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
