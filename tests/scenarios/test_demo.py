"""`python -m isthmus.demo` (what `make demo` runs) works end to end and stays quick.

Where the embedded data plane can run here, its ping matrix must show every
same-tenant pair answering and no cross-tenant pair answering (the second tenant
has the same CIDR); elsewhere the demo must say it ran control-plane only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from isthmus.fabric import capability

pytestmark = [pytest.mark.slow, pytest.mark.cli]


def _run_demo(**env_overrides: str) -> str:
    """Run the demo to the end (it must succeed); its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "isthmus.demo"],
        env={**env, "COLUMNS": "200", **env_overrides},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Demo complete" in proc.stdout
    for zone in ("site-a", "site-b", "site-c"):
        assert f"demo-{zone}" in proc.stdout
    return proc.stdout


def test_demo_runs_to_the_end() -> None:
    stdout = _run_demo()

    missing = capability.missing()
    if missing is not None:
        assert f"data plane unavailable ({missing}): control-plane only" in stdout
        assert "Data plane: skipped" in stdout
        return
    # the matrix: 3 demo servers + 2 of the other tenant
    same = re.search(r"same tenant: (\d+)/(\d+) pairs answered", stdout)
    across = re.search(r"across tenants: (\d+)/(\d+) pairs answered", stdout)
    assert same and across, stdout
    assert (int(same[1]), int(same[2])) == (3 * 2 + 2 * 1, 8), same[0]
    assert (int(across[1]), int(across[2])) == (0, 3 * 2 * 2), across[0]
    rows = [line for line in stdout.splitlines() if line.startswith("│ ")]
    assert len(rows) >= 5, stdout
    for line in rows[:5]:  # the matrix rows come before any other table
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        tenant = "demo-other" if "(demo-other)" in cells[0] else "demo"
        mine = range(1, 4) if tenant == "demo" else range(4, 6)
        for index, cell in enumerate(cells[1:], start=1):
            if cell == "·":
                continue
            expected = "reply" if index in mine else "none"
            assert cell.startswith(expected), (line, index)
    assert "vxlan+evpn (FRR)" in stdout  # `isthmus site list` shows the data plane


def test_demo_without_the_data_plane_says_control_plane_only(tmp_path: Path) -> None:
    """On a machine without FRR's vtysh (here: a PATH that lacks it and every other
    system tool but sh), the demo and `isthmus site list` say control-plane only."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "sh").symlink_to(shutil.which("sh") or "/bin/sh")
    stdout = _run_demo(PATH=f"{tools}:{Path(sys.executable).parent}")
    assert "data plane unavailable (no vtysh): control-plane only" in stdout
    assert "Data plane: skipped" in stdout and "same tenant:" not in stdout
    assert "control-plane only: no vtysh" in stdout  # the sites' own word, in site list
