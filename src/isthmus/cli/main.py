"""The `isthmus` command: the typer app; `main()` is the console script.

    isthmus up        serve the API, engine and health monitor in one process
    isthmus down      stop that process (its pidfile) and tear its embedded data plane down
    isthmus worker    engine and health monitor only (more workers on PostgreSQL)
    isthmus migrate   bring the database schema up to date
    isthmus site ...  list/show/add/remove/down/up/enable/disable sites (admin API client)
    isthmus resource show ID, isthmus work   look into resources and the work queue
    isthmus token-keys rotate|list   the token encryption keys (cli/tokens.py)

The client commands find the service like the `openstack` CLI does (see
cli/client.py); their connection options are global (`isthmus --os-cloud X site list`).
Expected errors print one `Error:` line and exit 1, without a traceback; a
configuration that cannot be used (config file, options, data dir: isthmus.config)
exits 2, before anything starts.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from isthmus import __version__
from isthmus.cli.client import ConnectOptions
from isthmus.cli.down import PIDFILE, down, pid_alive
from isthmus.cli.exec import server_app
from isthmus.cli.sites import resource_app, site_app, work_command
from isthmus.cli.tokens import token_keys_app
from isthmus.config import (
    DEFAULT_PORT,
    Config,
    ConfigError,
    load_config,
    parse_listen,
    prepare_data_dir,
)
from isthmus.errors import IsthmusError

if TYPE_CHECKING:  # imported when a command runs: the client commands start faster
    from isthmus.store.db import Database

app = typer.Typer(
    help="Isthmus: one OpenStack API in front of many clouds; each site is one availability zone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)


class CommandError(IsthmusError):
    """A command cannot go on; the message says why (printed, exit 1)."""


# -- options shared by the server commands ------------------------------------------------------

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="Where the database, secrets and embedded sites live.")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config file (see isthmus.config).")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(help="SQLAlchemy URL, e.g. postgresql+psycopg://u@host/db (default: SQLite)."),
]
WorkersOption = Annotated[int | None, typer.Option(help="Engine worker threads (default: 4).")]
LogLevelOption = Annotated[str, typer.Option(help="Log level: debug, info, warning, error.")]


# How long an idle client connection stays open. uvicorn's default (5 s) equals the
# openstack CLI's `--wait` poll interval, so the CLI reused a connection the server was
# closing at that very moment and died on "Connection reset by peer" (seen in a demo
# run in CI); 75 s, nginx's default, outlasts every client's poll.
KEEP_ALIVE_SECONDS = 75


@app.callback()
def connection_options(
    ctx: typer.Context,
    os_cloud: Annotated[
        str | None,
        typer.Option("--os-cloud", help="Cloud in clouds.yaml (default: $OS_CLOUD or isthmus)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Isthmus base URL (instead of clouds.yaml); use with the OS_* creds."),
    ] = None,
    os_username: Annotated[
        str | None, typer.Option("--os-username", help="User (else clouds.yaml/$OS_USERNAME).")
    ] = None,
    os_password: Annotated[
        str | None, typer.Option("--os-password", help="Password (else clouds.yaml/$OS_PASSWORD).")
    ] = None,
    os_project_name: Annotated[
        str | None,
        typer.Option("--os-project-name", help="Project (else clouds.yaml/$OS_PROJECT_NAME)."),
    ] = None,
) -> None:
    """Isthmus: one OpenStack API in front of many clouds; each site is one availability zone."""
    ctx.obj = ConnectOptions(os_cloud, url, os_username, os_password, os_project_name)


@app.command()
def version() -> None:
    """Print the Isthmus version."""
    typer.echo(__version__)


# -- helpers ---------------------------------------------------------------------------------------


def _setup_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"Unknown log level {level!r}: debug, info, warning or error.")
    logging.basicConfig(
        level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _load(data_dir: Path, config_file: Path | None, **overrides: Any) -> Config:
    """The checked config (ConfigError); the caller then makes its data dir usable
    (`prepare_data_dir`) when it needs one, as the last check before starting."""
    data_dir = data_dir.expanduser().resolve()
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"Config file {config_file} does not exist.")
    return load_config(data_dir, config_file, **overrides)


def _take_pidfile(data_dir: Path) -> Path:
    """Write our pid to `<data-dir>/isthmus.pid`, refusing if a live Isthmus holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PIDFILE
    with contextlib.suppress(OSError, ValueError):
        other = int(path.read_text().strip())
        if other != os.getpid() and pid_alive(other):
            raise CommandError(
                f"Isthmus already runs on {data_dir} (pid {other}, {path}); stop it first."
            )
    path.write_text(f"{os.getpid()}\n")
    return path


