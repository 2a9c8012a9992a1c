"""model/placement.py without HTTP or a store: which site a server or a volume goes to."""

from __future__ import annotations

import pytest

from isthmus.errors import BadRequest, Conflict
from isthmus.model.placement import Candidate, choose_site, choose_volume_site, pinned_site

NEED = {"vcpus": 2, "ram_mb": 2048, "disk_gb": 20}
ROOMY = {"vcpus": 16, "ram_mb": 32768, "disk_gb": 400}


def site(
    name: str,
    capacity: dict[str, int] | None = None,
    allocated: dict[str, int] | None = None,
    *,
    enabled: bool = True,
    health: str = "up",
) -> Candidate:
    return Candidate(name, enabled, health, dict(capacity or ROOMY), dict(allocated or {}))


def test_free_and_fits_count_what_was_promised() -> None:
    candidate = site("a", {"vcpus": 4, "ram_mb": 4096, "disk_gb": 40}, {"vcpus": 2, "ram_mb": 2048})
    assert candidate.free("vcpus") == 2 and candidate.free("disk_gb") == 40
    assert candidate.fits(NEED)  # exactly full is still a fit
    assert not candidate.fits({**NEED, "vcpus": 3})
    assert not candidate.fits({**NEED, "disk_gb": 41})
    assert candidate.fits({})  # nothing asked, nothing needed


def test_free_fraction_is_the_tightest_dimension_after_the_server() -> None:
    candidate = site("a", {"vcpus": 10, "ram_mb": 10000, "disk_gb": 100}, {"vcpus": 5})
    # vcpus: (5 - 2) / 10 = 0.3; ram: (10000 - 2048) / 10000; disk: 0.8
    assert candidate.free_fraction(NEED) == pytest.approx(0.3)
    # a site that reports no capacity in a dimension has no room at all
    assert site("b", {"vcpus": 10, "ram_mb": 0, "disk_gb": 100}).free_fraction(NEED) == 0.0


def test_without_a_zone_the_site_with_most_room_wins() -> None:
    busy = site("a", allocated={"vcpus": 12})
    idle = site("b")
    half = site("c", allocated={"vcpus": 8})
    assert choose_site([busy, idle, half], NEED, None) == "b"
    assert choose_site([busy, half], NEED, None) == "c"


def test_ties_go_to_the_first_name() -> None:
    assert choose_site([site("site-c"), site("site-a"), site("site-b")], NEED, None) == "site-a"


def test_down_disabled_and_full_sites_are_not_chosen() -> None:
    sites = [
        site("a", health="down"),
        site("b", enabled=False),
        site("c", allocated=ROOMY),  # full
        site("d", allocated={"vcpus": 14}),  # tight, but fits
    ]
    assert choose_site(sites, NEED, None) == "d"
    with pytest.raises(Conflict, match="No valid host was found") as none:
        choose_site(sites[:3], NEED, None)
    assert "2 vCPU, 2048 MiB RAM, 20 GiB disk" in none.value.message


def test_a_pinned_zone_is_the_users_choice_capacity_and_health_aside() -> None:
    full_and_down = site("a", allocated=ROOMY, health="down")
    assert choose_site([full_and_down, site("b")], NEED, "a") == "a"
    assert pinned_site([full_and_down], "a") == "a"


def test_a_pinned_zone_must_exist_and_be_enabled() -> None:
    sites = [site("b"), site("a"), site("c", enabled=False)]
    with pytest.raises(BadRequest, match="c is disabled"):
        choose_site(sites, NEED, "c")
    with pytest.raises(BadRequest) as unknown:
        pinned_site(sites, "nowhere")
    assert unknown.value.message.endswith("nowhere. Known zones: a, b, c.")
    with pytest.raises(BadRequest, match="Known zones: none"):
        pinned_site([], "nowhere")


def test_a_volume_goes_where_most_disk_is_free_after_volumes_and_servers() -> None:
    a = site("a", {"disk_gb": 100}, {"disk_gb": 10})
    b = site("b", {"disk_gb": 100})
    c = site("c", {"disk_gb": 500}, health="down")
    assert choose_volume_site([a, b, c], None, {}) == "b"
    assert choose_volume_site([a, b, c], None, {"b": 20}) == "a"  # 90 free against 80
    assert choose_volume_site([a, b], None, {"b": 10}) == "a"  # a tie: the first one
    with pytest.raises(Conflict, match="no availability zone is up"):
        choose_volume_site([c, site("d", enabled=False)], None, {})


def test_a_volumes_zone_must_name_an_enabled_site_even_if_down() -> None:
    sites = [site("a", health="down"), site("b", enabled=False)]
    assert choose_volume_site(sites, "a", {}) == "a"
    with pytest.raises(BadRequest) as refused:
        choose_volume_site(sites, "b", {})
    assert refused.value.message == "Availability zone 'b' is invalid. Known zones: a."
