"""A site outage seen through the API: the API keeps answering from the store,
creates in other sites proceed, creates aimed at the down site wait with a
visible reason, deletes wait too, and all of it converges once the site is back."""

from __future__ import annotations

from tests.support import Cloud, add_network, project_id
from tests.waiting import wait_for


def _wait(cloud: Cloud, server_id: str, status: str, timeout: float = 30) -> dict:
    """The server's body once it has `status` ({} once it is gone, for "gone")."""

    def reached() -> tuple[dict]:
        response = cloud.client.get(f"/compute/v2.1/servers/{server_id}", headers=cloud.demo)
        if status == "gone" and response.status_code == 404:
            return ({},)
        body = response.json().get("server", {})
        assert body.get("status") == status, f"server is {body.get('status')}: {body}"
        return (body,)

    what = f"server {server_id} to be {status}"
    return wait_for(reached, timeout=timeout, what=what, ignoring=(AssertionError,))[0]


def _boot(cloud: Cloud, net: str, name: str, zone: str) -> str:
    response = cloud.client.post(
        "/compute/v2.1/servers",
        headers=cloud.demo,
        json={
            "server": {
                "name": name,
                "flavorRef": "1",
                "networks": [{"uuid": net}],
                "imageRef": _image(cloud),
                "availability_zone": zone,
            }
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["server"]["id"])


def _image(cloud: Cloud) -> str:
    images = cloud.client.get("/image/v2/images?name=isthmus-minimal", headers=cloud.demo)
    return str(images.json()["images"][0]["id"])


def test_outage_through_the_api(cloud: Cloud) -> None:
    net, _ = add_network(cloud.service, project_id(cloud.service))
    before = _boot(cloud, net, "before", "site-b")
    _wait(cloud, before, "ACTIVE")
    down = cloud.client.post("/isthmus/v1/sites/site-b/down", headers=cloud.admin)
    assert down.status_code == 200, down.text

    waiting = _boot(cloud, net, "waiting", "site-b")
    elsewhere = _boot(cloud, net, "elsewhere", "site-a")
    deleted = cloud.client.delete(f"/compute/v2.1/servers/{before}", headers=cloud.demo)
    assert deleted.status_code == 204
    _wait(cloud, elsewhere, "ACTIVE")
    listed = cloud.client.get("/compute/v2.1/servers/detail", headers=cloud.demo)
    assert listed.status_code == 200
    by_id = {s["id"]: s for s in listed.json()["servers"]}
    assert by_id[waiting]["status"] == "BUILD"
    assert "site-b" in by_id[waiting]["isthmus:pending_reason"]
    assert by_id[before]["OS-EXT-STS:task_state"] == "deleting"
    zones = cloud.client.get("/compute/v2.1/os-availability-zone", headers=cloud.demo).json()
    state = {z["zoneName"]: z["zoneState"]["available"] for z in zones["availabilityZoneInfo"]}
    assert state == {"site-a": True, "site-b": False, "site-c": True}

    up = cloud.client.post("/isthmus/v1/sites/site-b/up", headers=cloud.admin)
    assert up.status_code == 200, up.text
    _wait(cloud, waiting, "ACTIVE")
    _wait(cloud, before, "gone")
    in_site = {
        o.isthmus_id for o in cloud.service.sites.get("site-b").inventory() if o.kind == "server"
    }
    assert in_site == {waiting}