def _drop_pidfile(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (a clear error if taken)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise CommandError(f"Cannot listen on {host}:{port}: {exc}") from exc
    return sock


def _client_url(config: Config, port: int) -> str:
    """The URL local clients use (clouds.yaml): the public URL, else host:port."""
    if config.public_url:
        return config.public_url.rstrip("/")
    host = config.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _ignore(signum: int, frame: FrameType | None) -> None:
    """After uvicorn has handled a signal it re-raises it; the process then stops cleanly."""


# -- server commands ----------------------------------------------------------------------


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help=f"Port (default: {DEFAULT_PORT}).")] = None,
    host: Annotated[str | None, typer.Option(help="Address (default: 127.0.0.1).")] = None,
    data_dir: DataDirOption = Path("data"),
    config_file: ConfigOption = None,
    database: DatabaseOption = None,
    workers: WorkersOption = None,
    public_url: Annotated[
        str | None, typer.Option(help="URL clients reach this service at (behind a proxy).")
    ] = None,
    log_level: LogLevelOption = "info",
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
    site_mode: Annotated[
        bool,
        typer.Option(
            "--site-mode",
            help="Serve exactly one embedded site (usable as an `openstack` site of another"
            " Isthmus through its clouds.yaml cloud `isthmus`).",
        ),
    ] = False,
    site_name: Annotated[
        str | None,
        typer.Option(
            help="Name (availability zone) of the one site in site mode (default: local)."
        ),
    ] = None,
) -> None:
    """Serve the OpenStack APIs and the admin API, with the engine, in this process.

    A fresh data dir gets three embedded sites (site-a, site-b, site-c), flavors, a
    default image, and admin/demo users whose passwords go to <data-dir>/secrets.yaml
    and <data-dir>/clouds.yaml. With --site-mode it gets exactly one embedded site
    (--site-name, default `local`) instead. Stops cleanly on SIGINT/SIGTERM.
    """
    _setup_logging(log_level)
    config = _load(
        data_dir,
        config_file,
        database=database,
        host=host,
        port=port,
        workers=workers,
        public_url=public_url,
        site_mode=True if site_mode else None,
        site_name=site_name,
    )
    if site_name is not None and not config.site_mode:
        raise ConfigError("--site-name names the one site of --site-mode; add --site-mode.")
    prepare_data_dir(config.data_dir)
    # the heavy imports only once the configuration is known to be usable
    import uvicorn

    from isthmus.api.admin.metrics import MetricsListener
    from isthmus.api.app import create_app
    from isthmus.cli.clouds import write_clouds_yaml
    from isthmus.service import Service

    pidfile = _take_pidfile(config.data_dir)
    previous = {
        sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    service: Service | None = None
    sock: socket.socket | None = None
    metrics_sock: socket.socket | None = None
    metrics: MetricsListener | None = None
    try:
        sock = _bind(config.host, config.port)
        config.port = sock.getsockname()[1]
        if config.metrics_listen:
            metrics_sock = _bind(*parse_listen("metrics_listen", config.metrics_listen))
        service = Service(config)
        service.bootstrap()
        service.start()
        if metrics_sock is not None:
            metrics = MetricsListener(service.db, metrics_sock)
            metrics.start()
        url = _client_url(config, config.port)
        clouds = write_clouds_yaml(config.data_dir / "clouds.yaml", url, service.passwords)
        _print_welcome(config, url, clouds)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(service),
                log_config=None,
                log_level=log_level.lower(),
                access_log=access_log,
                lifespan="off",
                timeout_graceful_shutdown=10,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
            )
        )
        for sig in previous:
            signal.signal(sig, _ignore)
        # what is built by now (modules, app, routes) lives as long as the process:
        # keep the collector from walking it again in every full collection (building
        # a page of 1000 servers allocates enough to set off several)
        gc.freeze()
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        for sig in previous:
            signal.signal(sig, _ignore)
        if metrics is not None:
            metrics.stop()
        if service is not None:
            service.stop()
        for listening in (sock, metrics_sock):
            if listening is not None:
                listening.close()
        _drop_pidfile(pidfile)
    err.print("Isthmus stopped.")


