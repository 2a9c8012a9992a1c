"""Tokens die with their user, project or role (Keystone's revocation events), are
Fernet tokens under keys in their own 0700 directory (rotation keeps older tokens
valid), refuse the old signed-JSON format and a lifetime beyond the configured
one, and the data dir, database and keys are readable by their owner only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import create_engine, text

from isthmus.api.identity.token_keys import KeyRepository
from isthmus.api.identity.tokens import TokenClaims, new_audit_id, pack
from isthmus.errors import Unauthorized
from isthmus.service import Service
from isthmus.store.db import MIGRATIONS_DIR
from tests.support import Cloud, make_service

SERVERS = "/compute/v2.1/servers"


def _ids(cloud: Cloud, headers: dict[str, str]) -> tuple[str, str]:
    """(user id, project id) of the token in `headers`."""
    body = cloud.client.get(
        "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": headers["X-Auth-Token"]}
    ).json()["token"]
    return body["user"]["id"], body["project"]["id"]


def _status(cloud: Cloud, headers: dict[str, str]) -> int:
    return cloud.client.get(SERVERS, headers=headers).status_code


def _subject_status(cloud: Cloud, headers: dict[str, str]) -> int:
    subject = {**cloud.admin, "X-Subject-Token": headers["X-Auth-Token"]}
    return cloud.client.get("/identity/v3/auth/tokens", headers=subject).status_code


def _patch_user(cloud: Cloud, user_id: str, **fields: object) -> None:
    answer = cloud.client.patch(
        f"/identity/v3/users/{user_id}", headers=cloud.admin, json={"user": fields}
    )
    assert answer.status_code == 200, answer.text


def _mint(service: Service, user_id: str, project_id: str, lifetime: float) -> str:
    """A Fernet token made with the service's own primary key (as a thief of the key would)."""
    key = KeyRepository(service.token_keys.directory).load()[0]
    now = time.time()
    claims = TokenClaims(user_id, project_id, ("password",), new_audit_id(), now, now + lifetime)
    return Fernet(key).encrypt(pack(claims)).decode()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- each change that must kill tokens -----------------------------------------------------------


def test_a_disabled_user_loses_its_tokens_even_once_enabled_again(cloud: Cloud) -> None:
    headers = cloud.new_member("dora")
    user_id, _ = _ids(cloud, headers)
    assert _status(cloud, headers) == 200
    _patch_user(cloud, user_id, enabled=False)
    assert _status(cloud, headers) == 401
    assert _subject_status(cloud, headers) == 404
    _patch_user(cloud, user_id, enabled=True)
    assert _status(cloud, headers) == 401  # Keystone: re-enabling revives no token
    assert _status(cloud, cloud.headers("dora", "dora", "dora-pw")) == 200


def test_a_deleted_user_loses_its_tokens(cloud: Cloud) -> None:
    headers = cloud.new_member("dan")
    user_id, _ = _ids(cloud, headers)
    assert cloud.client.delete(f"/identity/v3/users/{user_id}", headers=cloud.admin).status_code
    assert _status(cloud, headers) == 401
    assert _subject_status(cloud, headers) == 404


def test_a_password_change_kills_older_tokens_only(cloud: Cloud) -> None:
    before = cloud.new_member("paula")
    user_id, _ = _ids(cloud, before)
    _patch_user(cloud, user_id, password="new-secret")
    assert _status(cloud, before) == 401
    after = cloud.headers("paula", "paula", "new-secret")
    assert _status(cloud, after) == 200
    assert _status(cloud, after) == 200  # also once cached
    assert _subject_status(cloud, after) == 200


def test_a_revoked_role_kills_tokens_on_that_project_and_a_granted_one_counts_at_once(
    cloud: Cloud,
) -> None:
    headers = cloud.new_member("rita")
    user_id, project_id = _ids(cloud, headers)
    assert cloud.client.get("/identity/v3/users", headers=headers).status_code == 403
    roles = f"/identity/v3/projects/{project_id}/users/{user_id}/roles"
    assert cloud.client.put(f"{roles}/admin", headers=cloud.admin).status_code == 204
    assert cloud.client.get("/identity/v3/users", headers=headers).status_code == 200
    assert cloud.client.delete(f"{roles}/admin", headers=cloud.admin).status_code == 204
    assert _status(cloud, headers) == 401  # revoking a role kills the user's tokens there
    assert cloud.client.delete(f"{roles}/member", headers=cloud.admin).status_code == 204
    login = cloud.client.post(
        "/identity/v3/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": "rita", "password": "rita-pw"}},
                },
                "scope": {"project": {"id": project_id}},
            }
        },
    )
    assert login.status_code == 401  # no role left on the project


