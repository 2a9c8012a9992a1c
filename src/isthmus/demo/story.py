"""`python -m isthmus.demo` (what `make demo` runs): Isthmus end to end, with the
unmodified `openstack` CLI.

It starts `isthmus up` as a subprocess on a free loopback port with a temporary
data dir, and then, as the demo project (cloud `isthmus-demo` of the generated
clouds.yaml): creates a network and a subnet, boots one server in each
availability zone (site-a, site-b, site-c) with `--wait`, creates a volume in
site-a and attaches it to the server there, uploads an image, lists everything
with the site each thing lives in (plus `isthmus site list`), cleans up, and stops
the service (SIGTERM to its exact pid). Exit 0 when every step worked; otherwise
1, naming the step that failed and showing the service's log.

The service runs with `fabric: embedded`. Where the embedded data plane can run
(root, FRR, nft, nsenter: fabric/capability.py), after booting, the servers ping
each other and a second tenant with the same CIDR shows it cannot reach them
(the fabric chapter, demo/fabric.py); the fabric (its FRR daemons and namespaces)
is torn down after the service stops, by the function `isthmus down` uses
(cli/down.py). Elsewhere the demo says it runs control-plane only, and why, and
skips the pings (`isthmus site list` says so too).

This module is the story; its chapters are passed in (`Demo(..., chapters=...)`,
each a `Chapter`): they run once the servers are ACTIVE and the volume attached,
and clean up first in the cleanup step. The story imports none of them; a chapter
imports the story (`Demo`, `DemoFailed`, `demo_env`); demo/__main__.py, the entry
point, assembles the two.

openstacksdk is used only to wait for states the CLI cannot wait for (a volume
becoming available, a server being gone), polling quickly.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx
from rich.console import Console

from isthmus.fabric import capability

ZONES = ("site-a", "site-b", "site-c")
CLOUD = "isthmus-demo"
NETWORK, SUBNET, CIDR = "demo-net", "demo-subnet", "10.20.0.0/24"
VOLUME, IMAGE, FLAVOR, BOOT_IMAGE = "demo-vol", "demo-image", "m1.tiny", "isthmus-minimal"


class DemoFailed(Exception):
    """A step did not work; the message says what happened."""


class Chapter(Protocol):
    """A part of the story told after the servers booted (one per availability zone,
    the volume attached to demo-site-a) and before everything is listed."""

    def run(self, demo: Demo, servers: dict[str, dict[str, Any]]) -> None:
        """Tell the chapter (`servers`: the demo project's servers by zone, as
        `openstack server create -f json` gave them); DemoFailed when it went wrong."""
        ...

    def cleanup(self, demo: Demo) -> None:
        """Remove what `run` made (the first thing the cleanup step does); skip what
        was never made."""
        ...


def bin_path(name: str) -> Path:
    """A command installed beside this Python (the venv's `openstack`)."""
    return Path(sys.executable).parent / name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Demo:
    """One run of the demo in `workdir`, printing to `console`, telling `chapters`
    in order after the servers booted."""

    def __init__(self, workdir: Path, console: Console, chapters: Sequence[Chapter] = ()) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.console = console
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "isthmus-up.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sdk: Any = None
        self.servers: dict[str, dict[str, Any]] = {}
        self.data_plane_missing = capability.missing()  # None: the pings run
        self.chapters = list(chapters)

    @property
    def clouds_yaml(self) -> Path:
        return self.data_dir / "clouds.yaml"

    # -- output ---------------------------------------------------------------------------

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.console.print(f"[bold cyan]▶[/] {title}")
        started = time.monotonic()
        try:
            yield
        except DemoFailed:
            self.console.print(f"  [red]✗ failed after {time.monotonic() - started:.1f}s[/]")
            raise
        self.console.print(f"  [green]✓[/] [dim]{time.monotonic() - started:.1f}s[/]")

    def say(self, text: str) -> None:
        self.console.print(f"  {text}", highlight=False)

    def show(self, command: str, output: str) -> None:
        self.console.print(f"  [dim]$ {command}[/]", highlight=False)
        self.console.print(output.rstrip("\n"), highlight=False, soft_wrap=True)

    # -- the service ------------------------------------------------------------------------

    def start_service(self) -> None:
        with self.step(f"Starting `isthmus up` on {self.url} (data dir {self.data_dir})"):
            self.data_dir.mkdir(parents=True)
            cmd = [sys.executable, "-m", "isthmus.cli", "up", "--port", str(self.port)]
            cmd += ["--data-dir", str(self.data_dir), "--log-level", "warning"]
            config = self.workdir / "isthmus.yaml"  # where it cannot run, sites say why
            config.write_text("fabric: embedded\n")
            cmd += ["--config", str(config)]
            with self.log.open("wb") as out:
                self.proc = subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=demo_env(),
                )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise DemoFailed(f"isthmus up exited with status {self.proc.returncode}")
                try:
                    if httpx.get(f"{self.url}/isthmus/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise DemoFailed("isthmus up did not answer /isthmus/v1/health within 60 s")
            self.say(f"pid {self.proc.pid}; clouds.yaml at {self.clouds_yaml}")
            if self.data_plane_missing is None:
                self.say(f"data plane: {capability.DATA_PLANE} (fabric: embedded)")
            else:
                self.say(
                    f"[yellow]data plane unavailable ({self.data_plane_missing}):"
                    " control-plane only, the pings will be skipped[/]"
                )

    def teardown_fabric(self) -> None:
        """After the service stopped: stop the FRR daemons and remove the namespaces
        the embedded fabrics recorded in this run's data dir (nothing else), as
        `isthmus down` does."""
        if self.data_plane_missing is None and self.data_dir.is_dir():
            from isthmus.cli.down import teardown_data_planes
            from isthmus.config import load_config

            config = load_config(self.data_dir, self.workdir / "isthmus.yaml")
            for line in teardown_data_planes(config):
                self.console.print(f"[dim]{line}[/]", highlight=False)

    def stop_service(self) -> int | None:
        """SIGTERM to exactly the pid we started, then wait; its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def service_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- the openstack CLI -----------------------------------------------------------------------

    def openstack(self, *args: str, cloud: str = CLOUD) -> str:
        """Run one `openstack --os-cloud CLOUD ARGS`; its stdout, or DemoFailed."""
        cmd = [str(bin_path("openstack")), "--os-cloud", cloud, *args]
        proc = subprocess.run(
            cmd,
            env=demo_env(OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise DemoFailed(
                f"`openstack {shlex.join(args)}` exited {proc.returncode}:\n"
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.stdout

    def openstack_batch(self, commands: list[str], cloud: str = CLOUD) -> list[str]:
        """Several commands in one `openstack` process (its interactive mode reads them
        from stdin; one start-up instead of many). Each command's stdout, in order. The
        process does not report per-command status: a command failed if it wrote to
        stderr, or, when it asks for `-f json`, if its output is not JSON."""
        marker = f"==isthmus-demo-{uuid.uuid4().hex}=="
        lines: list[str] = []
        for command in commands:
            lines += [command, f'shell sh -c "echo {marker}; echo {marker} 1>&2"']
        proc = subprocess.run(
            [str(bin_path("openstack"))],
            env=demo_env(OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml), OS_CLOUD=cloud),
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        outs = proc.stdout.split(marker + "\n")
        errs = proc.stderr.split(marker + "\n")
        for index, command in enumerate(commands):
            out = outs[index] if index < len(outs) - 1 else None
            err = errs[index] if index < len(errs) - 1 else ""
            if out is None:
                raise DemoFailed(f"`openstack {command}` did not run:\n{proc.stderr.strip()}")
            failed = bool(err.strip())
            if command.endswith("-f json"):
                try:
                    json.loads(out)
                except json.JSONDecodeError:
                    failed = True
            if failed:
                raise DemoFailed(f"`openstack {command}` failed:\n{(err or out).strip()}")
        return outs[: len(commands)]

    def connect_sdk(self) -> None:
        import openstack

        config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        self.sdk = openstack.connection.Connection(config=config.get_one(cloud=CLOUD))

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.25)
        raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")

    def volume_status(self) -> str:
        volume = self.sdk.block_storage.find_volume(VOLUME, ignore_missing=True)
        if volume is None:
            return "gone"
        if volume.status == "error":
            raise DemoFailed(f"volume {VOLUME} went to error")
        return str(volume.status)

    # -- the story ------------------------------------------------------------------------------

    def run(self) -> None:
        self.start_service()
        self.connect_sdk()
        image_file = self.workdir / "demo-image.raw"
        image_file.write_bytes(b"ISTHMUS DEMO IMAGE\n" + os.urandom(256 * 1024))

        with self.step(f"Creating network {NETWORK}, subnet {CIDR}, volume, and uploading image"):
            net, subnet, volume, image = (
                json.loads(out)
                for out in self.openstack_batch(
                    [
                        f"network create {NETWORK} -f json",
                        f"subnet create {SUBNET} --network {NETWORK} --subnet-range {CIDR} -f json",
                        f"volume create {VOLUME} --size 1 --availability-zone site-a -f json",
                        f"image create {IMAGE} --file {image_file} --disk-format raw"
                        " --container-format bare -f json",
                    ]
                )
            )
            self.say(f"network {net['name']} {net['id']}")
            self.say(f"subnet  {subnet['name']} {subnet['cidr']} gateway {subnet['gateway_ip']}")
            self.say(f"volume  {volume['name']} {volume['size']} GiB, {volume['status']}")
            self.say(f"image   {image['name']} {image.get('size')} bytes, {image['status']}")

        with self.step("Booting one server in each availability zone (--wait, in parallel)"):

            def boot(zone: str) -> dict[str, Any]:
                out = self.openstack(
                    *("server", "create", f"demo-{zone}", "--flavor", FLAVOR),
                    *("--image", BOOT_IMAGE, "--network", NETWORK),
                    *("--availability-zone", zone, "--wait", "-f", "json"),
                )
                return dict(json.loads(out))

            with ThreadPoolExecutor(len(ZONES)) as pool:
                for zone, server in zip(ZONES, pool.map(boot, ZONES), strict=True):
                    self.servers[zone] = server
                    found = server.get("OS-EXT-AZ:availability_zone") or server.get(
                        "availability_zone"
                    )
                    if server.get("status") != "ACTIVE" or found != zone:
                        raise DemoFailed(f"server demo-{zone}: {server.get('status')} in {found}")
                    self.say(f"demo-{zone} {server['id']} ACTIVE in {found}: {server['addresses']}")

        with self.step(f"Attaching volume {VOLUME} to demo-site-a"):
            self.wait_for(f"volume {VOLUME} available", lambda: self.volume_status() == "available")
            self.openstack("server", "add", "volume", "demo-site-a", VOLUME)
            self.wait_for(f"volume {VOLUME} in-use", lambda: self.volume_status() == "in-use")
            self.say(f"{VOLUME} is in-use by demo-site-a")

        for chapter in self.chapters:
            chapter.run(self, self.servers)

        with self.step("Listing everything, with the site each thing lives in"):
            # cliff's interactive mode cannot quote "Availability Zone": its own process
            columns = ["Name", "Status", "Networks", "Image Name", "Flavor Name"]
            args = ["server", "list", "--long", *[f"-c{c}" for c in columns]]
            args += ["-c", "Availability Zone"]
            self.show(
                "openstack server list --long -c ... -c 'Availability Zone'", self.openstack(*args)
            )
            commands = [
                "volume list --long",
                f"volume show {VOLUME} -c name -c status -c availability_zone",
                "image list",
                "network list",
                "subnet list",
            ]
            for command, out in zip(commands, self.openstack_batch(commands), strict=True):
                self.show(f"openstack {command}", out)
            site_list = subprocess.run(
                [sys.executable, "-m", "isthmus.cli", "--os-cloud", "isthmus", "site", "list"],
                env=demo_env(OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml)),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if site_list.returncode != 0:
                raise DemoFailed(f"`isthmus site list` failed:\n{site_list.stderr.strip()}")
            self.show("isthmus site list", site_list.stdout)

        with self.step("Cleaning up: servers, volume, image, subnet, network"):
            for chapter in reversed(self.chapters):
                chapter.cleanup(self)
            self.openstack("server", "remove", "volume", "demo-site-a", VOLUME)
            self.wait_for(f"volume {VOLUME} detached", lambda: self.volume_status() == "available")
            names = [f"demo-{zone}" for zone in ZONES]
            self.openstack_batch(
                [f"server delete {' '.join(names)}", f"volume delete {VOLUME}"]
                + [f"image delete {IMAGE}"]
            )
            self.wait_for(
                "the servers to be gone",
                lambda: not [s for s in self.sdk.compute.servers() if s.name in names],
            )
            self.wait_for(f"volume {VOLUME} to be gone", lambda: self.volume_status() == "gone")
            self.openstack("subnet", "delete", SUBNET)
            self.wait_for(f"network {NETWORK} to be deleted", self._delete_network)
            self.say("servers, volume, image, subnet and network deleted")

    def _delete_network(self) -> bool:
        """Delete the network once its ports are gone (Neutron refuses before)."""
        network = self.sdk.network.find_network(NETWORK, ignore_missing=True)
        if network is None:
            return True
        try:
            self.sdk.network.delete_network(network)
        except Exception:  # ports still going away: try again shortly
            return False
        return self.sdk.network.find_network(NETWORK, ignore_missing=True) is None


def demo_env(**extra: str) -> dict[str, str]:
    """Our environment without OS_* variables from the caller's shell, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore", **extra)
    return env
