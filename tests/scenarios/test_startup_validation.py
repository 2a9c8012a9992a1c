"""`isthmus up`, `worker` and `migrate` check the whole configuration before they
start anything: one `Error:` line on stderr, exit code 2, no traceback, nothing
served or created. Sites in the config file are held to exactly what `isthmus site
add` accepts (sites/validation.py). A site whose driver this Isthmus lacks, found
in an existing store, is marked down once with the reason instead of a traceback
every health check."""

from __future__ import annotations

import logging
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from isthmus.config import ConfigError, load_config, prepare_data_dir
from isthmus.engine.health import check_site
from isthmus.errors import BadRequest
from isthmus.sites.validation import validate_site
from isthmus.store.tables import Site
from tests.fixtures.isthmus_process import run_cli
from tests.support import make_service


def assert_one_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2, stderr exactly one `Error:` line holding every fragment, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def write_config(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "isthmus.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_port_out_of_range_exits_2_and_serves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = run_cli("up", "--port", "99999", "--data-dir", str(data_dir))
    assert_one_error(proc, "port must be between 1 and 65535, not 99999")
    assert not data_dir.exists()  # nothing was started, not even the data dir
    with socket.socket() as probe:  # 99999 wraps to 34463 in a 16-bit port field
        assert probe.connect_ex(("127.0.0.1", 99999 % 65536)) != 0


@pytest.mark.parametrize(
    ("sites", "fragments"),
    [
        ([{"name": "a", "driver": "aws"}], ("sites[0] ('a')", "Unknown site driver 'aws'")),
        (
            [{"name": "a", "config": {"vcpus": 2, "bogus": 1}}],
            ("sites[0] ('a')", "Unknown config key 'bogus' for driver 'local'"),
        ),
        ([{"name": "a"}, {"name": "a"}], ("sites[1] ('a')", "given twice")),
        ([{"name": "bad name"}], ("sites[0] ('bad name')", "Invalid site name")),
        ([{"name": "a", "config": {"vcpus": "many"}}], ("'vcpus' must be int",)),
        ([{"name": "r", "driver": "openstack"}], ("needs config key(s) cloud",)),
        ([{"name": "a", "drivr": "local"}], ("unknown key(s) drivr",)),
    ],
)
def test_config_sites_are_checked_as_site_add_does(
    tmp_path: Path, sites: list[dict[str, Any]], fragments: tuple[str, ...]
) -> None:
    config = write_config(tmp_path, {"sites": sites})
    data_dir = tmp_path / "data"
    proc = run_cli("up", "--data-dir", str(data_dir), "--config", str(config))
    assert_one_error(proc, *fragments)
    assert not data_dir.exists()


def test_a_command_line_that_cannot_be_used_creates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = run_cli("up", "--data-dir", str(data_dir), "--site-name", "edge")
    assert_one_error(proc, "add --site-mode")
    assert_one_error(run_cli("up", "--data-dir", str(data_dir), "--host", "no such host!"), "host")
    assert not data_dir.exists()


def test_worker_and_migrate_check_the_config_too(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"sites": [{"name": "a"}, {"name": "a"}]})
    for command in ("worker", "migrate"):
        proc = run_cli(command, "--data-dir", str(tmp_path / "data"), "--config", str(config))
        assert_one_error(proc, "given twice")
    proc = run_cli("migrate", "--data-dir", str(tmp_path / "data"), "--database", "mysql://h/db")
    assert_one_error(proc, "SQLite or PostgreSQL")