def test_a_disabled_project_loses_its_tokens(cloud: Cloud) -> None:
    headers = cloud.new_member("pia")
    _, project_id = _ids(cloud, headers)
    answer = cloud.client.patch(
        f"/identity/v3/projects/{project_id}",
        headers=cloud.admin,
        json={"project": {"enabled": False}},
    )
    assert answer.status_code == 200
    assert _status(cloud, headers) == 401
    assert _subject_status(cloud, headers) == 404


def test_a_deleted_project_loses_its_tokens_and_gets_no_network(cloud: Cloud) -> None:
    headers = cloud.new_member("pete")
    _, project_id = _ids(cloud, headers)
    assert (
        cloud.client.delete(f"/identity/v3/projects/{project_id}", headers=cloud.admin).status_code
        == 204
    )
    created = cloud.client.post(
        "/network/v2.0/networks", headers=headers, json={"network": {"name": "ghost"}}
    )
    assert created.status_code == 401
    listed = cloud.client.get("/network/v2.0/networks?name=ghost", headers=cloud.admin).json()
    assert listed["networks"] == []


def test_another_process_sees_the_change_at_once(cloud: Cloud, tmp_path: Path) -> None:
    """Two services on one database and data dir (two processes): each has its own
    cache of validated tokens; a change made through one is seen by the other."""
    headers = cloud.new_member("otto")
    user_id, _ = _ids(cloud, headers)
    other = Service(cloud.service.config, run_engine=False)
    try:
        token = headers["X-Auth-Token"]
        assert other.verify_token(token).user_name == "otto"
        _patch_user(cloud, user_id, name="otto2")
        assert other.verify_token(token).user_name == "otto2"
        _patch_user(cloud, user_id, enabled=False)
        with pytest.raises(Unauthorized, match="unknown or disabled"):
            other.verify_token(token)
    finally:
        other.stop()


# -- forged tokens ------------------------------------------------------------------------------