def _print_welcome(config: Config, url: str, clouds: Path) -> None:
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"[bold]Isthmus {__version__}[/] serving [bold]{url}[/] (pid {os.getpid()})")
    out.print(f"  data dir     {config.data_dir}")
    out.print(f"  database     {_safe_url(config.database_url)}")
    out.print(f"  clouds.yaml  {clouds}  (clouds: isthmus = admin, isthmus-demo = demo member)")
    out.print(f"  credentials  {config.data_dir / 'secrets.yaml'}")
    out.print(f"  admin API    {url}/isthmus/v1  (docs: {url}/isthmus/v1/docs)")
    if config.metrics_listen:
        out.print(f"  metrics      http://{config.metrics_listen}/metrics  (no token, loopback)")
    else:
        out.print(f"  metrics      {url}/metrics  (admin token: X-Auth-Token or Bearer)")
    if config.site_mode:
        out.print(
            f"  site mode    one embedded site, availability zone [bold]{config.site_name}[/];"
            " another Isthmus can use this one as an `openstack` site (cloud `isthmus`)"
        )
    out.print("Use it with:")
    out.print(f"  export OS_CLIENT_CONFIG_FILE={clouds}")
    out.print("  openstack --os-cloud isthmus server list")
    out.print("  isthmus site list")
    out.print(
        f"Stop with Ctrl-C, SIGTERM or `isthmus down --data-dir {config.data_dir}`"
        " (which also tears the embedded data plane down).",
        style="dim",
    )
    sys.stdout.flush()


def _safe_url(url: str) -> str:
    """A database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


@app.command()
def worker(
    data_dir: DataDirOption = Path("data"),
    config_file: ConfigOption = None,
    database: DatabaseOption = None,
    workers: WorkersOption = None,
    log_level: LogLevelOption = "info",
) -> None:
    """Run engine and health monitor only, no API, until SIGINT/SIGTERM.

    For more workers on a PostgreSQL database that `isthmus up` (or `isthmus migrate`)
    set up. Embedded sites keep their state under the data dir: share it with `up`.
    """
    _setup_logging(log_level)
    config = _load(data_dir, config_file, database=database, workers=workers)
    prepare_data_dir(config.data_dir)  # embedded sites keep their state there
    from sqlalchemy import inspect

    from isthmus.service import Service

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    service = Service(config, run_engine=True)
    try:
        if not inspect(service.db.engine).has_table("sites"):
            raise CommandError(
                f"The database {_safe_url(config.database_url)} has no Isthmus schema:"
                " run `isthmus migrate` or `isthmus up` first."
            )
        service.start()
        err.print(f"Isthmus worker {service.engine.owner} running (pid {os.getpid()}).")
        while not stop.wait(1.0):
            pass
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    err.print("Isthmus worker stopped.")


@app.command()
def migrate(
    data_dir: DataDirOption = Path("data"),
    config_file: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Bring the database schema to the newest revision (idempotent); says what it did:
    created the schema, upgraded it from one revision to another, or found it current."""
    from isthmus.store.db import Database

    config = _load(data_dir, config_file, database=database)
    if config.database is None:  # the data dir's SQLite
        prepare_data_dir(config.data_dir)
    if config.database is None:  # the default SQLite file in the data dir: private at once
        from isthmus.private_files import secure_data_dir

        secure_data_dir(config.data_dir, config.database_url)
    db = Database(config.database_url)
    try:
        before = _schema_revision(db)
        db.migrate()
        after = _schema_revision(db)
    finally:
        db.dispose()
    typer.echo(_migrated(_safe_url(config.database_url), before, after))


def _schema_revision(db: Database) -> str | None:
    """The alembic revision the database's schema is at; None when it has none yet."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _migrated(database: str, before: str | None, after: str | None) -> str:
    """What `isthmus migrate` did, in one line."""
    if before is None:
        return f"Created the schema of {database} at revision {after}; it is up to date."
    if before != after:
        return (
            f"Upgraded the schema of {database} from revision {before} to {after};"
            " it is up to date."
        )
    return f"Schema of {database} is up to date: already at revision {after}."


app.command()(down)
app.add_typer(site_app, name="site")
app.add_typer(resource_app, name="resource")
app.command("work")(work_command)
app.add_typer(server_app, name="server")
app.add_typer(token_keys_app, name="token-keys")


def main() -> None:
    """Console-script entry point: expected errors print one `Error:` line and exit 1,
    configuration errors exit 2."""
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]Error:[/] {escape(_one_line(exc.message))}")
        raise SystemExit(2) from None
    except IsthmusError as exc:
        err.print(f"[red]Error:[/] {escape(_one_line(exc.message))}")
        raise SystemExit(1) from None
    except Exception as exc:
        if _is_database_error(exc):  # the database cannot be reached or used
            err.print(f"[red]Error:[/] database: {str(getattr(exc, 'orig', exc)).strip()}")
            raise SystemExit(1) from None
        raise
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _is_database_error(exc: Exception) -> bool:
    if "sqlalchemy" not in sys.modules:  # keeps the client commands' start-up light
        return False
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)
