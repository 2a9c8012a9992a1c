"""store/quotas.py without HTTP: limits per project, usage counted from intent, and
`check` raising OverQuota before anything passes a limit."""

from __future__ import annotations

import pytest

from isthmus.errors import BadRequest, OverQuota
from isthmus.store import quotas, repo
from isthmus.store.db import Database


def _server(db: Database, project: str, vcpus: int = 1, ram_mb: int = 512) -> str:
    with db.session() as session:
        spec = {"vcpus": vcpus, "ram_mb": ram_mb, "disk_gb": 1}
        return repo.add(session, "server", project_id=project, status="BUILD", spec=spec).id


def test_limits_default_and_can_be_set_per_project(db: Database) -> None:
    with db.session() as session:
        assert quotas.limits(session, "p1") == quotas.DEFAULTS
        changed = quotas.set_limits(session, "p1", {"instances": 3, "cores": -1})
        assert changed == {**quotas.DEFAULTS, "instances": 3, "cores": -1}
        quotas.set_limits(session, "p1", {"instances": 4})  # an existing row is updated
    with db.read() as session:
        assert quotas.limits(session, "p1")["instances"] == 4
        assert quotas.limits(session, "p2") == quotas.DEFAULTS  # per project


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bananas": 1}, "Unknown quota resource 'bananas'"),
        ({"instances": -2}, "must be an integer >= -1"),
        ({"instances": "5"}, "must be an integer >= -1"),
    ],
)
def test_set_limits_refuses_unknown_names_and_bad_values(
    db: Database, values: dict, message: str
) -> None:
    with db.session() as session, pytest.raises(BadRequest, match=message):
        quotas.set_limits(session, "p1", values)


def test_check_refuses_what_would_pass_a_limit_and_says_how_much_is_used(db: Database) -> None:
    with db.session() as session:
        quotas.set_limits(session, "p1", {"instances": 2})
    _server(db, "p1")
    with db.session() as session:
        quotas.check(session, "p1", {"instances": 1})  # 1 + 1 <= 2
    _server(db, "p1")
    with db.session() as session, pytest.raises(OverQuota) as over:
        quotas.check(session, "p1", {"instances": 1})
    assert over.value.message == (
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances."
    )
    assert over.value.error_type == "OverQuota" and over.value.status == 413


def test_check_counts_only_the_projects_own_resources(db: Database) -> None:
    with db.session() as session:
        quotas.set_limits(session, "p1", {"instances": 1})
    _server(db, "p2")
    _server(db, "p2")
    with db.session() as session:
        quotas.check(session, "p1", {"instances": 1})
        assert quotas.usage(session, "p1", "instances") == 0
        assert quotas.usage(session, "p2", "instances") == 2


def test_cores_and_ram_sum_the_servers_flavors(db: Database) -> None:
    _server(db, "p1", vcpus=4, ram_mb=4096)
    _server(db, "p1", vcpus=2, ram_mb=1024)
    with db.session() as session:
        assert quotas.usage(session, "p1", "cores") == 6
        assert quotas.usage(session, "p1", "ram") == 5120
        quotas.set_limits(session, "p1", {"cores": 8, "ram": 6144})
        quotas.check(session, "p1", {"cores": 2, "ram": 1024})  # exactly at the limits
        with pytest.raises(OverQuota, match="cores: Requested 3, but already used 6 of 8"):
            quotas.check(session, "p1", {"cores": 3, "ram": 1024})
        with pytest.raises(OverQuota, match="ram: Requested 1025"):
            quotas.check(session, "p1", {"cores": 1, "ram": 1025})


def test_gigabytes_sum_the_volume_sizes(db: Database) -> None:
    with db.session() as session:
        for size in (10, 25):
            repo.add(session, "volume", project_id="p1", spec={"size": size})
        assert quotas.usage(session, "p1", "gigabytes") == 35
        quotas.set_limits(session, "p1", {"gigabytes": 40})
        quotas.check(session, "p1", {"gigabytes": 5})
        with pytest.raises(OverQuota, match="gigabytes"):
            quotas.check(session, "p1", {"volumes": 1, "gigabytes": 6})


def test_a_resource_being_deleted_still_counts(db: Database) -> None:
    server_id = _server(db, "p1")
    with db.session() as session:
        quotas.set_limits(session, "p1", {"instances": 1})
        server = repo.get(session, "server", server_id)
        repo.change(session, server, deleting=True)  # a tombstone: its space is not free yet
    with db.session() as session, pytest.raises(OverQuota):
        quotas.check(session, "p1", {"instances": 1})


def test_unlimited_and_nothing_requested_are_never_refused(db: Database) -> None:
    _server(db, "p1")
    with db.session() as session:
        quotas.set_limits(session, "p1", {"instances": -1, "networks": 0})
        quotas.check(session, "p1", {"instances": 1000})
        quotas.check(session, "p1", {"networks": 0, "ports": -1})
        with pytest.raises(OverQuota, match="networks"):
            quotas.check(session, "p1", {"networks": 1})
