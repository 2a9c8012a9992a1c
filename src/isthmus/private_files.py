"""Files only the service's own user may read: the data dir (0700), the SQLite
database and its -wal/-shm files, secrets.yaml, clouds.yaml and the token keys
(0600). Files are created with their final mode (never readable by others, not
even for a moment), and a data dir an older version left 0755/0644 is fixed at
start (`secure_data_dir`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from isthmus.errors import BadRequest

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path` (and missing parents) as a directory only its owner can enter."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    try:
        path.chmod(DIR_MODE)
    except OSError as exc:
        raise BadRequest(f"Cannot make {path} private (mode 0700): {exc}") from exc
    return path


def write_private(path: Path, data: str | bytes) -> Path:
    """Write `path` atomically as a 0600 file (a temporary file renamed over it)."""
    raw = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away, never added any
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return path


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def secure_data_dir(data_dir: Path, database_url: str) -> None:
    """Make the data dir 0700 and the SQLite database files 0600; an empty database
    file is created 0600 first, so SQLite (which gives -wal and -shm the mode of the
    database file) never makes any of them readable by others."""
    private_dir(data_dir)
    database = sqlite_path(database_url)
    if database is None:
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{database}{suffix}").chmod(FILE_MODE)
