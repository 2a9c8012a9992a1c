"""`isthmus down`: stop the `isthmus up` of a data dir and tear its embedded data plane down.

1. The service: SIGTERM to exactly the pid in `<data-dir>/isthmus.pid`, if that pid
   is a live Isthmus, then wait for it to exit (it drops its pidfile). After
   `--timeout` seconds it is an error, unless `--force`: then SIGKILL to that pid.
   A pidfile naming no live Isthmus is stale: it is removed.
2. The data plane: every embedded fabric recorded for the data dir (the fabric
   directory of each `local` site in the store's `sites` rows, which a site's
   config `fabric_dir` or `directory` may move, plus the default
   `<data-dir>/sites/_fabric`) is torn down by its own record
   (`EmbeddedFabric.teardown()`: FRR by pidfile, namespaces by recorded name).

The store and the sites' own state stay: no intent is lost, and the next
`isthmus up` plumbs the data plane again from the sites' state (the local
driver's `check()`). Running it again says nothing is running and succeeds.
`python -m isthmus.demo` uses `teardown_data_planes` after stopping its service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from isthmus.config import Config, load_config
from isthmus.errors import IsthmusError

PIDFILE = "isthmus.pid"


class DownError(IsthmusError):
    """`isthmus down` cannot go on; the message says why (printed, exit 1)."""


def pid_alive(pid: int) -> bool:
    """The pid is a live process whose command line names isthmus (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return b"isthmus" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_service(data_dir: Path, timeout: float, force: bool) -> str:
    """Stop the Isthmus whose pid `<data_dir>/isthmus.pid` names; what happened."""
    path = data_dir / PIDFILE
    pid = _read_pid(path)
    if pid is None:
        return f"Isthmus is not running on {data_dir} (no {PIDFILE})."
    if pid == os.getpid() or not pid_alive(pid):
        path.unlink(missing_ok=True)
        return f"Isthmus is not running on {data_dir} (removed the stale {path}, pid {pid})."
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        path.unlink(missing_ok=True)  # `up` drops it itself; this covers a crash on the way
        return f"Stopped Isthmus (pid {pid}, SIGTERM)."
    if not force:
        raise DownError(
            f"Isthmus (pid {pid}) is still running {timeout:g} s after SIGTERM; nothing was"
            " torn down. Wait and run `isthmus down` again, or add --force to SIGKILL it."
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10.0):
        raise DownError(f"Isthmus (pid {pid}) survived SIGKILL; nothing was torn down.")
    path.unlink(missing_ok=True)
    return f"Killed Isthmus (pid {pid}, SIGKILL after {timeout:g} s)."


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def fabric_directories(config: Config) -> list[Path]:
    """The fabric directories of the data dir's embedded sites (from the store's
    `sites` rows, read only) plus the default one; only those that exist."""
    from isthmus.engine.registry import local_directory
    from isthmus.sites.local.plumbing import FABRIC_DIR_NAME, fabric_directory

    found = [config.data_dir / "sites" / FABRIC_DIR_NAME]
    for name, site_config in _local_sites(config):
        found.append(
            fabric_directory(local_directory(name, site_config, config.data_dir), site_config)
        )
    unique: dict[Path, None] = {}
    for directory in found:
        if directory.is_dir():
            unique.setdefault(directory.resolve(), None)
    return list(unique)


def _local_sites(config: Config) -> list[tuple[str, dict[str, object]]]:
    from sqlalchemy import inspect, select

    from isthmus.store.db import Database
    from isthmus.store.tables import Site

    if config.database is None and not (config.data_dir / "isthmus.db").exists():
        return []  # never create a database just to look into it
    db = Database(config.database_url)
    try:
        if not inspect(db.engine).has_table("sites"):
            return []
        with db.read() as session:
            rows = session.execute(select(Site.name, Site.config).where(Site.driver == "local"))
            return [(name, dict(site_config or {})) for name, site_config in rows]
    finally:
        db.dispose()


def _recorded(directory: Path) -> bool:
    """The fabric in `directory` recorded something to tear down."""
    try:
        state = json.loads((directory / "fabric.json").read_text())
    except (OSError, ValueError):
        state = {}
    return bool(
        state.get("namespaces")
        or state.get("run_dirs")
        or state.get("vteps")
        or any((directory / "frr").glob("*/*.pid"))
    )


def teardown_data_planes(config: Config) -> list[str]:
    """Tear down every embedded fabric recorded for the data dir of `config`, by its
    own record (FRR by pidfile, namespaces by recorded name). Call it once the
    service is stopped; the store and the sites' state are left as they are. One
    line per fabric that had something running, saying what it stopped."""
    done: list[str] = []
    for directory in fabric_directories(config):
        if not _recorded(directory):
            continue
        from isthmus.fabric import capability

        missing = capability.missing()
        if missing is not None:
            raise DownError(
                f"The embedded data plane in {directory} needs tearing down, which this"
                f" process cannot do here ({missing})."
            )
        from isthmus.fabric.dataplane import EmbeddedFabric

        result = EmbeddedFabric(directory).teardown()
        if result.daemons or result.namespaces:
            pids = ", ".join(str(pid) for pid in result.daemons) or "none"
            names = ", ".join(result.namespaces) or "none"
            done.append(
                f"Tore down the data plane in {directory}: stopped FRR pid(s) {pids};"
                f" removed namespace(s) {names}."
            )
    return done


def down(
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="Where the database, secrets and embedded sites live."),
    ] = Path("data"),
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML config file (see isthmus.config).")
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the store (default: SQLite in the data dir)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the service to exit after SIGTERM.")
    ] = 30.0,
    force: Annotated[
        bool, typer.Option("--force", help="SIGKILL the service if it outlives --timeout.")
    ] = False,
) -> None:
    """Stop the `isthmus up` of a data dir (SIGTERM to the pid in its isthmus.pid) and
    tear down its embedded data plane (FRR daemons, network namespaces).

    The store and the sites' state stay: `isthmus up` on the same data dir brings
    everything back, the data plane included. Running it again is harmless.
    """
    if config_file is not None and not config_file.is_file():
        raise DownError(f"Config file {config_file} does not exist.")
    config = load_config(data_dir.expanduser().resolve(), config_file, database=database)
    if not config.data_dir.is_dir():
        typer.echo(f"Nothing to stop: {config.data_dir} does not exist.")
        return
    typer.echo(stop_service(config.data_dir, timeout, force))
    lines = teardown_data_planes(config)
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo("No embedded data plane was running.")
