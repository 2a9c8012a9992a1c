"""`python -m isthmus.demo` (what `make demo` runs) works end to end and stays quick."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.cli]


def test_demo_runs_to_the_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "isthmus.demo"],
        env={**env, "COLUMNS": "200"},
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
