"""Site mode (one embedded site, for use as an `openstack` site of another
Isthmus) and the admin API's handling of `openstack` site configs: required
keys, types, secrets never shown, an unreachable cloud reported as down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from isthmus.config import Config, load_config
from isthmus.errors import BadRequest
from isthmus.service import Service
from isthmus.store import repo
from isthmus.store.tables import Site
from tests.fixtures.isthmus_process import run_cli
from tests.support import Cloud, make_service

API = "/isthmus/v1"


def test_site_mode_config_is_one_embedded_site(tmp_path: Path) -> None:
    config = load_config(tmp_path, site_mode=True)
    assert [(s.name, s.driver) for s in config.default_sites()] == [("local", "local")]
    named = load_config(tmp_path, site_mode=True, site_name="edge-1")
    assert [s.name for s in named.default_sites()] == ["edge-1"]
    assert len(load_config(tmp_path).default_sites()) == 3
    file = tmp_path / "isthmus.yaml"
    file.write_text("site_mode: true\nsites:\n  - name: a\n")
    with pytest.raises(BadRequest, match="exactly one embedded site"):
        load_config(tmp_path, file)
    with pytest.raises(BadRequest, match="Invalid site name"):
        load_config(tmp_path, site_mode=True, site_name="no spaces")


def test_site_mode_refuses_a_data_dir_with_other_sites(tmp_path: Path) -> None:
    make_service(tmp_path / "data").stop()  # three embedded sites
    service = Service(Config(data_dir=tmp_path / "data", site_mode=True))
    try:
        with pytest.raises(BadRequest, match="already has sites site-a, site-b, site-c"):
            service.bootstrap()
    finally:
        service.stop()


def test_site_name_needs_site_mode(tmp_path: Path) -> None:
    proc = run_cli("up", "--data-dir", str(tmp_path / "d"), "--site-name", "x")
    assert proc.returncode == 2  # a command line that cannot be used
    assert "add --site-mode" in proc.stderr


@pytest.fixture
def site_mode_cloud(tmp_path: Path) -> Iterator[Cloud]:
    service = Service(Config(data_dir=tmp_path / "data", site_mode=True, site_name="only"))
    service.bootstrap()
    service.health.check_all()
    try:
        yield Cloud(service)
    finally:
        service.stop()


def test_a_site_mode_isthmus_serves_its_one_site_and_takes_no_other(
    site_mode_cloud: Cloud,
) -> None:
    cloud = site_mode_cloud
    listed = cloud.client.get(f"{API}/sites", headers=cloud.admin).json()["sites"]
    assert [(s["name"], s["driver"], s["health"]) for s in listed] == [("only", "local", "up")]
    zones = cloud.client.get("/compute/v2.1/os-availability-zone", headers=cloud.demo).json()
    assert [z["zoneName"] for z in zones["availabilityZoneInfo"]] == ["only"]
    response = cloud.client.post(
        f"{API}/sites", headers=cloud.admin, json={"name": "more", "driver": "local"}
    )
    assert response.status_code == 409
    assert "site mode" in response.json()["error"]["message"]


def _add(cloud: Cloud, config: dict[str, Any], name: str = "os-1") -> Any:
    return cloud.client.post(
        f"{API}/sites", headers=cloud.admin, json={"name": name, "driver": "openstack", **config}
    )


def test_openstack_site_config_is_validated(cloud: Cloud, tmp_path: Path) -> None:
    for config, message in (
        ({"config": {}}, "needs config key(s) cloud"),
        ({"config": {"cloud": "x", "password": "p"}}, "Unknown config key 'password'"),
        ({"config": {"cloud": 7}}, "'cloud' must be str"),
        ({"config": {"cloud": "x", "flavor_map": {"m1.tiny": 1}}}, "must map names to names"),
        ({"config": {"cloud": "x", "settle_seconds": -1}}, "must not be negative"),
    ):
        response = _add(cloud, config)
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"]


def test_an_unreachable_openstack_site_is_added_down_with_the_reason(
    cloud: Cloud, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.yaml"
    response = _add(cloud, {"config": {"cloud": "far", "clouds_yaml": str(missing)}})
    assert response.status_code == 201, response.text
    site = response.json()["site"]
    assert site["health"] == "down"
    assert "far" in site["last_error"]


def test_secrets_in_a_site_config_are_never_shown(cloud: Cloud) -> None:
    with cloud.service.db.session() as session:  # as a config file could have put it
        session.add(
            Site(
                name="leaky",
                driver="openstack",
                config={
                    "cloud": "x",
                    "auth": {
                        "username": "u",
                        "password": "hunter2",
                        "application_credential_secret": "s3",
                    },
                    "token": "t0k",
                    "clouds": [{"secret": "deep"}],
                },
                enabled=False,
                health="unknown",
                created_at=repo.utcnow(),
            )
        )
    shown = cloud.client.get(f"{API}/sites/leaky", headers=cloud.admin)
    assert shown.status_code == 200, shown.text
    config = shown.json()["site"]["config"]
    assert config["auth"] == {
        "username": "u",
        "password": "***",
        "application_credential_secret": "***",
    }
    assert config["token"] == "***" and config["clouds"] == [{"secret": "***"}]
    for secret in ("hunter2", "s3", "t0k", "deep"):
        assert secret not in shown.text
        assert secret not in cloud.client.get(f"{API}/sites", headers=cloud.admin).text
