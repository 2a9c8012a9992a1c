"""`EmbeddedFabric`: the kernel data plane of one Isthmus's embedded sites.

Everything lives in network namespaces whose names start with a prefix unique
to the fabric's state directory (`ist` + 6 hex digits of its path):

    <prefix>-wan            the underlay: bridge `br-wan`, one veth `w<N>` per site
    <prefix>-<site>         a site gateway: `wan0` (its VTEP address, 192.0.2.N/24),
                            per network a bridge `br<VNI>` + `vxlan<VNI>` (nolearning,
                            dev wan0, dstport 4789, bridge-port learning off), per port
                            a veth `tap<port id[:11]>` on that bridge; zebra + bgpd (frr.py)
    <prefix>-vm-<id[:12]>   a server: `eth<NIC>` with the port's MAC, fixed IP, MTU
                            1450, a default route via the subnet gateway, and its
                            security groups as nftables rules (security.py)

Every operation looks before it creates, so calling it again is harmless, and
removing something missing succeeds. The namespaces and FRR run directories
this fabric creates are recorded in `<directory>/fabric.json` before they are
made; `teardown()` removes exactly those, never anything found by pattern.
Calls are serialised per directory (a thread lock plus `flock`, so several
processes sharing a data dir take turns).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isthmus.fabric import frr

log = logging.getLogger(__name__)

UNDERLAY = ipaddress.ip_network("192.0.2.0/24")  # inside the fabric's namespaces only
VXLAN_PORT = 4789
SERVER_MTU = 1450
NETNS_DIR = Path("/run/netns")

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


class FabricError(Exception):
    """A kernel or FRR operation failed (the driver maps it to a retryable error)."""


@dataclass(frozen=True)
class PortPlumbing:
    """What the kernel needs to plug one port of a server into its network."""

    port_id: str
    nic: int  # eth<nic> inside the server
    vni: int
    mac: str
    addresses: tuple[tuple[str, int], ...] = ()  # (ip, prefixlen)
    gateway: str | None = None
    up: bool = True


@dataclass
class Teardown:
    """What `EmbeddedFabric.teardown()` ended: FRR daemon pids, namespace names."""

    daemons: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)


def prefix_for(directory: Path) -> str:
    """The namespace-name prefix of the fabric kept in `directory`."""
    digest = hashlib.sha1(str(directory.resolve()).encode(), usedforsecurity=False).hexdigest()
    return f"ist{digest[:6]}"


def _children_end_on_sigterm() -> None:
    """pyroute2 forks short-lived children (a socket inside a namespace) and ends them
    with SIGTERM; without this they would run the handler the parent installed
    (`isthmus up` raises KeyboardInterrupt from it), unwind the parent's stack in
    the child and read netlink replies meant for the parent off shared sockets."""
    with contextlib.suppress(ImportError):
        from pyroute2 import config

        config.disable_mp_signal = True


def _ipr(namespace: str) -> Any:
    from pyroute2 import IPRoute

    return IPRoute(netns=namespace)


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _ignore(*codes: int) -> Any:
    """Suppress pyroute2 NetlinkErrors with these errno codes."""
    from pyroute2 import NetlinkError

    @contextlib.contextmanager
    def guard() -> Iterator[None]:
        try:
            yield
        except NetlinkError as exc:
            if exc.code not in codes:
                raise

    return guard()


def nsexec(namespace: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run argv in the namespace's network stack (like `ip netns exec`, via nsenter)."""
    return subprocess.run(
        ["nsenter", f"--net={NETNS_DIR / namespace}", *argv],
        capture_output=True,
        text=True,
        **kwargs,
    )


