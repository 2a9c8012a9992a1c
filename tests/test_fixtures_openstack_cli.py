"""Checks of the openstack CLI helpers, using commands that need no cloud (``module list``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.openstack_cli import (
    openstack_json,
    openstack_json_batch,
    run_openstack,
    run_openstack_batch,
)

pytestmark = pytest.mark.cli


@pytest.fixture
def clouds_yaml(tmp_path: Path) -> Path:
    """A clouds.yaml whose only cloud points at a port where nothing listens."""
    path = tmp_path / "clouds.yaml"
    path.write_text(
        "clouds:\n"
        "  nowhere:\n"
        "    auth_type: none\n"
        "    endpoint: http://127.0.0.1:9/\n"
        "    auth:\n"
        "      endpoint: http://127.0.0.1:9/\n"
    )
    return path


def test_openstack_json(clouds_yaml: Path) -> None:
    modules = openstack_json(["module", "list"], clouds_yaml, "nowhere")
    assert "openstackclient" in modules


def test_openstack_json_raises_with_output(clouds_yaml: Path) -> None:
    with pytest.raises(AssertionError, match="--- stderr ---"):
        openstack_json(["no-such-command"], clouds_yaml, "nowhere")
    proc = run_openstack(["module", "list"], clouds_yaml, "no-such-cloud")
    assert proc.returncode != 0


def test_batch_splits_output_per_command(clouds_yaml: Path) -> None:
    items = run_openstack_batch(
        ["module list -f json", "server list -f json", "module list -f value"],
        clouds_yaml,
        "nowhere",
    )
    assert [i.command for i in items] == [
        "module list -f json",
        "server list -f json",
        "module list -f value",
    ]
    assert "openstackclient" in items[0].json()
    with pytest.raises(AssertionError, match="server list"):
        items[1].json()  # nothing listens at the endpoint: no JSON, an error on stderr
    assert items[1].stderr.strip()
    assert items[2].stdout.split() == list(items[0].json().values())


def test_json_batch(clouds_yaml: Path) -> None:
    first, second = openstack_json_batch(["module list", "module list"], clouds_yaml, "nowhere")
    assert first == second