def _old_format_token(key: bytes, user_id: str, project_id: str) -> str:
    """A token in the format of Isthmus before Fernet: HMAC-SHA256 over base64 JSON."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = time.time()
    payload = {
        "user_id": user_id,
        "user_name": "admin",
        "project_id": project_id,
        "project_name": "admin",
        "roles": ["admin", "member", "reader"],
        "issued_at": now,
        "expires_at": now + 365 * 86400,
        "audit_id": b64(uuid.uuid4().bytes),
    }
    body = b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def test_an_old_store_loses_its_signing_key_and_old_tokens_are_refused(
    tmp_path: Path, db_url: str
) -> None:
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(db_url)
    old_key = bytes(range(32))
    with engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0003")
        connection.execute(
            text("INSERT INTO settings (key, value) VALUES ('token_key', :v)"), {"v": old_key.hex()}
        )
    engine.dispose()
    service = make_service(tmp_path / "data", db_url, sites=1)
    try:
        with service.db.read() as session:
            rows = session.execute(text("SELECT key FROM settings WHERE key = 'token_key'"))
            assert rows.all() == []
        cloud = Cloud(service)
        user_id, project_id = _ids(cloud, cloud.admin)
        forged = {"X-Auth-Token": _old_format_token(old_key, user_id, project_id)}
        assert _status(cloud, forged) == 401
        assert cloud.client.get("/identity/v3/users", headers=forged).status_code == 401
    finally:
        service.stop()


def test_a_token_minted_with_the_real_key_but_a_long_lifetime_is_refused(cloud: Cloud) -> None:
    user_id, project_id = _ids(cloud, cloud.admin)
    fair = _mint(cloud.service, user_id, project_id, 600)
    assert _status(cloud, {"X-Auth-Token": fair}) == 200  # the minting itself is right
    year = _mint(cloud.service, user_id, project_id, 365 * 86400)
    assert _status(cloud, {"X-Auth-Token": year}) == 401
    over = _mint(cloud.service, user_id, project_id, cloud.service.config.token_expiration + 5)
    assert _status(cloud, {"X-Auth-Token": over}) == 401


def test_a_token_for_a_user_that_does_not_exist_is_refused(cloud: Cloud) -> None:
    _, project_id = _ids(cloud, cloud.admin)
    ghost = _mint(cloud.service, uuid.uuid4().hex, project_id, 600)
    assert _status(cloud, {"X-Auth-Token": ghost}) == 401
    assert (
        cloud.client.get("/identity/v3/users", headers={"X-Auth-Token": ghost}).status_code == 401
    )


def test_a_token_cannot_be_read_by_its_holder(cloud: Cloud) -> None:
    token = cloud.admin["X-Auth-Token"]
    user_id, project_id = _ids(cloud, cloud.admin)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert raw[0] == 0x80  # Fernet version byte
    assert user_id.encode() not in raw and bytes.fromhex(user_id) not in raw
    assert bytes.fromhex(project_id) not in raw and b"admin" not in raw
    assert len(token) < 250


# -- keys: rotation and file modes -----------------------------------------------------------


def test_rotation_keeps_older_tokens_and_new_ones_use_the_new_key(cloud: Cloud) -> None:
    keys = KeyRepository(cloud.service.token_keys.directory)
    old = cloud.headers("demo", "demo")
    assert _status(cloud, old) == 200
    rotation = keys.rotate(max_active=3)
    assert rotation.primary == 2 and rotation.active == (0, 1, 2)
    assert _status(cloud, old) == 200  # under a secondary key now, still valid
    new = cloud.headers("demo", "demo")
    primary = Fernet((keys.directory / "2").read_bytes())
    primary.decrypt(new["X-Auth-Token"].encode())
    with pytest.raises(InvalidToken):
        primary.decrypt(old["X-Auth-Token"].encode())
    keys.rotate(max_active=3)  # key 1, which made `old`, is dropped
    assert keys.indexes() == [0, 2, 3]
    assert _status(cloud, old) == 401  # the running service re-read the keys
    assert _status(cloud, new) == 200


def test_data_dir_database_keys_and_secrets_are_private(cloud: Cloud) -> None:
    data_dir = cloud.service.config.data_dir
    assert _mode(data_dir) == 0o700
    keys = cloud.service.token_keys.directory
    assert keys == data_dir / "token-keys" and _mode(keys) == 0o700
    assert sorted(p.name for p in keys.iterdir()) == ["0", "1"]
    assert all(_mode(p) == 0o600 for p in keys.iterdir())
    assert _mode(data_dir / "secrets.yaml") == 0o600
    if cloud.service.db.is_sqlite:
        database = data_dir.parent / "isthmus.db"  # the db_url fixture's file
        files = [database, *database.parent.glob("isthmus.db-*")]
        assert any(p.name.endswith("-wal") for p in files)
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_an_open_data_dir_of_an_older_version_is_closed_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    service = make_service(data_dir, None, sites=1)
    service.stop()
    data_dir.chmod(0o755)
    for path in [data_dir / "isthmus.db", *data_dir.glob("isthmus.db-*")]:
        path.chmod(0o644)
    (data_dir / "token-keys").chmod(0o755)
    (data_dir / "token-keys" / "1").chmod(0o644)
    service = make_service(data_dir, None, sites=1)
    try:
        assert _mode(data_dir) == 0o700
        database = [data_dir / "isthmus.db", *data_dir.glob("isthmus.db-*")]
        assert {p.name: _mode(p) for p in database} == {p.name: 0o600 for p in database}
        assert _mode(data_dir / "token-keys") == 0o700
        assert _mode(data_dir / "token-keys" / "1") == 0o600
    finally:
        service.stop()


def test_a_token_made_from_a_token_ends_when_that_one_ends(cloud: Cloud) -> None:
    first = cloud.admin["X-Auth-Token"]
    body = cloud.client.get(
        "/identity/v3/auth/tokens", headers={**cloud.admin, "X-Subject-Token": first}
    ).json()["token"]
    answer = cloud.client.post(
        "/identity/v3/auth/tokens",
        json={
            "auth": {
                "identity": {"methods": ["token"], "token": {"id": first}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        },
    )
    assert answer.status_code == 201, answer.text
    second = answer.json()["token"]
    assert second["methods"] == ["token"] and body["methods"] == ["password"]
    assert second["expires_at"] == body["expires_at"]  # not a fresh lifetime
    assert answer.headers["X-Subject-Token"] != first


def test_a_damaged_key_file_is_skipped_not_a_500(cloud: Cloud) -> None:
    headers = cloud.headers("demo", "demo")
    (cloud.service.token_keys.directory / "7").write_text("not a key\n")
    assert _status(cloud, headers) == 200
    assert _status(cloud, cloud.headers("demo", "demo")) == 200
