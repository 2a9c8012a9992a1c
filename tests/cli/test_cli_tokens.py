"""`isthmus token-keys rotate|list` against a running `isthmus up` (a subprocess,
stopped by its exact pid): the service takes the rotated keys without a restart,
older tokens stay valid while their key is kept, new tokens use the new primary."""

from __future__ import annotations

import http.client
import select
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet, InvalidToken

from isthmus.api.identity.token_keys import KeyRepository
from tests.fixtures.isthmus_process import Running, password_token, run_cli, start_isthmus

pytestmark = pytest.mark.cli


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    served = start_isthmus(tmp_path / "data")
    try:
        yield served
    finally:
        served.stop()


def login(running: Running) -> str:
    password = yaml.safe_load((running.data_dir / "secrets.yaml").read_text())["demo"]
    return password_token(running.url, "demo", password)


def servers(running: Running, token: str) -> int:
    answer = httpx.get(f"{running.url}/compute/v2.1/servers", headers={"X-Auth-Token": token})
    return answer.status_code


def test_isthmus_up_keeps_its_files_private(running: Running) -> None:
    data = running.data_dir
    assert data.stat().st_mode & 0o777 == 0o700
    private = ["clouds.yaml", "secrets.yaml", "isthmus.db", "isthmus.db-wal", "isthmus.db-shm"]
    assert {name: (data / name).stat().st_mode & 0o777 for name in private} == dict.fromkeys(
        private, 0o600
    )
    assert (data / "token-keys").stat().st_mode & 0o777 == 0o700


def test_an_idle_connection_outlives_a_cli_poll(running: Running) -> None:
    """`openstack ... --wait` polls every 5 s on one kept-alive connection: isthmus up
    must keep an idle connection open longer than that (uvicorn's own 5 s closed it
    just as the CLI reused it: "Connection reset by peer")."""
    url = httpx.URL(running.url)
    conn = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        conn.request("GET", "/identity/v3")
        first = conn.getresponse()
        assert first.status == 200
        first.read()
        time.sleep(6.5)
        # still open: nothing to read (a connection the server closed reads as its end)
        assert conn.sock is not None
        readable, _, _ = select.select([conn.sock], [], [], 0)
        assert readable == []
        conn.request("GET", "/identity/v3")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_rotate_while_the_service_runs(running: Running) -> None:
    keys = running.data_dir / "token-keys"
    old = login(running)
    rotated = run_cli("token-keys", "rotate", "--data-dir", str(running.data_dir))
    assert rotated.returncode == 0, rotated.stderr
    assert f"Primary key is now {keys / '2'}." in rotated.stdout
    assert servers(running, old) == 200
    new = login(running)
    primary = Fernet((keys / "2").read_bytes())
    primary.decrypt(new.encode())
    with pytest.raises(InvalidToken):
        primary.decrypt(old.encode())
    again = run_cli(
        "token-keys", "rotate", "--data-dir", str(running.data_dir), "--max-active", "3"
    )
    assert again.returncode == 0, again.stderr
    assert "Removed keys: 1." in again.stdout
    assert servers(running, old) == 401  # its key is gone: dead without a restart
    assert servers(running, new) == 200
    listed = run_cli("token-keys", "list", "--data-dir", str(running.data_dir)).stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["0", "staged"],
        ["2", "secondary"],
        ["3", "primary"],
    ]
    assert sorted(p.name for p in keys.iterdir()) == ["0", "2", "3"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys.iterdir())


def test_rotate_says_what_is_wrong(tmp_path: Path) -> None:
    missing = run_cli("token-keys", "rotate", "--data-dir", str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert "No token keys in" in missing.stderr and "isthmus up" in missing.stderr
    KeyRepository(tmp_path / "data" / "token-keys").setup()
    too_few = run_cli(
        "token-keys", "rotate", "--data-dir", str(tmp_path / "data"), "--max-active", "1"
    )
    assert too_few.returncode == 1
    assert "--max-active must be at least 2" in too_few.stderr
    assert KeyRepository(tmp_path / "data" / "token-keys").indexes() == [0, 1]


def test_isthmus_migrate_makes_a_private_database(tmp_path: Path) -> None:
    migrated = run_cli("migrate", "--data-dir", str(tmp_path / "data"))
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "data" / "isthmus.db").stat().st_mode & 0o777 == 0o600
