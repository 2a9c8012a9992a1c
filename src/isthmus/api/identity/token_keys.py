"""Token keys on disk, in Keystone's fernet-keys layout: `<data-dir>/token-keys/`
(mode 0700) holds one Fernet key per file (mode 0600), named by a number:

    0          the staged key: accepted, not yet used to encrypt; the next primary
    1 .. N-1   secondary keys: accepted for tokens made before the last rotations
    N          the primary key (the highest number): encrypts every new token

`rotate()` does what `keystone-manage fernet_rotate` does: the staged key becomes
the primary (renamed to N+1), a new staged key is written, and the oldest
secondary keys are removed while more than `max_active` keys (staged included)
exist. Because every process also accepts the staged key, a process that has not
yet re-read the directory still accepts tokens made under the new primary; tokens
made under a previous primary stay valid while that key is kept (keep
`max_active` >= 2 + token lifetime / rotation interval). Copy the directory to
every host that validates tokens. Writers hold an exclusive lock on the directory.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from isthmus.errors import BadRequest
from isthmus.private_files import FILE_MODE, private_dir, write_private

KEY_DIR_NAME = "token-keys"
DEFAULT_MAX_ACTIVE = 3  # Keystone's [fernet_tokens] max_active_keys


@dataclass(frozen=True)
class Rotation:
    """What one rotation did."""

    primary: int
    removed: tuple[int, ...]
    active: tuple[int, ...]


class KeyRepository:
    """The numbered key files of one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def indexes(self) -> list[int]:
        """The key numbers present, ascending (empty if the directory is missing)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(name) for name in names if name.isdigit())

    def stamp(self) -> int | None:
        """The directory's mtime (ns): changes whenever a key is added, renamed or removed."""
        try:
            return os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return None

    def load(self) -> list[bytes]:
        """The keys, the primary first, then the secondaries newest first, the staged last."""
        order = sorted(self.indexes(), key=lambda index: (index == 0, -index))
        keys = []
        for index in order:
            try:
                keys.append((self.directory / str(index)).read_bytes().strip())
            except FileNotFoundError:  # removed by a rotation meanwhile
                continue
        return keys

    def setup(self) -> None:
        """The directory 0700 with a staged and a primary key if it has none, as
        `keystone-manage fernet_setup`; existing keys keep their content, their
        modes are fixed (a directory an older version or a copy left open)."""
        private_dir(self.directory)
        with self._locked():
            indexes = self.indexes()
            if not indexes:
                self._write(1)
                self._write(0)
            elif 0 not in indexes:
                self._write(0)
            for index in self.indexes():
                (self.directory / str(index)).chmod(FILE_MODE)

    def rotate(self, max_active: int = DEFAULT_MAX_ACTIVE) -> Rotation:
        """Staged -> primary, a new staged key, the oldest beyond `max_active` dropped."""
        if max_active < 2:
            raise BadRequest(
                f"--max-active must be at least 2 (a staged and a primary key), not {max_active}."
            )
        if not self.indexes():
            raise BadRequest(
                f"No token keys in {self.directory}: `isthmus up` with this data dir makes them."
            )
        with self._locked():
            indexes = self.indexes()
            if 0 not in indexes:
                self._write(0)
            primary = max(indexes) + 1
            os.replace(self.directory / "0", self.directory / str(primary))
            self._write(0)
            removed = []
            secondaries = [index for index in self.indexes() if index not in (0, primary)]
            while len(secondaries) + 2 > max_active:
                oldest = secondaries.pop(0)
                (self.directory / str(oldest)).unlink()
                removed.append(oldest)
            return Rotation(primary, tuple(removed), tuple(self.indexes()))

    def _write(self, index: int) -> None:
        write_private(self.directory / str(index), Fernet.generate_key())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
