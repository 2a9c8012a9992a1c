"""Removing a site (`DELETE /isthmus/v1/sites/{name}`, `isthmus site remove`):
refused with 409 and the count while the site holds anything, unless forced (then
logged with the caller); an embedded site's on-disk state goes with it, so a site
added again under the same name starts empty and up. Deleting flavors (which Nova
allows while servers use them) leaves every server view answering."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import pytest
from sqlalchemy import func, select

from isthmus.model.specs import ImageSpec
from isthmus.sites.local import LocalDriver
from isthmus.store.tables import Binding, Resource, Site, Work
from isthmus.store.work import enqueue
from tests.fixtures.isthmus_process import ISTHMUS, clean_env
from tests.support import Cloud, add_network, add_server, project_id

API = "/isthmus/v1"


def error(response: Any) -> str:
    return str(response.json()["error"]["message"])


def held_by(cloud: Cloud, site: str) -> tuple[int, int, int]:
    """(distinct resources, bindings, work items) the store has for `site`."""
    with cloud.service.db.read() as session:
        ids = set(session.scalars(select(Binding.resource_id).where(Binding.site == site)))
        ids |= set(session.scalars(select(Resource.id).where(Resource.site == site)))
        ids |= set(session.scalars(select(Work.resource_id).where(Work.site == site)))
        bindings = session.scalar(select(func.count()).where(Binding.site == site)) or 0
        work = session.scalar(select(func.count()).where(Work.site == site)) or 0
    return len(ids), bindings, work


def server_in(cloud: Cloud, site: str) -> str:
    project = project_id(cloud.service)
    net, _ = add_network(cloud.service, project)
    server = add_server(cloud.service, project, net, "vm", az=site)
    cloud.service.wake()
    cloud.wait_idle()
    return server


def test_removal_of_a_site_in_use_is_refused_with_the_count(cloud: Cloud) -> None:
    server_in(cloud, "site-b")
    before = held_by(cloud, "site-b")
    count = before[0]
    assert count >= 3  # the server, its port, the network (and subnet) it brought along
    directory = cloud.service.config.data_dir / "sites" / "site-b"
    assert (directory / "state.db").exists()

    refused = cloud.client.delete(f"{API}/sites/site-b", headers=cloud.admin)
    assert refused.status_code == 409
    message = error(refused)
    assert f"holds {count} resource(s)" in message and "in use" in message
    assert "?force=true" in message and "--force" in message
    assert held_by(cloud, "site-b") == before  # nothing changed
    assert (directory / "state.db").exists()
    shown = cloud.client.get(f"{API}/sites/site-b", headers=cloud.admin)
    assert shown.status_code == 200 and shown.json()["site"]["health"] == "up"
    # force must say true: anything else is a 400, not a removal
    odd = cloud.client.delete(f"{API}/sites/site-b?force=perhaps", headers=cloud.admin)
    assert odd.status_code == 400
    assert held_by(cloud, "site-b") == before


def test_forced_removal_goes_ahead_and_is_logged(
    cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_in(cloud, "site-b")
    count = held_by(cloud, "site-b")[0]
    directory = cloud.service.config.data_dir / "sites" / "site-b"
    with caplog.at_level(logging.WARNING, logger="isthmus.api.admin.sites"):
        forced = cloud.client.delete(f"{API}/sites/site-b?force=true", headers=cloud.admin)
    assert forced.status_code == 204, forced.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "site-b" in line and f"{count} resource(s)" in line and "user admin" in line
        for line in warnings
    ), warnings
    assert cloud.client.get(f"{API}/sites/site-b", headers=cloud.admin).status_code == 404
    assert held_by(cloud, "site-b")[1:] == (0, 0)  # no binding, no work left for it
    assert not directory.exists()

    # the server went with its site: it says so, and deleting it works at once
    body = cloud.client.get(f"/compute/v2.1/servers/{server}", headers=cloud.demo).json()
    assert body["server"]["status"] == "ERROR"
    assert "site-b was removed" in body["server"]["fault"]["message"]
    deleted = cloud.client.delete(f"/compute/v2.1/servers/{server}", headers=cloud.demo)
    assert deleted.status_code == 204
    cloud.wait_idle()
    assert (
        cloud.client.get(f"/compute/v2.1/servers/{server}", headers=cloud.demo).status_code == 404
    )
    with cloud.service.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Work)) == 0
    # work that still names the removed site (a request racing the removal) waits,
    # shown as for a removed site, instead of failing in the engine again and again
    with cloud.service.db.session() as session:
        enqueue(session, server, "server", "site-b")
    with caplog.at_level(logging.WARNING, logger="isthmus.engine"):
        cloud.service.wake()
        cloud.wait_idle()
    assert not [r for r in caplog.records if r.name.startswith("isthmus.engine")]
    work = cloud.client.get(f"{API}/work", headers=cloud.admin).json()
    assert [g["site_health"] for g in work["groups"]] == ["removed"]
    for kind in ("servers/detail", "flavors"):
        assert cloud.client.get(f"/compute/v2.1/{kind}", headers=cloud.demo).status_code == 200


def test_removed_site_added_again_starts_clean_and_up(cloud: Cloud) -> None:
    added = cloud.client.post(
        f"{API}/sites", headers=cloud.admin, json={"name": "site-d", "driver": "local"}
    )
    assert added.status_code == 201, added.text
    driver = cloud.service.sites.get("site-d")
    assert isinstance(driver, LocalDriver)
    directory = driver.directory
    driver.state.create("network", "", "made-in-the-site", {}, "ACTIVE")  # not Isthmus'
    assert cloud.client.post(f"{API}/sites/site-d/down", headers=cloud.admin).status_code == 200
    assert (directory / "DOWN").exists()

    removed = cloud.client.delete(f"{API}/sites/site-d", headers=cloud.admin)
    assert removed.status_code == 204, removed.text
    assert not directory.exists()

    again = cloud.client.post(
        f"{API}/sites", headers=cloud.admin, json={"name": "site-d", "driver": "local"}
    )
    assert again.status_code == 201, again.text
    assert again.json()["site"]["health"] == "up"
    fresh = cloud.service.sites.get("site-d")
    assert isinstance(fresh, LocalDriver) and fresh.state.list() == []
    with cloud.service.db.read() as session:
        site = session.get(Site, "site-d")
        assert site is not None and site.last_error is None


def test_deleted_flavors_leave_servers_readable(cloud: Cloud) -> None:
    server = server_in(cloud, "site-a")
    flavors = cloud.client.get("/compute/v2.1/flavors", headers=cloud.admin).json()["flavors"]
    assert flavors
    for flavor in flavors:  # Nova lets an admin delete a flavor servers still use
        answer = cloud.client.delete(f"/compute/v2.1/flavors/{flavor['id']}", headers=cloud.admin)
        assert answer.status_code == 202, answer.text
    for path in (
        f"/compute/v2.1/servers/{server}",
        "/compute/v2.1/servers/detail",
        "/compute/v2.1/servers",
        "/compute/v2.1/flavors",
        "/compute/v2.1/flavors/detail",
    ):
        answer = cloud.client.get(path, headers=cloud.demo)
        assert answer.status_code == 200, (path, answer.text)
    gone = flavors[0]["id"]
    assert cloud.client.get(f"/compute/v2.1/flavors/{gone}", headers=cloud.demo).status_code == 404
    resize = cloud.client.post(
        f"/compute/v2.1/servers/{server}/action",
        headers=cloud.demo,
        json={"resize": {"flavorRef": gone}},
    )
    assert 400 <= resize.status_code < 500, resize.text
    create = cloud.client.post(
        "/compute/v2.1/servers",
        headers=cloud.demo,
        json={"server": {"name": "x", "flavorRef": gone, "imageRef": "x", "networks": "none"}},
    )
    assert 400 <= create.status_code < 500, create.text


@pytest.mark.cli
def test_cli_site_remove_refuses_then_forces(live_cloud: Cloud) -> None:
    server_in(live_cloud, "site-c")
    env = clean_env(OS_CLIENT_CONFIG_FILE=str(live_cloud.clouds_yaml))

    def remove(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ISTHMUS), "site", "remove", "site-c", *extra],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused = remove()
    assert refused.returncode == 1, refused.stderr
    assert "resource(s)" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    with live_cloud.service.db.read() as session:
        assert session.get(Site, "site-c") is not None
    forced = remove("--force")
    assert forced.returncode == 0, forced.stderr
    assert "removed (forced)" in forced.stdout
    with live_cloud.service.db.read() as session:
        assert session.get(Site, "site-c") is None


def test_removal_keeps_what_the_site_did_not_make_in_a_configured_directory(
    cloud: Cloud, tmp_path: Any
) -> None:
    """A `directory` an operator points a site at may hold other files, even an
    `images` folder: removal takes only the site's own state and image copies."""
    directory = tmp_path / "operator-dir"
    (directory / "images").mkdir(parents=True)
    theirs = directory / "images" / "operator-file.raw"
    theirs.write_bytes(b"not Isthmus'")
    added = cloud.client.post(
        f"{API}/sites",
        headers=cloud.admin,
        json={"name": "site-e", "driver": "local", "config": {"directory": str(directory)}},
    )
    assert added.status_code == 201, added.text
    server_in(cloud, "site-e")
    driver = cloud.service.sites.get("site-e")
    assert isinstance(driver, LocalDriver)
    source = tmp_path / "image.raw"
    source.write_bytes(b"image bytes")
    driver.ensure(ImageSpec(isthmus_id="img-1", name="img", data_path=str(source)))
    copies = [p for p in (directory / "images").iterdir() if p != theirs]
    assert copies, "the image copy the server needed is in the site's images folder"

    removed = cloud.client.delete(f"{API}/sites/site-e?force=true", headers=cloud.admin)
    assert removed.status_code == 204, removed.text
    assert theirs.read_bytes() == b"not Isthmus'"
    assert not any(p.exists() for p in copies)
    assert not (directory / "state.db").exists()
