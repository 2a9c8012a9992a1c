"""On-disk state of one embedded site: a SQLite file of objects, each tagged
with the Isthmus id it was made for.

Like a real cloud's API, looking an object up by tag and creating one are two
separate calls: nothing here stops two concurrent callers from making twins.
Preventing that is the engine's job (one lease per resource and site), and the
crash tests check it by counting tags here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    site_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    tag TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    fault TEXT,
    ready_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_objects_kind_tag ON objects (kind, tag);
"""


@dataclass
class SiteObject:
    site_id: str
    kind: str
    tag: str
    name: str
    spec: dict[str, Any]
    status: str
    fault: str | None
    ready_at: float
    created_at: float


class SiteState:
    """The objects of one embedded site, in `<directory>/state.db`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "state.db"
        self._local = threading.local()
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def destroy(self) -> None:
        """Close and delete the database (with its WAL files): the site is gone. A
        connection another thread still holds keeps the unlinked file until it ends;
        a new SiteState on the directory starts empty."""
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    @staticmethod
    def _row(row: sqlite3.Row) -> SiteObject:
        return SiteObject(
            site_id=row["site_id"],
            kind=row["kind"],
            tag=row["tag"],
            name=row["name"],
            spec=json.loads(row["spec"]),
            status=row["status"],
            fault=row["fault"],
            ready_at=row["ready_at"],
            created_at=row["created_at"],
        )

    def find(self, kind: str, tag: str) -> SiteObject | None:
        """The oldest object of `kind` tagged `tag`, or None."""
        row = (
            self._connect()
            .execute(
                "SELECT * FROM objects WHERE kind=? AND tag=? ORDER BY created_at LIMIT 1",
                (kind, tag),
            )
            .fetchone()
        )
        return self._row(row) if row else None

    def find_all(self, kind: str, tag: str) -> list[SiteObject]:
        rows = (
            self._connect()
            .execute("SELECT * FROM objects WHERE kind=? AND tag=?", (kind, tag))
            .fetchall()
        )
        return [self._row(r) for r in rows]

    def list(self, kind: str | None = None) -> list[SiteObject]:
        if kind is None:
            rows = self._connect().execute("SELECT * FROM objects").fetchall()
        else:
            rows = self._connect().execute("SELECT * FROM objects WHERE kind=?", (kind,)).fetchall()
        return [self._row(r) for r in rows]

    def totals(self, kind: str, keys: tuple[str, ...]) -> dict[str, int]:
        """Sums of numeric spec fields over the objects of `kind`, plus `count`."""
        columns = ", ".join(f"COALESCE(SUM(json_extract(spec, '$.{key}')), 0)" for key in keys)
        row = (
            self._connect()
            .execute(f"SELECT COUNT(*), {columns} FROM objects WHERE kind=?", (kind,))
            .fetchone()
        )
        return {"count": int(row[0]), **{key: int(row[i + 1]) for i, key in enumerate(keys)}}

    def create(
        self,
        kind: str,
        tag: str,
        name: str,
        spec: dict[str, Any],
        status: str,
        ready_at: float | None = None,
        site_id: str | None = None,
    ) -> SiteObject:
        now = time.time()
        site_id = site_id or str(uuid.uuid4())
        self._connect().execute(
            "INSERT INTO objects (site_id, kind, tag, name, spec, status, fault, ready_at,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            (
                site_id,
                kind,
                tag,
                name,
                json.dumps(spec),
                status,
                now if ready_at is None else ready_at,
                now,
                now,
            ),
        )
        found = self.get(site_id)
        assert found is not None
        return found

    def get(self, site_id: str) -> SiteObject | None:
        row = (
            self._connect().execute("SELECT * FROM objects WHERE site_id=?", (site_id,)).fetchone()
        )
        return self._row(row) if row else None

    def update(self, site_id: str, **fields: Any) -> None:
        if "spec" in fields:
            fields["spec"] = json.dumps(fields["spec"])
        fields["updated_at"] = time.time()
        columns = ", ".join(f"{key}=?" for key in fields)
        self._connect().execute(
            f"UPDATE objects SET {columns} WHERE site_id=?", (*fields.values(), site_id)
        )

    def remove(self, site_id: str) -> None:
        self._connect().execute("DELETE FROM objects WHERE site_id=?", (site_id,))
