"""FRR for one site gateway: one zebra + one bgpd in the gateway's namespace.

Both run with `-N <namespace>` (their sockets live in `/var/run/frr/<namespace>/`),
speak iBGP (AS 65000) to every other site's VTEP with `address-family l2vpn evpn`
and `advertise-all-vni`, so each `vxlan<VNI>` device in the gateway is announced
(type-3 routes for flooding, type-2 for every MAC the bridge learns) and remote
MACs come back as `extern_learn` fdb entries. Timers 3/9, connect 1 and
advertisement-interval 0 make a new site converge in about 2.3 s.

The daemons are children started in their own session; their pids are written to
pidfiles under the fabric's data directory, and `stop()` ends them by those pids
only (after checking the pid still is that daemon). The daemons run as user frr,
so the config they read is copied into their run directory, which frr can reach.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FRR_DIR = Path("/usr/lib/frr")
RUN_ROOT = Path("/var/run/frr")
ASN = 65000
DAEMONS = ("zebra", "bgpd")
START_TIMEOUT = 10.0
NEIGHBOR_LINE = re.compile(r"^ neighbor (\S+) peer-group WAN$", re.MULTILINE)


@dataclass(frozen=True)
class BgpSite:
    namespace: str
    router_id: str  # = the site's VTEP address
    peers: tuple[str, ...]  # the other sites' VTEPs
    asn: int = ASN


def render_zebra(site: BgpSite) -> str:
    return f"hostname {site.namespace}\n"


def render_bgpd(site: BgpSite) -> str:
    lines = [
        f"hostname {site.namespace}",
        f"router bgp {site.asn}",
        f" bgp router-id {site.router_id}",
        " no bgp default ipv4-unicast",
        " no bgp ebgp-requires-policy",
        " neighbor WAN peer-group",
        " neighbor WAN remote-as internal",
        " neighbor WAN timers 3 9",
        " neighbor WAN timers connect 1",
        " neighbor WAN advertisement-interval 0",
        *(f" neighbor {peer} peer-group WAN" for peer in site.peers),
        " address-family l2vpn evpn",
        "  neighbor WAN activate",
        "  advertise-all-vni",
        " exit-address-family",
        "exit",
    ]
    return "\n".join(lines) + "\n"


def _alive(pid: int, namespace: str, daemon: str) -> bool:
    """The pid runs `daemon` for `namespace` (not a zombie, not a recycled pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return daemon.encode() in cmdline[0] and namespace.encode() in cmdline


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pidfile(pidfile: Path, timeout: float = 5.0) -> int | None:
    """End the daemon named by `pidfile` (`<namespace>` in its first line after the
    pid), if it still is that daemon; remove the pidfile. The pid it ended, if any."""
    try:
        pid_text, namespace = pidfile.read_text().split()[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        pidfile.unlink(missing_ok=True)
        return None
    daemon = pidfile.stem
    ended = _alive(pid, namespace, daemon)
    if ended:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not _alive(pid, namespace, daemon):
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
    _reap(pid)
    pidfile.unlink(missing_ok=True)
    return pid if ended else None


class FrrSite:
    """zebra + bgpd of one gateway namespace; files under `directory`."""

    def __init__(self, namespace: str, directory: Path) -> None:
        self.namespace = namespace
        self.directory = directory
        self.run_dir = RUN_ROOT / namespace

    def pidfile(self, daemon: str) -> Path:
        return self.directory / f"{daemon}.pid"

    def pid(self, daemon: str) -> int | None:
        return _read_pid(self.pidfile(daemon))

    def _daemon_alive(self, daemon: str) -> bool:
        pid = self.pid(daemon)
        return pid is not None and _alive(pid, self.namespace, daemon)

    def running(self) -> bool:
        return all(self._daemon_alive(d) for d in DAEMONS)

    def _write_config(self, site: BgpSite) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.run_dir, "frr", "frr")
        for daemon, text in (("zebra", render_zebra(site)), ("bgpd", render_bgpd(site))):
            (self.directory / f"{daemon}.conf").write_text(text)
            target = self.run_dir / f"{daemon}.conf"
            target.write_text(text)
            shutil.chown(target, "frr", "frr")

    def start(self, site: BgpSite) -> None:
        """Start whichever daemon is not running, with config rendered from `site`."""
        self._write_config(site)
        for daemon in DAEMONS:
            if self._daemon_alive(daemon):
                continue
            (self.run_dir / f"{daemon}.vty").unlink(missing_ok=True)
            with open(self.directory / f"{daemon}.log", "ab") as logfile:
                process = subprocess.Popen(
                    [
                        "nsenter",
                        f"--net=/run/netns/{self.namespace}",
                        str(FRR_DIR / daemon),
                        "-N",
                        self.namespace,
                        "-f",
                        str(self.run_dir / f"{daemon}.conf"),
                        "-i",
                        str(self.run_dir / f"{daemon}.pid"),
                        "-P",
                        "0",
                        "--log",
                        "stdout",
                        "--log-level",
                        "warnings",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pidfile(daemon).write_text(f"{process.pid} {self.namespace}\n")
            self._wait_for(self.run_dir / f"{daemon}.vty", daemon, process)

    def _wait_for(self, socket: Path, daemon: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if socket.exists():
                return
            if process.poll() is not None:
                tail = (self.directory / f"{daemon}.log").read_text(errors="replace")[-400:]
                raise RuntimeError(f"{daemon} for {self.namespace} exited: {tail}")
            time.sleep(0.02)
        raise RuntimeError(f"{daemon} for {self.namespace} did not open {socket}")

    def stop(self) -> list[int]:
        """End this gateway's daemons by their pidfiles; the pids that were running."""
        ended = [stop_pidfile(self.pidfile(daemon)) for daemon in reversed(DAEMONS)]
        return [pid for pid in ended if pid is not None]

    def vtysh(self, *commands: str) -> str:
        argv = ["vtysh", "-N", self.namespace]
        for command in commands:
            argv += ["-c", command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"vtysh -N {self.namespace} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def neighbors(self) -> set[str]:
        return set(NEIGHBOR_LINE.findall(self.vtysh("show running-config")))

    def apply_neighbors(self, site: BgpSite) -> None:
        """Make bgpd's neighbor set `site.peers` live, without a restart; the config
        files are re-rendered so a restart comes up the same."""
        self._write_config(site)
        current = self.neighbors()
        wanted = set(site.peers)
        if current == wanted:
            return
        commands = ["configure terminal", f"router bgp {site.asn}"]
        commands += [f"no neighbor {peer}" for peer in sorted(current - wanted)]
        commands += [f"neighbor {peer} peer-group WAN" for peer in sorted(wanted - current)]
        self.vtysh(*commands)