class EmbeddedFabric:
    """The data plane of the embedded sites whose fabric state is in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        _children_end_on_sigterm()
        self.prefix = prefix_for(directory)
        self.state_path = directory / "fabric.json"
        key = str(directory.resolve())
        with _locks_guard:
            self._thread_lock = _locks.setdefault(key, threading.RLock())
        self._depth = 0
        self._lock_file: Any = None

    # -- names -----------------------------------------------------------------------

    @property
    def wan_namespace(self) -> str:
        return f"{self.prefix}-wan"

    def site_namespace(self, site: str) -> str:
        return f"{self.prefix}-{site}"

    def server_namespace(self, server_id: str) -> str:
        return f"{self.prefix}-vm-{server_id.replace('-', '')[:12]}"

    def frr_site(self, site: str) -> frr.FrrSite:
        return frr.FrrSite(self.site_namespace(site), self.directory / "frr" / site)

    # -- state and locking -----------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Exclusive access to the fabric; yields its state, saved on success."""
        with self._thread_lock:
            if self._depth == 0:
                self._lock_file = open(self.directory / "fabric.lock", "a+")  # noqa: SIM115
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            self._depth += 1
            try:
                state = self._load()
                yield state
                self._save(state)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                    self._lock_file.close()
                    self._lock_file = None

    def _load(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError):
            state = json.loads(self.state_path.read_text())
        state.setdefault("prefix", self.prefix)
        state.setdefault("namespaces", [])
        state.setdefault("run_dirs", [])
        state.setdefault("vteps", {})
        return state

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.state_path)

    def recorded_namespaces(self) -> list[str]:
        with self.locked() as state:
            return list(state["namespaces"])

    def vteps(self) -> dict[str, str]:
        with self.locked() as state:
            return dict(state["vteps"])

    def _create_namespace(self, state: dict[str, Any], name: str) -> bool:
        """Make the namespace (recorded first); True if it was new."""
        from pyroute2 import netns

        if name not in state["namespaces"]:
            state["namespaces"].append(name)
            self._save(state)
        if (NETNS_DIR / name).exists():
            return False
        netns.create(name)
        with _ipr(name) as ipr:
            ipr.link("set", index=_index(ipr, "lo"), state="up")
        return True

    def _remove_namespace(self, state: dict[str, Any], name: str) -> None:
        from pyroute2 import netns

        if name not in state["namespaces"]:
            return  # never delete what this fabric did not record
        if (NETNS_DIR / name).exists():
            netns.remove(name)
        state["namespaces"].remove(name)
        self._save(state)

    # -- sites -------------------------------------------------------------------------------

    def ensure_site(self, site: str) -> str:
        """The site's gateway namespace with its WAN link and running FRR; its VTEP."""
        with self.locked() as state:
            vtep = state["vteps"].get(site)
            if vtep is None:
                used = set(state["vteps"].values())
                vtep = next(str(h) for h in UNDERLAY.hosts() if str(h) not in used)
                state["vteps"][site] = vtep
                self._save(state)
            self._ensure_wan(state)
            namespace = self.site_namespace(site)
            self._create_namespace(state, namespace)
            self._ensure_uplink(site, namespace, vtep)
            peers = self._peers(state, site)
            gateway = self.frr_site(site)
            run_dir = str(gateway.run_dir)
            if run_dir not in state["run_dirs"]:
                state["run_dirs"].append(run_dir)
                self._save(state)
            if not gateway.running():
                gateway.start(frr.BgpSite(namespace, vtep, peers))
                self._sync_neighbors(state, besides=site)
            return vtep

    def _sync_neighbors(self, state: dict[str, Any], besides: str) -> None:
        """Tell every other running gateway the current set of VTEPs."""
        for other, vtep in state["vteps"].items():
            gateway = self.frr_site(other)
            if other != besides and gateway.running():
                bgp = frr.BgpSite(self.site_namespace(other), vtep, self._peers(state, other))
                gateway.apply_neighbors(bgp)

    def _peers(self, state: dict[str, Any], site: str) -> tuple[str, ...]:
        return tuple(sorted(v for s, v in state["vteps"].items() if s != site))

    def _ensure_wan(self, state: dict[str, Any]) -> None:
        self._create_namespace(state, self.wan_namespace)
        with _ipr(self.wan_namespace) as wan:
            if _index(wan, "br-wan") is None:
                with _ignore(errno.EEXIST):
                    wan.link("add", ifname="br-wan", kind="bridge")
            wan.link("set", index=_index(wan, "br-wan"), state="up")

    def _ensure_uplink(self, site: str, namespace: str, vtep: str) -> None:
        host = int(ipaddress.ip_address(vtep)) - int(UNDERLAY.network_address)
        outer = f"w{host}"
        with _ipr(self.wan_namespace) as wan, _ipr(namespace) as gw:
            if _index(gw, "wan0") is None:
                if _index(wan, outer) is not None:  # a stale half: start again
                    wan.link("del", index=_index(wan, outer))
                wan.link(
                    "add",
                    ifname=outer,
                    kind="veth",
                    peer={"ifname": "wan0", "net_ns_fd": namespace},
                )
            wan.link("set", index=_index(wan, outer), master=_index(wan, "br-wan"), state="up")
            wan0 = _index(gw, "wan0")
            have = {a.get("address") for a in gw.get_addr(index=wan0, family=2)}
            if vtep not in have:
                gw.addr("add", index=wan0, address=vtep, prefixlen=UNDERLAY.prefixlen)
            gw.link("set", index=wan0, state="up")

    def remove_site(self, site: str) -> None:
        """Stop the site's FRR, remove its gateway namespace and free its VTEP."""
        with self.locked() as state:
            gateway = self.frr_site(site)
            gateway.stop()
            self._remove_namespace(state, self.site_namespace(site))
            run_dir = str(gateway.run_dir)
            if run_dir in state["run_dirs"]:
                shutil.rmtree(run_dir, ignore_errors=True)
                state["run_dirs"].remove(run_dir)
            state["vteps"].pop(site, None)
            self._save(state)
            self._sync_neighbors(state, besides=site)

    def site_running(self, site: str) -> bool:
        return (NETNS_DIR / self.site_namespace(site)).exists() and self.frr_site(site).running()

    # -- networks ----------------------------------------------------------------------------

    def ensure_network(self, site: str, vni: int) -> None:
        """Bridge `br<vni>` and `vxlan<vni>` in the site's gateway."""
        vtep = self.ensure_site(site)
        with self.locked(), _ipr(self.site_namespace(site)) as gw:
            bridge, vxlan = f"br{vni}", f"vxlan{vni}"
            if _index(gw, bridge) is None:
                with _ignore(errno.EEXIST):
                    gw.link("add", ifname=bridge, kind="bridge")
            if _index(gw, vxlan) is None:
                with _ignore(errno.EEXIST):
                    gw.link(
                        "add",
                        ifname=vxlan,
                        kind="vxlan",
                        vxlan_id=vni,
                        vxlan_local=vtep,
                        vxlan_link=_index(gw, "wan0"),
                        vxlan_port=VXLAN_PORT,
                        vxlan_learning=0,
                    )
            vx, br = _index(gw, vxlan), _index(gw, bridge)
            gw.link("set", index=vx, master=br, state="up")
            gw.brport("set", index=vx, learning=0)
            gw.link("set", index=br, state="up")

    def remove_network(self, site: str, vni: int) -> None:
        namespace = self.site_namespace(site)
        if not (NETNS_DIR / namespace).exists():
            return
        with self.locked(), _ipr(namespace) as gw:
            for name in (f"vxlan{vni}", f"br{vni}"):
                index = _index(gw, name)
                if index is not None:
                    with _ignore(errno.ENODEV):
                        gw.link("del", index=index)

    # -- servers and their ports ---------------------------------------------------------------

    def ensure_server(self, site: str, server_id: str, ports: list[PortPlumbing]) -> str:
        """The server's namespace, one `eth<nic>` per port plugged into its network's
        bridge in the site gateway; NICs not in `ports` are removed. Its name."""
        namespace = self.server_namespace(server_id)
        gateway_ns = self.site_namespace(site)
        with self.locked() as state:
            self._create_namespace(state, namespace)
            with _ipr(gateway_ns) as gw, _ipr(namespace) as vm:
                wanted = {f"eth{p.nic}" for p in ports}
                for link in vm.get_links():
                    name = link.get("ifname")
                    if name and name.startswith("eth") and name not in wanted:
                        vm.link("del", index=link["index"])
                for port in ports:
                    self._plug(gw, vm, namespace, port)
        return namespace

    def _plug(self, gw: Any, vm: Any, namespace: str, port: PortPlumbing) -> None:
        tap, eth = f"tap{port.port_id[:11]}", f"eth{port.nic}"
        bridge = _index(gw, f"br{port.vni}")
        if bridge is None:
            raise FabricError(f"network br{port.vni} is not in the site gateway yet")
        if _index(gw, tap) is None or _index(vm, eth) is None:
            for ipr, name in ((gw, tap), (vm, eth)):
                stale = _index(ipr, name)
                if stale is not None:
                    with _ignore(errno.ENODEV):
                        ipr.link("del", index=stale)
            gw.link("add", ifname=tap, kind="veth", peer={"ifname": eth, "net_ns_fd": namespace})
        gw.link("set", index=_index(gw, tap), master=bridge, mtu=SERVER_MTU, state="up")
        gw.brport("set", index=_index(gw, tap), learning=1)
        index = _index(vm, eth)
        current = vm.get_links(index)[0]
        if current.get("address") != port.mac.lower():
            vm.link("set", index=index, state="down")
            vm.link("set", index=index, address=port.mac.lower())
        vm.link("set", index=index, mtu=SERVER_MTU, state="up" if port.up else "down")
        have = {(a.get("address"), a["prefixlen"]) for a in vm.get_addr(index=index, family=2)}
        for address, prefixlen in have - set(port.addresses):
            vm.addr("del", index=index, address=address, prefixlen=prefixlen)
        for address, prefixlen in set(port.addresses) - have:
            vm.addr("add", index=index, address=address, prefixlen=prefixlen)
        if port.gateway and port.nic == 0 and port.up:
            vm.route("replace", dst="0.0.0.0/0", gateway=port.gateway, oif=index)

    def remove_port(self, site: str, port_id: str) -> None:
        namespace = self.site_namespace(site)
        if not (NETNS_DIR / namespace).exists():
            return
        with self.locked(), _ipr(namespace) as gw:
            index = _index(gw, f"tap{port_id[:11]}")
            if index is not None:
                with _ignore(errno.ENODEV):
                    gw.link("del", index=index)

    def remove_server(self, server_id: str) -> None:
        with self.locked() as state:
            self._remove_namespace(state, self.server_namespace(server_id))

    def apply_ruleset(self, server_id: str, ruleset: str) -> None:
        """Load an nftables ruleset (one atomic `nft -f`) in the server's namespace."""
        namespace = self.server_namespace(server_id)
        if not (NETNS_DIR / namespace).exists():
            return
        result = nsexec(namespace, ["nft", "-f", "-"], input=ruleset, timeout=30)
        if result.returncode != 0:
            raise FabricError(f"nft in {namespace} failed: {result.stderr.strip()}")

    # -- the whole fabric ---------------------------------------------------------------------

    def teardown(self) -> Teardown:
        """Stop every FRR this fabric started and remove every namespace and run
        directory it recorded (servers first, then gateways, then the WAN). What it
        ended and removed (nothing, when called again)."""
        done = Teardown()
        with self.locked() as state:
            for site in list(state["vteps"]):
                done.daemons += self.frr_site(site).stop()
            for pidfile in (self.directory / "frr").glob("*/*.pid"):  # our own pidfiles
                pid = frr.stop_pidfile(pidfile)
                if pid is not None:
                    done.daemons.append(pid)
            names = list(state["namespaces"])
            order = sorted(
                names,
                key=lambda n: (n == self.wan_namespace, not n.startswith(f"{self.prefix}-vm-")),
            )
            for name in order:
                existed = (NETNS_DIR / name).exists()
                try:
                    self._remove_namespace(state, name)
                except OSError as exc:
                    log.warning("could not remove namespace %s: %s", name, exc)
                    continue
                if existed:
                    done.namespaces.append(name)
            for run_dir in list(state["run_dirs"]):
                shutil.rmtree(run_dir, ignore_errors=True)
                state["run_dirs"].remove(run_dir)
            state["vteps"] = {}
        return done