def test_unusable_data_dir_is_one_error_line(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a directory\n")
    # root ignores permission bits, so the unusable cases are made of what no mode
    # changes: a file, a path through a file, and a directory no file can be made in
    assert_one_error(run_cli("up", "--data-dir", str(a_file)), "is not a directory")
    assert_one_error(run_cli("up", "--data-dir", str(a_file / "sub")), "Cannot create data dir")
    assert_one_error(run_cli("worker", "--data-dir", "/proc/self"), "is not writable")


def test_every_key_is_typed_and_bounded(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"port": "8780"}, "port must be an integer"),
        ({"port": 0}, "port must be between 1 and 65535"),
        ({"host": "no such host!"}, "host must be an IP address or a host name"),
        ({"workers": 0}, "workers must be between 1"),
        ({"workers": True}, "workers must be an integer"),
        ({"health_interval": 0}, "health_interval must be a finite number greater than 0"),
        ({"sweep_interval": -1}, "sweep_interval must be a finite number 0 or more"),
        ({"max_image_size": 0}, "max_image_size must be at least 1"),
        ({"fabric": "kernel"}, "fabric must be 'embedded' or empty"),
        ({"vni_range": [5000, 10]}, "low 5000 is above high 10"),
        ({"vni_range": [1, 2**24]}, "vni_range[1] must be between 1 and 16777215"),
        ({"vni_range": 7}, "vni_range must be [low, high]"),
        ({"database": "mysql://u@h/db"}, "SQLite or PostgreSQL"),
        ({"database": "not a url"}, "database is not a database URL"),
        ({"public_url": "ftp://x"}, "public_url must be an http(s) URL"),
        ({"site_mode": "yes"}, "site_mode must be true or false"),
        ({"metrics_listen": "9180"}, "metrics_listen must be host:port"),
        ({"metrics_listen": "0.0.0.0:9180"}, "must name a loopback address"),
        ({"metrics_listen": "127.0.0.1:70000"}, "port must be between 1 and 65535"),
        ({"sites": {"name": "a"}}, "'sites' must be a list"),
        ({"colour": "blue"}, "Unknown config keys: colour"),
    ]
    for values, message in cases:
        with pytest.raises(ConfigError, match=None) as caught:
            load_config(tmp_path, write_config(tmp_path, values))
        assert message in caught.value.message, (values, caught.value.message)
    good = load_config(
        tmp_path,
        write_config(
            tmp_path,
            {
                "port": 8781,
                "host": "::1",
                "vni_range": [2000, 3000],
                "metrics_listen": "[::1]:9180",
                "database": "postgresql+psycopg://isthmus@127.0.0.1/isthmus",
                "sites": [{"name": "edge", "driver": "local", "config": {"vcpus": 4}}],
            },
        ),
    )
    assert good.vni_range == (2000, 3000) and good.sites[0].config == {"vcpus": 4}
    assert load_config(tmp_path, database="").database_url.startswith("sqlite:///")
    unset = load_config(tmp_path, write_config(tmp_path, {"port": None, "database": None}))
    assert unset.port == 8780 and unset.database is None  # `port:` alone keeps the default


def test_config_file_and_site_add_share_one_check() -> None:
    """The same definitions fail the same way through either door."""
    for name, driver, config in (
        ("a", "aws", {}),
        ("a", "local", {"bogus": 1}),
        ("bad name", "local", {}),
        ("a", "local", {"vcpus": -1}),
    ):
        with pytest.raises(BadRequest) as direct:
            validate_site(name, driver, config)
        with pytest.raises(ConfigError) as from_file:
            load_config(
                Path("/nonexistent"), sites=[{"name": name, "driver": driver, "config": config}]
            )
        assert from_file.value.message.endswith(direct.value.message)


def test_prepare_data_dir_makes_a_private_directory(tmp_path: Path) -> None:
    made = prepare_data_dir(tmp_path / "a" / "b")
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o700
    assert list(made.iterdir()) == []  # the write probe leaves nothing behind


def test_unknown_driver_in_the_store_is_marked_down_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(tmp_path / "data", None, sites=1)
    try:
        with service.db.session() as session:
            session.execute(update(Site).where(Site.name == "site-a").values(driver="aws"))
        service.sites.forget("site-a")
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                assert check_site(service.db, service.sites, "site-a") == "down"
        with service.db.read() as session:
            site = session.get(Site, "site-a")
            assert site is not None
            assert site.last_error is not None and "Unknown site driver 'aws'" in site.last_error
        assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
        warnings = [r for r in caplog.records if "Unknown site driver" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    finally:
        service.stop()
