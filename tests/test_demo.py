"""`python -m isthmus.demo` (what `make demo` runs) works end to end and stays quick."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.cli]

NEEDED = ("compute", "network", "volume", "image")


def test_demo_runs_to_the_end() -> None:
    missing = [m for m in NEEDED if importlib.util.find_spec(f"isthmus.api.{m}") is None]
    if missing:
        pytest.skip(f"the demo needs the {', '.join(missing)} API module(s)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "isthmus.demo"],
        env={**env, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Demo complete" in proc.stdout
    for zone in ("site-a", "site-b", "site-c"):
        assert f"demo-{zone}" in proc.stdout
    assert elapsed < 90, f"the demo took {elapsed:.0f}s"
