"""model/placement.Spread: server groups and host hints with a site as the host,
without HTTP or a store."""

from __future__ import annotations

import pytest

from isthmus.errors import BadRequest, Conflict
from isthmus.model.placement import Candidate, NoValidHost, Spread, choose_site

NEED = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1}
ROOMY = {"vcpus": 16, "ram_mb": 32768, "disk_gb": 400}


def sites(*names: str, full: str = "") -> list[Candidate]:
    return [Candidate(n, True, "up", dict(ROOMY), dict(ROOMY) if n == full else {}) for n in names]


ABC = sites("a", "b", "c")


def test_affinity_follows_the_members_and_the_first_goes_anywhere() -> None:
    assert choose_site(ABC, NEED, None, Spread("affinity")) == "a"
    assert choose_site(ABC, NEED, None, Spread("affinity", {"c": 2})) == "c"
    assert choose_site(ABC, NEED, "c", Spread("affinity", {"c": 1})) == "c"
    with pytest.raises(NoValidHost, match="No valid host was found"):
        choose_site(ABC, NEED, "b", Spread("affinity", {"c": 1}))
    with pytest.raises(NoValidHost):  # the members' site is full
        choose_site(sites("a", "b", "c", full="c"), NEED, None, Spread("affinity", {"c": 1}))


def test_anti_affinity_counts_members_per_site_up_to_max_per_site() -> None:
    assert choose_site(ABC, NEED, None, Spread("anti-affinity", {"a": 1, "b": 1})) == "c"
    with pytest.raises(NoValidHost):
        choose_site(ABC, NEED, None, Spread("anti-affinity", {"a": 1, "b": 1, "c": 1}))
    two = Spread("anti-affinity", {"a": 2, "b": 1, "c": 2}, max_per_site=2)
    assert choose_site(ABC, NEED, None, two) == "b"
    with pytest.raises(NoValidHost):
        choose_site(ABC, NEED, "a", Spread("anti-affinity", {"a": 1}))


def test_soft_policies_rank_but_never_refuse() -> None:
    assert choose_site(ABC, NEED, None, Spread("soft-affinity", {"b": 1})) == "b"
    assert choose_site(ABC, NEED, None, Spread("soft-anti-affinity", {"a": 1, "b": 2})) == "c"
    full = Spread("soft-anti-affinity", {"a": 1, "b": 1, "c": 1})
    assert choose_site(ABC, NEED, None, full) == "a"
    assert choose_site(ABC, NEED, "b", Spread("soft-affinity", {"c": 3})) == "b"


def test_host_hints_and_the_order_of_refusals() -> None:
    assert choose_site(ABC, NEED, None, Spread(same_host=frozenset({"b"}))) == "b"
    assert choose_site(ABC, NEED, None, Spread(different_host=frozenset({"a", "b"}))) == "c"
    with pytest.raises(NoValidHost):
        choose_site(ABC, NEED, None, Spread(same_host=frozenset()))
    # an unknown zone stays 400 and no room at all stays the capacity 409
    with pytest.raises(BadRequest):
        choose_site(ABC, NEED, "z", Spread("affinity", {"a": 1}))
    full = [Candidate(n, True, "up", dict(ROOMY), dict(ROOMY)) for n in "abc"]
    with pytest.raises(Conflict) as refused:
        choose_site(full, NEED, None, Spread("anti-affinity"))
    assert not isinstance(refused.value, NoValidHost)
