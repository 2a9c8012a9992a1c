"""Compute server actions beyond start/stop/reboot (api/compute/actions.py,
intent/server_lifecycle.py), server tags (2.26) and interface attach/detach, on
SQLite and PostgreSQL: Nova's statuses, its 409s, its error order (a missing
server is 404 on every action and sub-resource), and bad input changing nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from isthmus.store.tables import Resource, Site
from tests.api.test_compute import boot_ok, demo_network, image_id, show
from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud

V = "/compute/v2.1"
LATEST = {"OpenStack-API-Version": "compute 2.96"}
MISSING = "00000000-0000-4000-8000-00000000dead"


def act(
    cloud: Cloud,
    server_id: str,
    body: Any,
    headers: dict[str, str] | None = None,
    version: dict[str, str] | None = None,
) -> Any:
    return cloud.client.post(
        f"{V}/servers/{server_id}/action",
        headers={**(headers or cloud.demo), **(version or {})},
        json=body,
    )


def ok(response: Any, status: int = 202) -> Any:
    assert response.status_code == status, response.text
    return response


def conflict(response: Any) -> str:
    assert response.status_code == 409, response.text
    return str(response.json()["conflictingRequest"]["message"])


def booted(cloud: Cloud, name: str = "vm") -> str:
    server_id = boot_ok(cloud, demo_network(cloud, name=f"{name}-net"), name)
    cloud.wait_idle()
    assert show(cloud, server_id)["status"] == "ACTIVE"
    return server_id


def settled(cloud: Cloud, server_id: str, headers: dict[str, str] | None = None) -> Any:
    cloud.wait_idle()
    return show(cloud, server_id, headers)


def _allocations(cloud: Cloud) -> dict[str, Any]:
    with cloud.service.db.read() as session:
        return {s.name: dict(s.allocated or {}) for s in session.scalars(select(Site))}


def unchanged(cloud: Cloud, request: Any) -> Any:
    """Run `request()` and assert it wrote nothing; returns its response. (The
    health loop keeps writing the sites' health: of the sites table, only the
    placement allocations are compared.)"""
    cloud.wait_idle()
    before, claimed = snapshot(cloud.service), _allocations(cloud)
    response = request()
    after = snapshot(cloud.service)
    before.digests.pop("sites"), after.digests.pop("sites")
    assert before == after, difference(before, after)
    assert _allocations(cloud) == claimed
    return response


# -- error order -------------------------------------------------------------------------------

EVERY_ACTION = [
    {"pause": None},
    {"unpause": None},
    {"suspend": None},
    {"resume": None},
    {"lock": None},
    {"unlock": None},
    {"shelve": None},
    {"shelveOffload": None},
    {"unshelve": None},
    {"rebuild": {"imageRef": "IMAGE"}},
    {"resize": {"flavorRef": "2"}},
    {"confirmResize": None},
    {"revertResize": None},
    {"forceDelete": None},
    {"restore": None},
    {"os-getConsoleOutput": {"length": 10}},
    {"createImage": {"name": "snap"}},
    {"rescue": None},
    {"unrescue": None},
    {"os-start": None},
    {"os-stop": None},
    {"reboot": {"type": "HARD"}},
]


def test_a_missing_server_is_404_on_every_action_and_sub_resource(cloud: Cloud) -> None:
    server_id = booted(cloud)
    other = cloud.new_member("other")
    image = image_id(cloud)
    for target, headers in ((MISSING, cloud.demo), (server_id, other)):
        for body in EVERY_ACTION:
            body = {k: ({"imageRef": image} if k == "rebuild" else v) for k, v in body.items()}
            response = unchanged(cloud, lambda t=target, b=body, h=headers: act(cloud, t, b, h))
            assert response.status_code == 404, (body, response.text)
            assert response.json()["itemNotFound"]["message"] == (
                f"Instance {target} could not be found."
            )
        base = f"{V}/servers/{target}"
        for method, path, body in (
            ("get", f"{base}/tags", None),
            ("put", f"{base}/tags", {"tags": ["a"]}),
            ("delete", f"{base}/tags", None),
            ("get", f"{base}/tags/a", None),
            ("put", f"{base}/tags/a", None),
            ("delete", f"{base}/tags/a", None),
            ("get", f"{base}/os-interface", None),
            ("post", f"{base}/os-interface", {"interfaceAttachment": {}}),
            ("delete", f"{base}/os-interface/{MISSING}", None),
        ):
            response = unchanged(
                cloud,
                lambda m=method, p=path, b=body, h=headers: cloud.client.request(
                    m, p, headers={**h, **LATEST}, json=b
                ),
            )
            assert response.status_code == 404, (method, path, response.text)
            assert f"Instance {target} could not be found." in response.text


def test_unknown_or_malformed_actions_are_400_and_change_nothing(cloud: Cloud) -> None:
    server_id = booted(cloud)
    for empty in ({"lock": {}}, {"unlock": {}}):  # Tempest's client sends {} for null
        ok(act(cloud, server_id, empty))
    for body, words in (
        ({"levitate": None}, "There is no such action: levitate"),
        ({"pause": None, "unpause": None}, "Malformed request body"),
        ({}, "Malformed request body"),
        ([1], "Malformed request body"),
        ({"pause": {"now": True}}, "is not of type 'null'"),
        ({"lock": {"locked_reason": "x"}}, "Additional properties"),  # below 2.73
        ({"os-getConsoleOutput": {"length": "ten"}}, "must be an integer"),
        ({"rebuild": {}}, "'imageRef' is a required property"),
        ({"rebuild": {"imageRef": "x", "colour": 1}}, "Additional properties"),
        ({"resize": {}}, "'flavorRef' is a required property"),
        ({"createImage": {}}, "'name' is a required property"),
        ({"createImage": {"name": "s", "metadata": {"k": 1}}}, "must be a string"),
        ({"unshelve": {"availability_zone": "site-a"}}, "Additional properties"),  # < 2.77
    ):
        response = unchanged(cloud, lambda b=body: act(cloud, server_id, b))
        assert response.status_code == 400, (body, response.text)
        assert words in response.text, (body, response.text)
    assert show(cloud, server_id)["status"] == "ACTIVE"


# -- pause, suspend, lock -------------------------------------------------------------------------


def test_pause_unpause_suspend_resume_with_nova_states(cloud: Cloud) -> None:
    server_id = booted(cloud)
    message = conflict(unchanged(cloud, lambda: act(cloud, server_id, {"unpause": None})))
    assert message == f"Cannot 'unpause' instance {server_id} while it is in vm_state active"
    ok(act(cloud, server_id, {"pause": None}))
    pausing = show(cloud, server_id)
    assert pausing["OS-EXT-STS:task_state"] in ("pausing", None)
    paused = settled(cloud, server_id)
    assert (paused["status"], paused["OS-EXT-STS:vm_state"]) == ("PAUSED", "paused")
    listed = cloud.client.get(f"{V}/servers/detail?status=PAUSED", headers=cloud.demo)
    assert [s["id"] for s in listed.json()["servers"]] == [server_id]
    assert paused["OS-EXT-STS:power_state"] == 3 and paused["OS-EXT-STS:task_state"] is None
    for body, verb in (({"os-stop": None}, "stop"), ({"suspend": None}, "suspend")):
        message = conflict(unchanged(cloud, lambda b=body: act(cloud, server_id, b)))
        assert message == f"Cannot '{verb}' instance {server_id} while it is in vm_state paused"
    ok(act(cloud, server_id, {"unpause": None}))
    assert settled(cloud, server_id)["status"] == "ACTIVE"
    ok(act(cloud, server_id, {"suspend": None}))
    suspended = settled(cloud, server_id)
    assert (suspended["status"], suspended["OS-EXT-STS:vm_state"]) == ("SUSPENDED", "suspended")
    assert conflict(act(cloud, server_id, {"pause": None})).endswith("vm_state suspended")
    ok(act(cloud, server_id, {"resume": None}))
    assert settled(cloud, server_id)["status"] == "ACTIVE"
    ok(act(cloud, server_id, {"os-stop": None}))
    assert settled(cloud, server_id)["status"] == "SHUTOFF"
    assert conflict(act(cloud, server_id, {"pause": None})).endswith("vm_state stopped")
    assert conflict(act(cloud, server_id, {"suspend": None})).endswith("vm_state stopped")
    # the site holds the server in the state the intent asks for
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]
    observed = cloud.service.sites.get(site or "").observe("server", server_id)
    assert observed is not None and observed.status == "SHUTOFF"


def test_pause_reaches_the_site(cloud: Cloud) -> None:
    server_id = booted(cloud)
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]
    driver = cloud.service.sites.get(site or "")
    ok(act(cloud, server_id, {"pause": None}))
    cloud.wait_idle()
    observed = driver.observe("server", server_id)
    assert observed is not None and observed.status == "PAUSED"
    ok(act(cloud, server_id, {"unpause": None}))
    cloud.wait_idle()
    observed = driver.observe("server", server_id)
    assert observed is not None and observed.status == "ACTIVE"


def test_lock_refuses_a_member_not_an_admin(cloud: Cloud) -> None:
    server_id = booted(cloud)
    ok(act(cloud, server_id, {"lock": None}))
    shown = cloud.client.get(f"{V}/servers/{server_id}", headers={**cloud.demo, **LATEST})
    body = shown.json()["server"]
    assert body["locked"] is True and body["locked_reason"] is None
    for request in (
        lambda: act(cloud, server_id, {"os-stop": None}),
        lambda: act(cloud, server_id, {"pause": None}),
        lambda: act(cloud, server_id, {"reboot": {"type": "SOFT"}}),
        lambda: act(cloud, server_id, {"rebuild": {"imageRef": image_id(cloud)}}),
        lambda: act(cloud, server_id, {"resize": {"flavorRef": "2"}}),
        lambda: act(cloud, server_id, {"shelve": None}),
        lambda: cloud.client.delete(f"{V}/servers/{server_id}", headers=cloud.demo),
        lambda: cloud.client.post(
            f"{V}/servers/{server_id}/metadata", headers=cloud.demo, json={"metadata": {"a": "b"}}
        ),
    ):
        assert conflict(unchanged(cloud, request)) == f"Instance {server_id} is locked"
    # the admin may act on a locked server; the lock stays
    ok(act(cloud, server_id, {"pause": None}, headers=cloud.admin))
    assert settled(cloud, server_id)["status"] == "PAUSED"
    ok(act(cloud, server_id, {"unpause": None}, headers=cloud.admin))
    assert settled(cloud, server_id)["status"] == "ACTIVE"
    ok(act(cloud, server_id, {"unlock": None}))
    ok(act(cloud, server_id, {"os-stop": None}))
    assert settled(cloud, server_id)["status"] == "SHUTOFF"
    # 2.73: a reason, shown; an admin's lock is lifted only by an admin
    ok(act(cloud, server_id, {"lock": {"locked_reason": "audit"}}, cloud.admin, LATEST))
    body = cloud.client.get(f"{V}/servers/{server_id}", headers={**cloud.demo, **LATEST})
    assert body.json()["server"]["locked_reason"] == "audit"
    assert unchanged(cloud, lambda: act(cloud, server_id, {"unlock": None})).status_code == 403
    ok(act(cloud, server_id, {"unlock": None}, headers=cloud.admin))
    body = cloud.client.get(f"{V}/servers/{server_id}", headers={**cloud.demo, **LATEST})
    assert body.json()["server"]["locked"] is False


def test_rescue_and_unrescue(cloud: Cloud) -> None:
    server_id = booted(cloud)
    message = conflict(unchanged(cloud, lambda: act(cloud, server_id, {"unrescue": None})))
    assert message == f"Cannot 'unrescue' instance {server_id} while it is in vm_state active"
    answer = ok(act(cloud, server_id, {"rescue": {"adminPass": "secret"}}), 200).json()
    assert answer == {"adminPass": "secret"}
    rescued = settled(cloud, server_id)
    assert (rescued["status"], rescued["OS-EXT-STS:vm_state"]) == ("RESCUE", "rescued")
    assert conflict(act(cloud, server_id, {"os-stop": None})).endswith("vm_state rescued")
    assert conflict(act(cloud, server_id, {"rescue": None})).endswith("vm_state rescued")
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]
    observed = cloud.service.sites.get(site or "").observe("server", server_id)
    assert observed is not None and observed.status == "RESCUE"
    ok(act(cloud, server_id, {"unrescue": None}))
    assert settled(cloud, server_id)["status"] == "ACTIVE"
    ok(act(cloud, server_id, {"os-stop": None}))
    assert settled(cloud, server_id)["status"] == "SHUTOFF"
    made = ok(act(cloud, server_id, {"rescue": None}), 200).json()  # from stopped too
    assert made["adminPass"]
    assert settled(cloud, server_id)["status"] == "RESCUE"


# -- console output ------------------------------------------------------------------------------


def test_console_output_is_the_sites_log_of_the_server(cloud: Cloud) -> None:
    server_id = booted(cloud)
    ok(act(cloud, server_id, {"reboot": {"type": "SOFT"}}))
    cloud.wait_idle()
    whole = ok(act(cloud, server_id, {"os-getConsoleOutput": {}}), 200).json()["output"]
    lines = whole.splitlines()
    assert len(lines) > 10 and "booting vm" in lines[0] and "reboot" in lines[-1]
    assert "eth0: port " in whole and "vm login:" in whole
    # the tail as Nova cuts it: the last N pieces of the log split at newlines
    for length in (1, 2, 10):
        tail = act(cloud, server_id, {"os-getConsoleOutput": {"length": length}}).json()
        assert len(tail["output"].split("\n")) == length
        assert whole.endswith(tail["output"])
    assert act(cloud, server_id, {"os-getConsoleOutput": {"length": 0}}).json() == {"output": ""}
    every = act(cloud, server_id, {"os-getConsoleOutput": {"length": "-1"}}).json()
    assert every["output"] == whole
    ok(act(cloud, server_id, {"os-stop": None}))
    cloud.wait_idle()  # Nova gives a stopped server's log too
    assert "now shutoff" in act(cloud, server_id, {"os-getConsoleOutput": None}).json()["output"]


# -- tags ----------------------------------------------------------------------------------------


def test_server_tags_from_2_26(cloud: Cloud) -> None:
    server_id = booted(cloud)
    base = f"{V}/servers/{server_id}/tags"
    h = {**cloud.demo, **LATEST}
    old = {**cloud.demo, "OpenStack-API-Version": "compute 2.25"}
    assert cloud.client.get(base, headers=old).status_code == 404
    assert cloud.client.get(base, headers=h).json() == {"tags": []}
    assert (
        ok(cloud.client.put(f"{base}/red", headers=h), 201)
        .headers["Location"]
        .endswith(f"/servers/{server_id}/tags/red")
    )
    ok(cloud.client.put(f"{base}/red", headers=h), 204)
    ok(cloud.client.get(f"{base}/red", headers=h), 204)
    ok(cloud.client.get(f"{base}/blue", headers=h), 404)
    replaced = ok(cloud.client.put(base, headers=h, json={"tags": ["a", "b"]}), 200).json()
    assert replaced == {"tags": ["a", "b"]}
    assert show(cloud, server_id, h)["tags"] == ["a", "b"]
    ok(cloud.client.delete(f"{base}/a", headers=h), 204)
    ok(cloud.client.delete(f"{base}/a", headers=h), 404)
    for bad in (
        lambda: cloud.client.put(f"{base}/a,b", headers=h),
        lambda: cloud.client.put(f"{base}/{'x' * 61}", headers=h),
        lambda: cloud.client.put(base, headers=h, json={"tags": "a"}),
        lambda: cloud.client.put(base, headers=h, json={"tags": [f"t{i}" for i in range(51)]}),
        lambda: cloud.client.put(base, headers=h, json={"tags": [""]}),
    ):
        assert unchanged(cloud, bad).status_code == 400
    ok(cloud.client.delete(base, headers=h), 204)
    assert cloud.client.get(base, headers=h).json() == {"tags": []}


# -- interfaces ----------------------------------------------------------------------------------


def test_interface_attach_and_detach(cloud: Cloud) -> None:
    server_id = booted(cloud)
    second = demo_network(cloud, "10.9.0.0/24", "second")
    base = f"{V}/servers/{server_id}/os-interface"
    attached = ok(
        cloud.client.post(
            base,
            headers=cloud.demo,
            json={
                "interfaceAttachment": {
                    "net_id": second,
                    "fixed_ips": [{"ip_address": "10.9.0.50"}],
                }
            },
        ),
        200,
    ).json()["interfaceAttachment"]
    assert attached["net_id"] == second
    assert attached["fixed_ips"][0]["ip_address"] == "10.9.0.50"
    cloud.wait_idle()
    listed = cloud.client.get(base, headers=cloud.demo).json()["interfaceAttachments"]
    assert len(listed) == 2
    addresses = show(cloud, server_id)["addresses"]
    assert [a["addr"] for a in addresses["second"]] == ["10.9.0.50"]
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]
    site_obj = cloud.service.sites.get(site or "").state.find("server", server_id)  # type: ignore[attr-defined]
    assert attached["port_id"] in site_obj.spec["port_ids"]
    # a port given by the caller, then refusals that write nothing
    port = cloud.client.post(
        "/network/v2.0/ports", headers=cloud.demo, json={"port": {"network_id": second}}
    ).json()["port"]
    for body, status in (
        ({"interfaceAttachment": {"port_id": port["id"], "net_id": second}}, 400),
        ({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.9.0.9"}]}}, 400),
        ({"interfaceAttachment": {"port_id": MISSING}}, 404),
        ({"interfaceAttachment": {"net_id": MISSING}}, 404),
        ({"interfaceAttachment": {"port_id": attached["port_id"]}}, 409),
        (
            {"interfaceAttachment": {"net_id": second, "fixed_ips": [{"ip_address": "10.9.0.50"}]}},
            400,
        ),
    ):
        response = unchanged(
            cloud, lambda b=body: cloud.client.post(base, headers=cloud.demo, json=b)
        )
        assert response.status_code == status, (body, response.text)
    ok(
        cloud.client.post(
            base, headers=cloud.demo, json={"interfaceAttachment": {"port_id": port["id"]}}
        ),
        200,
    )
    cloud.wait_idle()
    assert len(cloud.client.get(base, headers=cloud.demo).json()["interfaceAttachments"]) == 3
    # detach: the port made for the attach goes, the given one stays unbound
    ok(cloud.client.delete(f"{base}/{attached['port_id']}", headers=cloud.demo))
    ok(cloud.client.delete(f"{base}/{port['id']}", headers=cloud.demo))
    missing = unchanged(
        cloud, lambda: cloud.client.delete(f"{base}/{port['id']}", headers=cloud.demo)
    )
    assert missing.status_code == 404
    cloud.wait_idle()
    assert len(cloud.client.get(base, headers=cloud.demo).json()["interfaceAttachments"]) == 1
    kept = cloud.client.get(f"/network/v2.0/ports/{port['id']}", headers=cloud.demo).json()["port"]
    assert kept["device_id"] == ""
    gone = cloud.client.get(f"/network/v2.0/ports/{attached['port_id']}", headers=cloud.demo)
    assert gone.status_code == 404
    site_obj = cloud.service.sites.get(site or "").state.find("server", server_id)  # type: ignore[attr-defined]
    assert len(site_obj.spec["port_ids"]) == 1


# -- rebuild, resize -------------------------------------------------------------------------------


def test_rebuild_keeps_id_and_addresses(cloud: Cloud) -> None:
    server_id = booted(cloud)
    before = show(cloud, server_id)
    image = image_id(cloud)
    answer = ok(
        act(cloud, server_id, {"rebuild": {"imageRef": image, "name": "again", "adminPass": "pw"}})
    ).json()["server"]
    assert answer["id"] == server_id and answer["adminPass"] == "pw"
    assert answer["status"] == "REBUILD" and answer["name"] == "again"
    after = settled(cloud, server_id)
    assert after["status"] == "ACTIVE" and after["addresses"] == before["addresses"]
    assert "rebuilding" in act(cloud, server_id, {"os-getConsoleOutput": None}).json()["output"]
    bad = unchanged(cloud, lambda: act(cloud, server_id, {"rebuild": {"imageRef": MISSING}}))
    assert bad.status_code == 400


def test_resize_verify_confirm_and_revert_with_capacity(cloud: Cloud) -> None:
    server_id = booted(cloud)
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]

    def allocated() -> dict[str, int]:
        with cloud.service.db.read() as session:
            return dict(session.get(Site, site).allocated or {})  # type: ignore[union-attr]

    flavors = cloud.client.get(f"{V}/flavors/detail", headers=cloud.demo).json()["flavors"]
    small = next(f for f in flavors if f["name"] == "m1.small")
    assert (
        unchanged(cloud, lambda: act(cloud, server_id, {"resize": {"flavorRef": "1"}})).status_code
        == 400
    )
    start = allocated()
    ok(act(cloud, server_id, {"resize": {"flavorRef": small["id"]}}))
    assert show(cloud, server_id)["status"] in ("RESIZE", "VERIFY_RESIZE")
    verify = settled(cloud, server_id)
    assert (verify["status"], verify["OS-EXT-STS:vm_state"]) == ("VERIFY_RESIZE", "resized")
    listed = cloud.client.get(f"{V}/servers?status=VERIFY_RESIZE", headers=cloud.demo)
    assert [s["id"] for s in listed.json()["servers"]] == [server_id]
    assert verify["flavor"]["id"] == small["id"]
    assert allocated()["vcpus"] == start["vcpus"] + small["vcpus"]
    assert conflict(act(cloud, server_id, {"resize": {"flavorRef": "1"}})).endswith(
        "vm_state resized"
    )
    ok(act(cloud, server_id, {"confirmResize": None}), 204)
    done = settled(cloud, server_id)
    assert done["status"] == "ACTIVE" and done["flavor"]["id"] == small["id"]
    assert allocated()["vcpus"] == start["vcpus"] - 1 + small["vcpus"]
    site_obj = cloud.service.sites.get(site or "").state.find("server", server_id)  # type: ignore[attr-defined]
    assert site_obj.spec["ram_mb"] == small["ram"]
    assert conflict(act(cloud, server_id, {"confirmResize": None})).endswith("vm_state active")
    # back to the first flavor, then reverted
    ok(act(cloud, server_id, {"resize": {"flavorRef": "1"}}))
    assert settled(cloud, server_id)["status"] == "VERIFY_RESIZE"
    ok(act(cloud, server_id, {"revertResize": None}))
    reverted = settled(cloud, server_id)
    assert reverted["status"] == "ACTIVE" and reverted["flavor"]["id"] == small["id"]
    site_obj = cloud.service.sites.get(site or "").state.find("server", server_id)  # type: ignore[attr-defined]
    assert site_obj.spec["ram_mb"] == small["ram"]
    assert allocated()["vcpus"] == start["vcpus"] - 1 + small["vcpus"]
    # a flavor no site has room for: 400, nothing written
    huge = cloud.client.post(
        f"{V}/flavors",
        headers=cloud.admin,
        json={"flavor": {"name": "huge", "ram": 1024, "vcpus": 100000, "disk": 1}},
    ).json()["flavor"]
    refused = unchanged(cloud, lambda: act(cloud, server_id, {"resize": {"flavorRef": huge["id"]}}))
    assert refused.status_code == 400 and "No valid host" in refused.text


# -- createImage ---------------------------------------------------------------------------------


def test_create_image_has_the_bytes_of_the_servers_disk(cloud: Cloud) -> None:
    server_id = booted(cloud)
    with cloud.service.db.read() as session:
        server = session.get(Resource, server_id)
        assert server is not None
        site, base = server.site, session.get(Resource, server.spec["image_id"])
        assert base is not None
        base_bytes = open(base.spec["data_path"], "rb").read()  # noqa: SIM115
    answer = ok(act(cloud, server_id, {"createImage": {"name": "snap", "metadata": {"k": "v"}}}))
    image_id = answer.headers["Location"].rsplit("/", 1)[-1]
    cloud.wait_idle()
    image = cloud.client.get(f"/image/v2/images/{image_id}", headers=cloud.demo).json()
    assert image["status"] == "active" and image["name"] == "snap"
    assert image["visibility"] == "private" and image["k"] == "v"
    assert image["image_type"] == "snapshot" and image["instance_uuid"] == server_id
    assert image["size"] == len(base_bytes) and site in image["stores"].split(",")
    data = cloud.client.get(f"/image/v2/images/{image_id}/file", headers=cloud.demo)
    assert data.status_code == 200 and data.content == base_bytes
    # 2.45: the id in the body; the new image boots a server
    newer = ok(act(cloud, server_id, {"createImage": {"name": "snap2"}}, version=LATEST)).json()
    assert set(newer) == {"image_id"}
    cloud.wait_idle()
    boot = cloud.client.post(
        f"{V}/servers",
        headers=cloud.demo,
        json={"server": {"name": "from-snap", "flavorRef": "1", "imageRef": image_id,
                         "networks": "none"}},
        )  # fmt: skip
    assert boot.status_code == 202, boot.text
    ok(act(cloud, server_id, {"shelve": None}))
    cloud.wait_idle()
    refused = unchanged(cloud, lambda: act(cloud, server_id, {"createImage": {"name": "x"}}))
    assert conflict(refused).endswith("vm_state shelved_offloaded")


# -- shelve, force delete, restore -----------------------------------------------------------------


def test_shelve_offloads_and_unshelve_places_again(cloud: Cloud) -> None:
    server_id = booted(cloud)
    before = show(cloud, server_id)
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]
        used = dict(session.get(Site, site).allocated or {})  # type: ignore[union-attr]
    ok(act(cloud, server_id, {"shelve": None}))
    shelved = settled(cloud, server_id)
    assert shelved["status"] == "SHELVED_OFFLOADED"
    assert shelved["OS-EXT-STS:vm_state"] == "shelved_offloaded"
    assert shelved["addresses"] == before["addresses"]
    assert shelved["OS-EXT-AZ:availability_zone"] == site
    listed = cloud.client.get(f"{V}/servers?status=SHELVED_OFFLOADED", headers=cloud.demo)
    assert [s["id"] for s in listed.json()["servers"]] == [server_id]
    assert cloud.client.get(f"{V}/servers?status=ACTIVE", headers=cloud.demo).json() == {
        "servers": []
    }
    assert cloud.service.sites.get(site or "").observe("server", server_id) is None
    with cloud.service.db.read() as session:
        freed = dict(session.get(Site, site).allocated or {})  # type: ignore[union-attr]
    assert freed["vcpus"] == used["vcpus"] - 1 and freed["servers"] == used["servers"] - 1
    assert conflict(act(cloud, server_id, {"shelveOffload": None})).endswith(
        "vm_state shelved_offloaded"
    )
    assert conflict(act(cloud, server_id, {"os-start": None})).endswith(
        "vm_state shelved_offloaded"
    )
    assert conflict(act(cloud, server_id, {"os-getConsoleOutput": None})) == (
        f"Instance {server_id} is not ready"
    )
    other = next(s for s in ("site-a", "site-b", "site-c") if s != site)
    ok(act(cloud, server_id, {"unshelve": {"availability_zone": other}}, version=LATEST))
    back = settled(cloud, server_id)
    assert back["status"] == "ACTIVE" and back["OS-EXT-AZ:availability_zone"] == other
    assert back["addresses"] == before["addresses"]
    assert cloud.service.sites.get(other).observe("server", server_id) is not None
    assert conflict(act(cloud, server_id, {"unshelve": None})).endswith("vm_state active")


def test_unshelve_right_after_shelve(cloud: Cloud) -> None:
    server_id = booted(cloud)
    ok(act(cloud, server_id, {"shelve": None}))
    ok(act(cloud, server_id, {"unshelve": None}))  # before the engine offloaded it
    back = settled(cloud, server_id)
    assert back["status"] == "ACTIVE"
    with cloud.service.db.read() as session:
        site = session.get(Resource, server_id).site  # type: ignore[union-attr]
    assert cloud.service.sites.get(site or "").observe("server", server_id) is not None


def test_force_delete_deletes_and_restore_is_409_without_soft_delete(cloud: Cloud) -> None:
    server_id = booted(cloud)
    message = conflict(unchanged(cloud, lambda: act(cloud, server_id, {"restore": None})))
    assert message == f"Cannot 'restore' instance {server_id} while it is in vm_state active"
    ok(act(cloud, server_id, {"forceDelete": None}))
    cloud.wait_idle()
    assert cloud.client.get(f"{V}/servers/{server_id}", headers=cloud.demo).status_code == 404
    with cloud.service.db.read() as session:
        assert session.scalar(select(Resource.id).where(Resource.kind == "server")) is None


@pytest.mark.parametrize("action", ["pause", "suspend", "shelve"])
def test_actions_on_a_building_server_are_409(cloud: Cloud, action: str) -> None:
    site = "site-a"
    cloud.service.sites.get(site).set_down(True)  # type: ignore[attr-defined]
    cloud.service.health.check_all()
    try:
        server_id = boot_ok(cloud, demo_network(cloud), "vm", availability_zone=site)
        # (the engine keeps retrying the down site: only the server itself is compared)
        with cloud.service.db.read() as session:
            before = session.get(Resource, server_id)
            assert before is not None
            generation, spec = before.generation, dict(before.spec)
        message = conflict(act(cloud, server_id, {action: None}))
        with cloud.service.db.read() as session:
            after = session.get(Resource, server_id)
            assert after is not None and (after.generation, after.spec) == (generation, spec)
        assert message == f"Cannot '{action}' instance {server_id} while it is in vm_state building"
    finally:
        cloud.service.sites.get(site).set_down(False)  # type: ignore[attr-defined]
        cloud.service.health.check_all()
