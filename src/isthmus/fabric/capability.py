"""Can this machine run the embedded data plane? (root, FRR, nft, nsenter, pyroute2)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FRR_DIR = Path("/usr/lib/frr")
DATA_PLANE = "vxlan+evpn (FRR)"


def missing() -> str | None:
    """None when the data plane can run here, else a short reason (fits a status line)."""
    if os.geteuid() != 0:
        return "not root"
    for daemon in ("zebra", "bgpd"):
        if not os.access(FRR_DIR / daemon, os.X_OK):
            return f"no FRR ({FRR_DIR / daemon})"
    for tool in ("vtysh", "nft", "nsenter"):
        if shutil.which(tool) is None:
            return f"no {tool}"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "no pyroute2"
    return None
