#!/usr/bin/env python3
"""A real OpenStack site (Debian bookworm's Zed packages) on loopback, for Isthmus's tests
and benchmarks.

    site.py up WORK [--name NAME] [--install]   bring one full site up in directory WORK
    site.py down WORK                           stop every process it started (by pid)
    site.py restart WORK SERVICE                start SERVICE again, same command line

`up` starts, all on 127.0.0.1 with free ports (nothing else on the machine is touched):
a private PostgreSQL and RabbitMQ (with its own epmd), Keystone and Placement (uwsgi),
Neutron (ML2 with the agent-less `fakebind` mechanism driver, no RPC; the `bgpvpn` service
plugin with its Dummy driver), Glance (file store), Nova (api, conductor, scheduler and
compute with `fake.FakeDriver`), Cinder (api, scheduler, volume with the fake logging
driver and a volume type `fake`), then adds flavors, a tiny public image and a project
`isthmus` (user `isthmus`, role member, roomy quotas) and writes WORK/clouds.yaml (clouds
`os-site` for that project and `os-site-admin`).

Everything lives in WORK: configs, databases, logs (WORK/logs), one pidfile per process
(WORK/pids/SERVICE.pid; each process leads its own process group). WORK/site.json is written
last: {"status": "ready"|"failed", "error", "services": {name: {argv, env, url, log}}, ...};
the pytest fixture (tests/fixtures/openstack_site.py) waits for it. `down` signals exactly
the recorded process groups (SIGTERM, then SIGKILL), never anything by name.

Needs root (PostgreSQL and RabbitMQ run as their Debian users) and the packages in
packages.txt (`--install` installs the missing ones with apt-get). Exit code 3 means "cannot
run here" (not root, packages missing), 1 a failed bring-up (see WORK/logs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from site_catalog import QUOTAS, REGION, Catalog  # noqa: E402
from site_configs import ConfigFiles  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CANNOT_RUN = 3
NOVA_COMPUTE = (
    "import sys; from nova.cmd.compute import main; sys.argv[0] = 'nova-compute'; sys.exit(main())"
)


class CannotRun(Exception):
    """This machine cannot run the site (not root, packages missing)."""


def log(message: str) -> None:
    print(f"[openstack-site] {time.strftime('%H:%M:%S')} {message}", flush=True)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(taken: set[int] | None = None) -> int:
    """A free loopback port outside the kernel's ephemeral range.

    The site picks its ports ~25 s before the services bind them. A port from
    the ephemeral range (what binding port 0 gives) can meanwhile become the
    local end of any outgoing connection on the machine, and the service then
    dies with "address already in use" (seen in CI). Ports below the range are
    only ever handed out by an explicit bind, so they stay free.
    """
    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(low - 12000, 1024), low)
        if taken and port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def packages() -> list[str]:
    lines = (HERE / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def missing_packages() -> list[str]:
    missing = []
    for package in packages():
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if proc.stdout.strip() != "install ok installed":
            missing.append(package)
    return missing


def install_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdin=subprocess.DEVNULL)
    subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            *missing,
        ],
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def wait_http(
    url: str, timeout: float = 120.0, proc_alive: Callable[[], bool] | None = None
) -> None:
    """Until `url` answers at all (any HTTP status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc_alive is not None and not proc_alive():
                raise RuntimeError(f"the process serving {url} died") from None
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def wait_tcp(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class Site(ConfigFiles, Catalog):
    """One site in one work directory."""

    def __init__(self, work: Path, name: str = "os1") -> None:
        self.work = work.resolve()
        self.name = name
        self.logs = self.work / "logs"
        self.pids = self.work / "pids"
        self.etc = self.work / "etc"
        self.state_file = self.work / "site.json"
        self.services: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, int] = {}
        self.password = ""
        self.timings: dict[str, float] = {}
        self.t0 = time.monotonic()

    # -- processes ---------------------------------------------------------------------

    def base_env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        env.update(extra)
        return env

    def run(self, name: str, argv: list[str], user: str | None = None, **env: str) -> None:
        """Run a one-shot command to completion, its output in logs/NAME.log."""
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.base_env(**env),
                user=user,
                cwd=self.work,
            )
        if proc.returncode != 0:
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name}: {argv[0]} exited {proc.returncode}:\n{tail}")

    def spawn(
        self, name: str, argv: list[str], *, url: str = "", user: str | None = None, **env: str
    ) -> int:
        """Start a long-running service in its own process group; pidfile + record."""
        record = {
            "argv": argv,
            "env": self.base_env(**env),
            "user": user,
            "url": url,
            "log": str(self.logs / f"{name}.out"),
        }
        self.services[name] = record
        return self.start(name)

    def start(self, name: str) -> int:
        record = self.services[name]
        with open(record["log"], "ab") as out:
            proc = subprocess.Popen(
                record["argv"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=record["env"],
                user=record["user"],
                cwd=self.work,
                start_new_session=True,
            )
        (self.pids / f"{name}.pid").write_text(f"{proc.pid}\n")
        record["pid"] = proc.pid
        return proc.pid

    def alive(self, name: str) -> Callable[[], bool]:
        def check() -> bool:
            try:
                os.kill(self.services[name]["pid"], 0)
            except ProcessLookupError:
                return False
            # a zombie child of ours is dead too
            stat = Path(f"/proc/{self.services[name]['pid']}/stat").read_text()
            return stat.rsplit(")", 1)[1].split()[0] != "Z"

        return check

    def wait_service(self, name: str, timeout: float) -> None:
        """Until service NAME answers on its URL; if it dies, say which and why."""
        record = self.services[name]
        try:
            wait_http(record["url"], timeout, self.alive(name))
        except RuntimeError as exc:
            tail = Path(record["log"]).read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{name}: {exc}; the end of {record['log']}:\n{tail}") from None

    def lap(self, what: str) -> None:
        self.timings[what] = round(time.monotonic() - self.t0, 1)
        log(f"{what}: {self.timings[what]} s")

    # -- bring-up -----------------------------------------------------------------------

    def up(self) -> None:
        if os.geteuid() != 0:
            raise CannotRun("needs root (PostgreSQL and RabbitMQ run as their own users)")
        missing = missing_packages()
        if missing:
            raise CannotRun(f"Debian packages missing: {' '.join(missing)}")
        for d in (self.work, self.logs, self.pids, self.etc):
            d.mkdir(parents=True, exist_ok=True)
        self.work.chmod(0o755)
        self.logs.chmod(0o777)
        self.password = secrets.token_hex(12)
        for key in (
            "pg",
            "amqp",
            "dist",
            "epmd",
            "keystone",
            "neutron",
            "glance",
            "placement",
            "nova",
            "cinder",
        ):
            self.ports[key] = free_port(set(self.ports.values()))
        self.write_state("starting")
        self.start_postgres()
        self.start_rabbit()
        self.lap("postgres+rabbit")
        self.write_configs()
        with ThreadPoolExecutor(max_workers=6) as pool:
            jobs = [
                pool.submit(job)
                for job in (
                    self.keystone_db,
                    self.neutron_db,
                    self.nova_db,
                    self.glance_db,
                    self.placement_db,
                    self.cinder_db,
                )
            ]
            for job in jobs:
                job.result()
        self.lap("databases-synced")
        self.start_services()
        self.populate()
        self.write_clouds_yaml()
        self.write_state("ready")
        self.lap("ready")

    def start_postgres(self) -> None:
        data = self.work / "pgdata"
        data.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(data, "postgres", "postgres")
        self.run(
            "initdb",
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            user="postgres",
        )
        port = self.ports["pg"]
        self.spawn(
            "postgres",
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(self.logs),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
            ],
            user="postgres",
        )
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline or not self.alive("postgres")():
                raise RuntimeError("PostgreSQL did not start (logs/postgres.out)")
            time.sleep(0.2)
        sql = "".join(
            f"CREATE DATABASE {db};"
            for db in (
                "keystone",
                "neutron",
                "glance",
                "placement",
                "nova_api",
                "nova",
                "nova_cell0",
                "cinder",
            )
        )
        for statement in sql.rstrip(";").split(";"):
            self.run(
                "createdb",
                [
                    str(PG_BIN.parent / "bin" / "psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-qc",
                    statement,
                ],
            )

    def start_rabbit(self) -> None:
        base = self.work / "rabbit"
        base.mkdir(exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        for path in (base, base / "enabled_plugins"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        env = {
            "HOME": str(base),
            "ERL_EPMD_PORT": str(self.ports["epmd"]),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.spawn(
            "epmd", ["/usr/bin/epmd", "-port", str(self.ports["epmd"])], user="rabbitmq", **env
        )
        wait_tcp(self.ports["epmd"], 30)
        self.spawn(
            "rabbitmq",
            ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            user="rabbitmq",
            **env,
            RABBITMQ_NODENAME=f"isthmus{self.ports['amqp']}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.ports["amqp"]),
            RABBITMQ_DIST_PORT=str(self.ports["dist"]),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
        )

    # -- databases (run in parallel) ------------------------------------------------------------

    def keystone_db(self) -> None:
        conf = ["--config-file", str(self.etc / "keystone.conf")]
        self.run("keystone-db", ["keystone-manage", *conf, "db_sync"])
        for what in ("fernet_setup", "credential_setup"):
            self.run(
                "keystone-db",
                [
                    "keystone-manage",
                    *conf,
                    what,
                    "--keystone-user",
                    "root",
                    "--keystone-group",
                    "root",
                ],
            )
        url = f"{self.url('keystone')}/"
        self.run(
            "keystone-db",
            [
                "keystone-manage",
                *conf,
                "bootstrap",
                "--bootstrap-password",
                self.password,
                "--bootstrap-public-url",
                url,
                "--bootstrap-internal-url",
                url,
                "--bootstrap-region-id",
                REGION,
            ],
        )
        ini = self.uwsgi_ini(
            "keystone",
            self.ports["keystone"],
            "/usr/bin/keystone-wsgi-public",
            f"OS_KEYSTONE_CONFIG_FILES={self.etc / 'keystone.conf'}",
        )
        self.spawn("keystone", ["uwsgi", "--ini", str(ini)], url=url)
        self.wait_service("keystone", 120)
        self.lap("keystone-up")
        # service users first: Nova and Cinder services authenticate as they start
        self.register()
        self.lap("keystone-registered")

    def neutron_db(self) -> None:
        self.run(
            "neutron-db",
            [
                "neutron-db-manage",
                "--config-file",
                str(self.etc / "neutron.conf"),
                "upgrade",
                "heads",
            ],
        )
        self.lap("neutron-db")

    def nova_db(self) -> None:
        manage = ["nova-manage", "--config-file", str(self.etc / "nova.conf")]
        self.run("nova-db", [*manage, "api_db", "sync"])
        self.run(
            "nova-db",
            [*manage, "cell_v2", "map_cell0", "--database_connection", self.db("nova_cell0")],
        )
        self.run("nova-db", [*manage, "cell_v2", "create_cell", "--name", "cell1"])
        self.run("nova-db", [*manage, "db", "sync"])
        self.lap("nova-db")

    def glance_db(self) -> None:
        self.run(
            "glance-db",
            ["glance-manage", "--config-file", str(self.etc / "glance-api.conf"), "db_sync"],
        )

    def placement_db(self) -> None:
        self.run(
            "placement-db",
            [
                "placement-manage",
                "--config-file",
                str(self.etc / "placement" / "placement.conf"),
                "db",
                "sync",
            ],
        )

    def cinder_db(self) -> None:
        self.run(
            "cinder-db",
            ["cinder-manage", "--config-file", str(self.etc / "cinder.conf"), "db", "sync"],
        )

    # -- services -------------------------------------------------------------------------------

    def start_services(self) -> None:
        etc, p = self.etc, self.ports
        self.spawn(
            "neutron-server",
            ["neutron-server", "--config-file", str(etc / "neutron.conf")],
            url=f"http://127.0.0.1:{p['neutron']}/",
            PYTHONPATH=str(HERE / "plugins"),
        )
        self.spawn(
            "glance-api",
            ["glance-api", "--config-file", str(etc / "glance-api.conf")],
            url=f"http://127.0.0.1:{p['glance']}/",
        )
        ini = self.uwsgi_ini(
            "placement",
            p["placement"],
            "/usr/bin/placement-api",
            f"OS_PLACEMENT_CONFIG_DIR={etc / 'placement'}",
        )
        self.spawn(
            "placement", ["uwsgi", "--ini", str(ini)], url=f"http://127.0.0.1:{p['placement']}/"
        )
        wait_tcp(p["amqp"], 120)
        self.lap("rabbit-up")
        nova = ["--config-file", str(etc / "nova.conf")]
        self.spawn("nova-api", ["nova-api", *nova], url=f"http://127.0.0.1:{p['nova']}/")
        self.spawn("nova-conductor", ["nova-conductor", *nova])
        self.spawn("nova-scheduler", ["nova-scheduler", *nova])
        self.spawn(
            "nova-compute",
            [
                "/usr/bin/python3",
                "-c",
                NOVA_COMPUTE,
                "--config-file",
                str(etc / "nova-compute.conf"),
                "--log-file",
                str(self.logs / "nova" / "nova-compute.log"),
            ],
        )
        cinder = ["--config-file", str(etc / "cinder.conf")]
        self.spawn("cinder-api", ["cinder-api", *cinder], url=f"http://127.0.0.1:{p['cinder']}/")
        self.spawn("cinder-scheduler", ["cinder-scheduler", *cinder])
        self.spawn("cinder-volume", ["cinder-volume", *cinder])
        for name, record in self.services.items():
            if record["url"]:
                self.wait_service(name, 180)
        self.lap("apis-answer")

    def write_state(self, status: str, error: str = "") -> None:
        state = {
            "status": status,
            "error": error,
            "name": self.name,
            "region": REGION,
            "clouds_yaml": str(self.work / "clouds.yaml"),
            "cloud": "os-site",
            "admin_cloud": "os-site-admin",
            "default_image": "cirros-tiny",
            "quotas": QUOTAS,
            "ports": self.ports,
            "timings": self.timings,
            "services": self.services,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_file)

    # -- teardown and restart ------------------------------------------------------------------

    def load(self) -> None:
        state = json.loads(self.state_file.read_text())
        self.services = state["services"]
        self.ports = state["ports"]
        self.timings = state["timings"]
        self.name = state["name"]
        self.status = state["status"]
        self.error = state["error"]

    def down(self) -> None:
        """SIGTERM every recorded process group, SIGKILL what is left after 15 s."""
        groups = []
        for pidfile in sorted(self.pids.glob("*.pid")):
            pid = int(pidfile.read_text())
            try:
                os.killpg(pid, signal.SIGCONT)  # a stopped one would not see SIGTERM
                os.killpg(pid, signal.SIGTERM)
                groups.append(pid)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while groups and time.monotonic() < deadline:
            groups = [g for g in groups if group_alive(g)]
            time.sleep(0.2)
        for pid in groups:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pidfile in self.pids.glob("*.pid"):
            pidfile.unlink()

    def restart(self, name: str) -> int:
        self.load()
        pid = self.start(name)
        self.write_state(self.status, self.error)
        return pid


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("work", type=Path)
    up.add_argument("--name", default="os1")
    up.add_argument("--install", action="store_true", help="apt-get install missing packages")
    down = sub.add_parser("down")
    down.add_argument("work", type=Path)
    restart = sub.add_parser("restart")
    restart.add_argument("work", type=Path)
    restart.add_argument("service")
    sub.add_parser("packages", help="print the packages missing here")
    args = parser.parse_args(argv)
    if args.command == "packages":
        print(" ".join(missing_packages()))
        return 0
    site = Site(args.work, getattr(args, "name", "os1"))
    if args.command == "down":
        site.down()
        log(f"down: {args.work}")
        return 0
    if args.command == "restart":
        print(site.restart(args.service))
        return 0
    try:
        if args.install and os.geteuid() == 0:
            install_packages()
        site.up()
    except CannotRun as exc:
        site.work.mkdir(parents=True, exist_ok=True)
        site.write_state("unavailable", str(exc))
        log(f"cannot run here: {exc}")
        return CANNOT_RUN
    except Exception as exc:
        log(f"FAILED: {exc}")
        site.write_state("failed", f"{type(exc).__name__}: {exc}")
        site.down()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
