"""The real `isthmus` command: `isthmus up` as a subprocess on a free port, driven by
the real `openstack` CLI and by `isthmus site ...`; every process started here is
stopped by its exact pid, also when a test fails."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.isthmus_process import (
    ISTHMUS,
    Running,
    clean_env,
    free_port,
    run_cli,
    start_isthmus,
)
from tests.fixtures.openstack_cli import openstack_json, run_openstack
from tests.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.cli


def isthmus(running: Running, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = run_cli(*args, OS_CLIENT_CONFIG_FILE=str(running.clouds_yaml))
    if check and proc.returncode != 0:
        raise AssertionError(
            f"isthmus {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def site_list(running: Running) -> dict[str, dict[str, Any]]:
    listed = json.loads(isthmus(running, "site", "list", "--json").stdout)
    return {site["name"]: site for site in listed}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_isthmus(tmp_path_factory.mktemp("cli") / "data")
    try:
        yield running
    finally:
        running.stop()


def test_clouds_yaml_pidfile_and_welcome(served: Running) -> None:
    document = yaml.safe_load(served.clouds_yaml.read_text())
    assert set(document["clouds"]) == {"isthmus", "isthmus-demo"}
    secrets = yaml.safe_load((served.data_dir / "secrets.yaml").read_text())
    admin = document["clouds"]["isthmus"]["auth"]
    assert admin["auth_url"] == f"{served.url}/identity/v3"
    assert admin["username"] == "admin" and admin["password"] == secrets["admin"]
    assert document["clouds"]["isthmus-demo"]["auth"]["password"] == secrets["demo"]
    assert (served.data_dir / "isthmus.pid").read_text().strip() == str(served.proc.pid)
    output = served.output()
    assert f"export OS_CLIENT_CONFIG_FILE={served.clouds_yaml}" in output
    assert "openstack --os-cloud isthmus server list" in output


def test_openstack_cli_talks_to_it(served: Running) -> None:
    if importlib.util.find_spec("isthmus.api.compute.servers") is not None:
        zones = openstack_json(
            ["availability", "zone", "list", "--compute"], served.clouds_yaml, "isthmus"
        )
        assert {z["Zone Name"] for z in zones} >= {"site-a", "site-b", "site-c"}
    token = openstack_json(["token", "issue"], served.clouds_yaml, "isthmus")
    assert token["id"]
    projects = openstack_json(["project", "list"], served.clouds_yaml, "isthmus")
    assert {"admin", "demo"} <= {p["Name"] for p in projects}
    if importlib.util.find_spec("isthmus.api.image.images") is not None:
        images = openstack_json(["image", "list"], served.clouds_yaml, "isthmus")
        image = next(i for i in images if i["Name"] == "isthmus-minimal")
        shown = isthmus(served, "resource", "show", image["ID"]).stdout
        assert "isthmus-minimal" in shown and "Queued work: none" in shown


def test_site_list_shows_three_sites_up(served: Running) -> None:
    listed = site_list(served)
    assert sorted(listed) == ["site-a", "site-b", "site-c"]
    assert {site["health"] for site in listed.values()} == {"up"}
    table = isthmus(served, "site", "list").stdout
    for header in ("Name", "Driver", "Zone", "Health", "Last error", "vCPU", "Queued work"):
        assert header in table
    rows = [line for line in table.splitlines() if "site-" in line]
    assert len(rows) == 3 and all(" up " in row for row in rows)


def test_site_add_down_up_remove(served: Running) -> None:
    wrong = ("site", "add", "site-d", "--driver", "local", "--cloud", "region-one")
    refused = isthmus(served, *wrong, check=False)
    assert refused.returncode == 1 and "--cloud and --clouds-yaml are for --driver openstack" in (
        refused.stderr
    )
    assert "site-d" not in site_list(served)  # nothing was sent
    added = isthmus(served, "site", "add", "site-d", "--driver", "local", "--set", "vcpus=8")
    assert "site-d" in added.stdout
    site = site_list(served)["site-d"]
    assert site["health"] == "up" and site["capacity"]["vcpus"] == 8

    down = isthmus(served, "site", "down", "site-d")
    assert "down" in down.stdout
    site = site_list(served)["site-d"]
    assert site["health"] == "down"
    assert "site-d is down" in site["last_error"]
    row = [line for line in isthmus(served, "site", "list").stdout.splitlines() if "site-d" in line]
    assert " down " in row[0] and "is down" in row[0]

    isthmus(served, "site", "up", "site-d")
    site = site_list(served)["site-d"]
    assert site["health"] == "up" and site["last_error"] is None

    isthmus(served, "site", "disable", "site-d")
    assert site_list(served)["site-d"]["enabled"] is False
    isthmus(served, "site", "enable", "site-d")
    shown = json.loads(isthmus(served, "site", "show", "site-d", "--json").stdout)
    assert shown["enabled"] is True

    isthmus(served, "site", "remove", "site-d")
    assert "site-d" not in site_list(served)


def test_expected_errors_exit_1_without_traceback(served: Running) -> None:
    for args, message in (
        (("site", "show", "nope"), "Site nope could not be found"),
        (("site", "add", "site-x", "--driver", "aws"), "Unknown site driver 'aws'"),
        (("site", "add", "site-a"), "already exists"),
        (("site", "add", "bad name"), "Invalid site name"),
        (("site", "add", "site-x", "--set", "nokey"), "key=value"),
        (("resource", "show", "nope"), "nope"),
    ):
        proc = isthmus(served, *args, check=False)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = isthmus(served, "--os-cloud", "isthmus-demo", "site", "list", check=False)
    assert proc.returncode == 1 and "Policy does not allow" in proc.stderr
    proc = isthmus(served, "--os-cloud", "missing", "site", "list", check=False)
    assert proc.returncode == 1 and "No cloud 'missing'" in proc.stderr
    second = run_cli("up", "--port", str(free_port()), "--data-dir", str(served.data_dir))
    assert second.returncode == 1 and "already runs" in second.stderr


def test_url_and_env_credentials_and_work(served: Running) -> None:
    secrets = yaml.safe_load((served.data_dir / "secrets.yaml").read_text())
    proc = run_cli(
        *("--url", served.url, "work", "--json"),
        OS_USERNAME="admin",
        OS_PASSWORD=secrets["admin"],
        OS_PROJECT_NAME="admin",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"] == 0
    assert "Queued work" in isthmus(served, "work").stdout


def test_worker_runs_beside_up_and_stops_on_sigterm(served: Running, tmp_path: Path) -> None:
    empty = run_cli("worker", "--database", f"sqlite:///{tmp_path}/empty.db")
    assert empty.returncode == 1 and "no Isthmus schema" in empty.stderr
    assert "Traceback" not in empty.stderr
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(ISTHMUS), "worker", "--data-dir", str(served.data_dir), "--workers", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )
    try:

        def running() -> bool:
            if "running" in log.read_text():
                return True
            assert worker.poll() is None, log.read_text()
            return False

        with contextlib.suppress(WaitTimeout):  # the assertion below says it
            wait_for(running, timeout=30, what="the worker to say it is running")
        assert "running" in log.read_text()
        assert site_list(served)["site-a"]["health"] == "up"
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.wait(timeout=10)
    assert code == 0, log.read_text()
    assert "worker stopped" in log.read_text()


def test_migrate(tmp_path: Path) -> None:
    proc = run_cli("migrate", "--database", f"sqlite:///{tmp_path}/m.db")
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert (tmp_path / "m.db").exists()


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from isthmus.store.db import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    database = f"sqlite:///{tmp_path}/new.db"
    created = run_cli("migrate", "--database", database)
    assert created.returncode == 0, created.stderr
    assert f"Created the schema of {database} at revision {head}" in created.stdout
    again = run_cli("migrate", "--database", database)
    assert again.returncode == 0, again.stderr
    assert f"up to date: already at revision {head}" in again.stdout
    assert "Created" not in again.stdout


def test_restart_keeps_data_and_passwords(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_isthmus(data_dir)
    try:
        secrets = (data_dir / "secrets.yaml").read_text()
        run = run_openstack(["project", "create", "kept"], first.clouds_yaml, "isthmus")
        assert run.returncode == 0, run.stderr
        isthmus(first, "site", "add", "site-k")
    finally:
        code = first.stop()
    assert code == 0, first.output()
    assert not (data_dir / "isthmus.pid").exists()
    second = start_isthmus(data_dir)
    try:
        assert (data_dir / "secrets.yaml").read_text() == secrets
        projects = openstack_json(["project", "list"], second.clouds_yaml, "isthmus")
        assert "kept" in {p["Name"] for p in projects}
        listed = site_list(second)
        assert sorted(listed) == ["site-a", "site-b", "site-c", "site-k"]
        assert listed["site-k"]["health"] == "up"
    finally:
        assert second.stop() == 0, second.output()


def _down(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("down", "--data-dir", str(data_dir), *extra)


def test_down_with_nothing_running_succeeds(tmp_path: Path) -> None:
    missing = _down(tmp_path / "never-made")
    assert missing.returncode == 0, missing.stderr
    assert "Nothing to stop" in missing.stdout and "does not exist" in missing.stdout
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    empty = _down(data_dir)
    assert empty.returncode == 0, empty.stderr
    assert f"Isthmus is not running on {data_dir} (no isthmus.pid)" in empty.stdout
    assert "No embedded data plane was running." in empty.stdout
    (data_dir / "isthmus.pid").write_text("999999999\n")  # no such pid
    stale = _down(data_dir)
    assert stale.returncode == 0, stale.stderr
    assert "removed the stale" in stale.stdout
    assert not (data_dir / "isthmus.pid").exists()


def test_down_stops_up_by_its_pidfile(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    running = start_isthmus(data_dir)
    try:
        stopped = _down(data_dir)
        assert stopped.returncode == 0, stopped.stderr
        assert f"Stopped Isthmus (pid {running.proc.pid}, SIGTERM)." in stopped.stdout
        assert running.proc.wait(timeout=10) == 0, running.output()
        assert not (data_dir / "isthmus.pid").exists()
        assert (data_dir / "isthmus.db").exists()  # the store stays
        again = _down(data_dir)
        assert again.returncode == 0 and "Isthmus is not running" in again.stdout
    finally:
        running.stop()


def test_down_waits_then_refuses_or_forces(tmp_path: Path) -> None:
    """A stand-in for a hung service: a real process, named like Isthmus, that
    ignores SIGTERM (started and ended here by its own pid)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    code += " print('ready', flush=True); time.sleep(120)"
    hung = subprocess.Popen(
        [sys.executable, "-c", code, "isthmus-hung-stand-in"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert hung.stdout is not None and hung.stdout.readline().strip() == "ready"
        (data_dir / "isthmus.pid").write_text(f"{hung.pid}\n")
        refused = _down(data_dir, "--timeout", "0.5")
        assert refused.returncode == 1
        assert f"Isthmus (pid {hung.pid}) is still running 0.5 s after SIGTERM" in refused.stderr
        assert "--force" in refused.stderr and "Traceback" not in refused.stderr
        assert hung.poll() is None and (data_dir / "isthmus.pid").exists()
        forced = _down(data_dir, "--timeout", "0.5", "--force")
        assert forced.returncode == 0, forced.stderr
        assert f"Killed Isthmus (pid {hung.pid}, SIGKILL after 0.5 s)." in forced.stdout
        assert hung.wait(timeout=10) == -signal.SIGKILL
        assert not (data_dir / "isthmus.pid").exists()
    finally:
        if hung.poll() is None:
            hung.kill()
        hung.wait(timeout=10)
