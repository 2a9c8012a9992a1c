"""Keeping a site honest, with another Isthmus as the site: drift, state that
flows back up, foreign objects, global versus site quotas, and what a server
needs (its key pair and image) made present where it goes.

The top Isthmus (in-process, engine and health loop running, on SQLite and
PostgreSQL) has one `openstack` site, `lower`: a real site-mode Isthmus
(subprocess) reached with its clouds.yaml. Both sweep their sites every half
second. Things done "behind the top's back" are done with openstacksdk straight
at the lower Isthmus, as that cloud's operator would, or, for a failure inside
the lower's own embedded site, in that site's state.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openstack.connection import Connection
from sqlalchemy import select

from isthmus.sites.local.state import SiteState
from isthmus.sites.openstack.compute import keypair_name
from isthmus.store.tables import Resource
from tests.fixtures.cascade import below, ok, site_mode_isthmus, top_isthmus
from tests.fixtures.isthmus_process import Running
from tests.support import Cloud, project_id
from tests.waiting import ManualClock, wait_for

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore:::openstack"),
]

C, N, API, IMAGES = "/compute/v2.1", "/network/v2.0", "/isthmus/v1", "/image/v2/images"
SWEEP = 0.5


@pytest.fixture(scope="module")
def lower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = f"sweep_interval: {SWEEP}\nhealth_interval: 0.5\n"
    with site_mode_isthmus(tmp_path_factory.mktemp("lower-sync"), config_yaml=settings) as running:
        yield running


@pytest.fixture
def top(tmp_path: Path, db_url: str, lower: Running) -> Iterator[Cloud]:
    with top_isthmus(
        tmp_path / "top", lower, with_local=False, database=db_url, sweep_interval=SWEEP
    ) as cloud:
        yield cloud


def network(top: Cloud, cidr: str) -> str:
    client, demo = top.client, top.demo
    net = ok(client.post(f"{N}/networks", headers=demo, json={"network": {"name": "n"}}), 201)
    body = {"subnet": {"network_id": net["network"]["id"], "cidr": cidr, "ip_version": 4}}
    ok(client.post(f"{N}/subnets", headers=demo, json=body), 201)
    return str(net["network"]["id"])


def default_image(top: Cloud) -> str:
    with top.service.db.read() as session:
        return str(session.scalar(select(Resource.id).where(Resource.kind == "image")))


def create_server(top: Cloud, net: str, image: str | None = None, **extra: Any) -> Any:
    body = {
        "name": "vm",
        "flavorRef": "1",
        "imageRef": image or default_image(top),
        "availability_zone": "lower",
        "networks": [{"uuid": net}],
        **extra,
    }
    return top.client.post(f"{C}/servers", headers=top.demo, json={"server": body})


def boot(top: Cloud, net: str, image: str | None = None, **extra: Any) -> str:
    server_id = str(ok(create_server(top, net, image, **extra), 202)["server"]["id"])
    wait_for(
        lambda: show(top, server_id)["status"] == "ACTIVE",
        timeout=60,
        interval=0.2,
        what="the server to be ACTIVE",
    )
    return server_id


def sweeps_pass(top: Cloud, rounds: int) -> None:
    """`rounds` sweep intervals pass for the top's health loop, each ending in a sweep of
    every site that is up: its clock is moved on instead of the test sleeping, so no
    round is missed on a busy machine (the loop's thread pauses meanwhile)."""
    health = top.service.health
    health.stop()
    clock = ManualClock()
    health.clock = clock
    try:
        for _ in range(rounds):
            clock.advance(SWEEP)
            health.sweep_due()
    finally:
        health.clock = time.monotonic
        health.start()


def show(top: Cloud, server_id: str) -> Any:
    return ok(top.client.get(f"{C}/servers/{server_id}", headers=top.demo))["server"]


def delete_server(top: Cloud, conn: Connection, server_id: str) -> None:
    ok(top.client.delete(f"{C}/servers/{server_id}", headers=top.demo), 204)
    wait_for(
        lambda: top.client.get(f"{C}/servers/{server_id}", headers=top.demo).status_code == 404,
        timeout=60,
        interval=0.2,
        what="the server to go",
    )
    assert conn.compute.find_server(f"isthmus-{server_id}") is None


# -- drift and state flowing back -------------------------------------------------------------


def test_a_server_deleted_in_the_lower_isthmus_is_drift_at_the_top(
    top: Cloud, lower: Running
) -> None:
    conn = below(lower)
    server_id = boot(top, network(top, "10.61.0.0/24"))
    lower_server = conn.compute.find_server(f"isthmus-{server_id}")
    conn.compute.delete_server(lower_server)
    wait_for(
        lambda: conn.compute.find_server(f"isthmus-{server_id}") is None,
        timeout=60,
        interval=0.2,
        what="the lower Isthmus to drop the server",
    )
    shown = wait_for(
        lambda: (s := show(top, server_id))["status"] == "ERROR" and s,
        timeout=60,
        interval=0.2,
        what="the top to see the drift",
    )
    assert "deleted in site lower outside Isthmus" in shown["fault"]["message"]
    site = ok(top.client.get(f"{API}/sites/lower", headers=top.admin))["site"]
    assert site["drifted"] == {"server": 1}

    # a change and several sweeps later, the lower Isthmus still has no such server
    url = f"{C}/servers/{server_id}"
    ok(top.client.put(url, headers=top.demo, json={"server": {"name": "renamed"}}))
    sweeps_pass(top, 4)
    assert top.service.engine.run_until_idle(30)
    assert conn.compute.find_server(f"isthmus-{server_id}") is None
    assert show(top, server_id)["status"] == "ERROR"

    # the tenant deletes it at the top: gone, and its port leaves the lower Isthmus too
    port = ok(top.client.get(f"{N}/ports?device_id={server_id}", headers=top.demo))["ports"][0]
    delete_server(top, conn, server_id)
    wait_for(
        lambda: conn.network.find_port(f"isthmus-{port['id']}") is None,
        timeout=60,
        interval=0.2,
        what="the port to leave the lower Isthmus",
    )


def test_a_server_the_lower_site_puts_in_error_shows_the_sites_fault_at_the_top(
    top: Cloud, lower: Running
) -> None:
    conn = below(lower)
    server_id = boot(top, network(top, "10.62.0.0/24"))
    lower_id = conn.compute.find_server(f"isthmus-{server_id}").id
    # the lower Isthmus' own embedded site fails the server (its hypervisor, say)
    state = SiteState(lower.data_dir / "sites" / "lower-az")
    try:
        obj = state.find("server", lower_id)
        assert obj is not None
        state.update(obj.site_id, status="ERROR", fault="disk array lost in lower-az")
    finally:
        state.close()
    wait_for(
        lambda: conn.compute.get_server(lower_id).status == "ERROR",
        timeout=60,
        interval=0.2,
        what="the lower Isthmus to show ERROR",
    )
    assert conn.compute.get_server(lower_id).fault["message"] == "disk array lost in lower-az"
    shown = wait_for(
        lambda: (s := show(top, server_id))["status"] == "ERROR" and s,
        timeout=60,
        interval=0.2,
        what="the top to show ERROR",
    )
    assert shown["fault"]["message"] == "disk array lost in lower-az"
    delete_server(top, conn, server_id)


def test_foreign_objects_in_the_lower_isthmus_are_listed_and_left_alone(
    top: Cloud, lower: Running
) -> None:
    conn = below(lower)
    made = conn.network.create_network(name="operators-own")
    try:

        def listed() -> Any:
            site = ok(top.client.get(f"{API}/sites/lower", headers=top.admin))["site"]
            items = site["foreign"]["items"]
            return site if any(i["id"] == made.id for i in items) else None

        site = wait_for(
            listed, timeout=60, interval=0.2, what="the top to list the foreign network"
        )
        assert site["foreign"]["known"] and site["foreign"]["counts"]["network"] >= 1
        assert {"kind": "network", "id": made.id, "name": "operators-own"} in site["foreign"][
            "items"
        ]
        # the top's own objects there are not foreign
        server_id = boot(top, network(top, "10.63.0.0/24"))
        sweeps_pass(top, 3)
        site = ok(top.client.get(f"{API}/sites/lower", headers=top.admin))["site"]
        names = {i["name"] for i in site["foreign"]["items"]}
        assert not any(name.startswith("isthmus-") for name in names)
        delete_server(top, conn, server_id)
        assert conn.network.get_network(made.id).name == "operators-own"
    finally:
        conn.network.delete_network(made.id)


# -- quotas ------------------------------------------------------------------------------------


def test_the_global_quota_answers_413_at_the_top_whatever_the_site_allows(
    top: Cloud, lower: Running
) -> None:
    conn = below(lower)
    site_quota = conn.compute.get(f"/os-quota-sets/{conn.current_project_id}").json()
    assert site_quota["quota_set"]["instances"] >= 10  # the site would take many more
    demo = project_id(top.service, "demo")
    body = {"quota_set": {"instances": 1}}
    ok(top.client.put(f"{C}/os-quota-sets/{demo}", headers=top.admin, json=body))
    net = network(top, "10.64.0.0/24")
    server_id = boot(top, net)
    refused = create_server(top, net)
    assert refused.status_code == 413, refused.text
    assert "Quota exceeded for instances" in refused.text
    servers = ok(top.client.get(f"{C}/servers", headers=top.demo))["servers"]
    assert [s["id"] for s in servers] == [server_id]  # the refusal changed nothing
    delete_server(top, conn, server_id)


def test_a_smaller_site_quota_puts_the_server_in_error_with_the_sites_message(
    top: Cloud, lower: Running
) -> None:
    conn = below(lower)
    url = f"/os-quota-sets/{conn.current_project_id}"
    response = conn.compute.put(url, json={"quota_set": {"instances": 0}})
    assert response.status_code == 200, response.text
    try:
        accepted = ok(create_server(top, network(top, "10.65.0.0/24")), 202)["server"]
        shown = wait_for(
            lambda: (s := show(top, accepted["id"]))["status"] == "ERROR" and s,
            timeout=60,
            interval=0.2,
            what="the server to go ERROR",
        )
        assert "Quota exceeded for instances" in shown["fault"]["message"]
        assert "site lower" in shown["fault"]["message"]
    finally:
        conn.compute.delete(url)
    delete_server(top, conn, accepted["id"])


# -- what a server needs in its site ---------------------------------------------------------------


def test_the_key_pair_and_image_a_server_uses_are_made_present_in_its_site(
    top: Cloud, lower: Running
) -> None:
    conn, client = below(lower), top.client
    key = ok(
        client.post(f"{C}/os-keypairs", headers=top.demo, json={"keypair": {"name": "deploy"}})
    )["keypair"]
    data = b"an image only the top had\n" * 1000
    image = ok(
        client.post(
            IMAGES,
            headers=top.demo,
            json={"name": "app", "disk_format": "raw", "container_format": "bare"},
        ),
        201,
    )
    upload = client.put(
        f"{IMAGES}/{image['id']}/file",
        headers={**top.demo, "Content-Type": "application/octet-stream"},
        content=data,
    )
    assert upload.status_code == 204, upload.text
    assert conn.image.find_image(f"isthmus-{image['id']}") is None

    server_id = boot(top, network(top, "10.66.0.0/24"), image["id"], key_name="deploy")
    copied = conn.image.find_image(f"isthmus-{image['id']}")
    assert copied is not None
    assert copied.checksum == hashlib.md5(data, usedforsecurity=False).hexdigest()
    site_key = keypair_name("deploy", key["public_key"])
    assert conn.compute.get_keypair(site_key).public_key.strip() == key["public_key"].strip()
    lower_server = conn.compute.find_server(f"isthmus-{server_id}")
    assert conn.compute.get_server(lower_server.id).key_name == site_key
    assert conn.compute.get_server(lower_server.id).image.id == copied.id
    delete_server(top, conn, server_id)
