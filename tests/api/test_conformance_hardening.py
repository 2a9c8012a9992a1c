"""Issue 8, items 7-9: the project id of a Block Storage URL is checked against the
token (Cinder's 400 "Malformed request url", nothing written), Neutron's MAC rules for
ports (zero, broadcast, multicast and malformed MACs refused, on create and update),
405 answers name the allowed methods, and the OpenAPI document says what the server
does (every `/volume/v3/{project_id}` operation declares `project_id`, bodiless
DELETE answers promise no JSON)."""

from __future__ import annotations

import random
import re

import pytest
from sqlalchemy import func, select

from isthmus.model import ipam
from isthmus.store.tables import MacAllocation, Resource, Site
from tests.support import Cloud, project_id

V3 = "/volume/v3"


def _volume_count(cloud: Cloud) -> int:
    with cloud.service.db.read() as session:
        return session.scalar(select(func.count()).where(Resource.kind == "volume")) or 0


# -- item 7: the project id in a Block Storage URL ------------------------------------------


def test_member_cannot_write_through_another_projects_url(cloud: Cloud) -> None:
    admin_project = project_id(cloud.service, "admin")
    body = {"volume": {"size": 1, "name": "stray"}}
    answer = cloud.client.post(f"{V3}/{admin_project}/volumes", headers=cloud.demo, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"badRequest": {"code": 400, "message": "Malformed request url"}}
    assert _volume_count(cloud) == 0
    # reads and every other route under the prefix go through the same check
    for method, path in (
        ("GET", "volumes/detail"),
        ("GET", "limits"),
        ("GET", "types"),
        ("GET", f"os-quota-sets/{admin_project}"),
        ("DELETE", "volumes/anything"),
        ("POST", "snapshots"),
    ):
        answer = cloud.client.request(
            method, f"{V3}/{admin_project}/{path}", headers=cloud.demo, json={}
        )
        assert answer.status_code == 400, (method, path, answer.text)
    # the token's own project is served; without a token it is still 401 first
    own = project_id(cloud.service, "demo")
    made = cloud.client.post(f"{V3}/{own}/volumes", headers=cloud.demo, json=body)
    assert made.status_code == 202, made.text
    assert cloud.client.get(f"{V3}/{admin_project}/volumes").status_code == 401


def test_admin_url_project_is_its_own_scope(cloud: Cloud) -> None:
    """As in Cinder: an admin names its own project in the URL too; it reaches other
    projects' volumes by id, and names quota targets after os-quota-sets/."""
    demo = project_id(cloud.service, "demo")
    admin_project = project_id(cloud.service, "admin")
    made = cloud.client.post(f"{V3}/volumes", headers=cloud.demo, json={"volume": {"size": 1}})
    volume_id = made.json()["volume"]["id"]
    wrong = cloud.client.get(f"{V3}/{demo}/volumes/{volume_id}", headers=cloud.admin)
    assert wrong.status_code == 400
    right = cloud.client.get(f"{V3}/{admin_project}/volumes/{volume_id}", headers=cloud.admin)
    assert right.status_code == 200 and right.json()["volume"]["id"] == volume_id
    quota = cloud.client.get(f"{V3}/{admin_project}/os-quota-sets/{demo}", headers=cloud.admin)
    assert quota.status_code == 200 and quota.json()["quota_set"]["id"] == demo


# -- item 8: Neutron's MAC rules --------------------------------------------------------------


def _network(cloud: Cloud) -> str:
    answer = cloud.client.post(
        "/network/v2.0/networks", headers=cloud.demo, json={"network": {"name": "n"}}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["network"]["id"]


@pytest.mark.parametrize(
    "mac",
    [
        "00:00:00:00:00:00",  # zero
        "ff:ff:ff:ff:ff:ff",  # broadcast
        "FF-FF-FF-FF-FF-FF",
        "01:00:5e:00:00:01",  # IPv4 multicast
        "33:33:00:00:00:01",  # IPv6 multicast
        "fa:16:3e:00:00",  # malformed
        "fa:16:3e:00:00:0g",
        "fa:16:3e:00:00:01 ",
        "",
        12,
    ],
)
def test_port_refuses_mac(cloud: Cloud, mac: object) -> None:
    network = _network(cloud)
    body = {"port": {"network_id": network, "mac_address": mac}}
    answer = cloud.client.post("/network/v2.0/ports", headers=cloud.demo, json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["NeutronError"]
    assert error["message"] == (
        f"Invalid input for mac_address. Reason: '{mac}' is not a valid MAC address."
    )
    with cloud.service.db.read() as session:
        assert session.scalar(select(func.count()).where(Resource.kind == "port")) == 0
        assert session.scalar(select(func.count()).select_from(MacAllocation)) == 0


def test_port_accepts_neutron_spellings_and_admin_changes_mac(cloud: Cloud) -> None:
    network = _network(cloud)
    macs = []
    for spelling in ("FA-16-3E-0A-0B-0C", "fa16.3e0a.0b0d", "02:00:00:00:00:01"):
        body = {"port": {"network_id": network, "mac_address": spelling}}
        answer = cloud.client.post("/network/v2.0/ports", headers=cloud.demo, json=body)
        assert answer.status_code == 201, answer.text
        macs.append(answer.json()["port"]["mac_address"])
    assert macs == ["fa:16:3e:0a:0b:0c", "fa:16:3e:0a:0b:0d", "02:00:00:00:00:01"]
    # filters take any spelling Neutron accepts
    listed = cloud.client.get(
        "/network/v2.0/ports?mac_address=FA16.3E0A.0B0C&mac_address=nonsense", headers=cloud.demo
    )
    assert [p["mac_address"] for p in listed.json()["ports"]] == ["fa:16:3e:0a:0b:0c"]
    port = cloud.client.get("/network/v2.0/ports?mac_address=02:00:00:00:00:01", headers=cloud.demo)
    port_id = port.json()["ports"][0]["id"]
    path = f"/network/v2.0/ports/{port_id}"
    # update: the member may not change a MAC (Neutron's policy); the admin may, by the
    # same rules, and never to one another port holds
    member = cloud.client.put(
        path, headers=cloud.demo, json={"port": {"mac_address": "02:00:00:00:00:09"}}
    )
    assert member.status_code == 403, member.text
    for bad in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "03:00:00:00:00:00"):
        answer = cloud.client.put(path, headers=cloud.admin, json={"port": {"mac_address": bad}})
        assert answer.status_code == 400, answer.text
    taken = cloud.client.put(path, headers=cloud.admin, json={"port": {"mac_address": macs[0]}})
    assert taken.status_code == 409 and "MacAddressInUse" in taken.text
    moved = cloud.client.put(
        path, headers=cloud.admin, json={"port": {"mac_address": "02:AA:00:00:00:09"}}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["port"]["mac_address"] == "02:aa:00:00:00:09"
    with cloud.service.db.read() as session:
        held = dict(session.execute(select(MacAllocation.mac_address, MacAllocation.port_id)).all())
    assert held.get("02:aa:00:00:00:09") == port_id and "02:00:00:00:00:01" not in held


def test_generated_macs_are_unicast_and_never_zero() -> None:
    rng = random.Random(8)
    for _ in range(20000):
        mac = ipam.random_mac(rng)
        value = int(mac.replace(":", ""), 16)
        assert value != 0 and not (value >> 40) & 1, mac
        assert ipam.normalize_mac(mac) == mac


# -- item 9: 405 Allow, and the document agrees with the server ----------------------------


def test_method_not_allowed_names_every_allowed_method(cloud: Cloud) -> None:
    answer = cloud.client.patch(f"{V3}/volumes/some-id", headers=cloud.demo, json={})
    assert answer.status_code == 405
    allowed = {m.strip() for m in answer.headers["Allow"].split(",")}
    assert {"GET", "PUT", "DELETE"} <= allowed and "PATCH" not in allowed
    assert answer.json()["badMethod"]["code"] == 405
    sites = cloud.client.put("/isthmus/v1/sites", headers=cloud.admin, json={})
    assert sites.status_code == 405
    assert {m.strip() for m in sites.headers["Allow"].split(",")} >= {"GET", "POST"}


def test_every_path_parameter_is_declared(cloud: Cloud) -> None:
    document = cloud.client.get("/isthmus/v1/openapi.json").json()
    undeclared = []
    project_operations = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            if path.startswith("/volume/v3/{project_id}"):
                project_operations += 1
            for name in set(re.findall(r"{(\w+)}", path)) - declared:
                undeclared.append(f"{method.upper()} {path}: {name}")
    assert project_operations >= 38
    assert undeclared == []


def test_document_promises_400_for_bad_input_never_422(cloud: Cloud) -> None:
    document = cloud.client.get("/isthmus/v1/openapi.json").json()
    promised = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "422" in operation["responses"]
    ]
    assert promised == []
    site = cloud.client.get("/isthmus/v1/work?limit=x", headers=cloud.admin)
    assert site.status_code == 400
    responses = document["paths"]["/isthmus/v1/work"]["get"]["responses"]
    assert "400" in responses


def test_quota_set_delete_answers_what_the_document_says(cloud: Cloud) -> None:
    document = cloud.client.get("/isthmus/v1/openapi.json").json()
    demo = project_id(cloud.service, "demo")
    for path, status in (
        ("/compute/v2.1/os-quota-sets/{project_id}", "202"),  # Nova: 202, no body
        ("/volume/v3/os-quota-sets/{tenant_id}", "200"),  # Cinder: 200, no body
    ):
        promised = document["paths"][path]["delete"]["responses"]
        assert [code for code in promised if code < "300"] == [status]
        assert "content" not in promised[status]
        target = path.replace("{project_id}", demo).replace("{tenant_id}", demo)
        answer = cloud.client.delete(target, headers=cloud.admin)
        assert answer.status_code == int(status) and answer.content == b""


def test_admin_document_declares_the_enforced_bounds(cloud: Cloud) -> None:
    from isthmus.sites.validation import DRIVER_CONFIG, SITE_NAME_PATTERN

    document = cloud.client.get("/isthmus/v1/openapi.json").json()
    (limit,) = document["paths"]["/isthmus/v1/work"]["get"]["parameters"]
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (0, 1000)
    assert cloud.client.get("/isthmus/v1/work?limit=1001", headers=cloud.admin).status_code == 400
    create = document["components"]["schemas"]["SiteCreate"]
    assert create["properties"]["name"]["pattern"] == SITE_NAME_PATTERN
    assert create["properties"]["driver"]["enum"] == list(DRIVER_CONFIG)
    configs = {
        c["properties"]["driver"]["const"]: c["properties"]["config"] for c in create["oneOf"]
    }
    for driver, keys in DRIVER_CONFIG.items():
        assert set(configs[driver]["properties"]) == set(keys)
        assert configs[driver]["additionalProperties"] is False
    assert configs["openstack"]["required"] == ["cloud"]
    update = document["components"]["schemas"]["SiteUpdate"]
    assert update["required"] == ["enabled"]
    # what the document refuses, the server refuses (with validate_site's own words)
    bad = {"name": "x", "driver": "local", "config": {"colour": "blue"}}
    answer = cloud.client.post("/isthmus/v1/sites", headers=cloud.admin, json=bad)
    assert answer.status_code == 400 and "Unknown config key 'colour'" in answer.text


def test_metrics_document_names_its_text_and_its_refusals(cloud: Cloud) -> None:
    document = cloud.client.get("/isthmus/v1/openapi.json").json()
    responses = document["paths"]["/metrics"]["get"]["responses"]
    assert list(responses["200"]["content"]) == ["text/plain"]
    assert {"401", "403"} <= set(responses)
    answer = cloud.client.get("/metrics", headers=cloud.admin)
    assert answer.headers["content-type"].startswith("text/plain")
    refused = cloud.client.get("/metrics", headers=cloud.demo)
    assert refused.status_code == 403 and "error" in refused.json()


def test_site_config_integers_written_as_floats_are_integers(cloud: Cloud) -> None:
    """JSON Schema's integer includes 4.0; the server takes it as the document says."""
    body = {"name": "whole", "config": {"vcpus": 4.0, "disk_gb": 10}}
    answer = cloud.client.post("/isthmus/v1/sites", headers=cloud.admin, json=body)
    assert answer.status_code == 201, answer.text
    with cloud.service.db.read() as session:
        site = session.get(Site, "whole")
        assert site is not None
        config = dict(site.config)
    assert config["vcpus"] == 4 and isinstance(config["vcpus"], int)
    half = {"name": "half", "config": {"vcpus": 4.5}}
    assert cloud.client.post("/isthmus/v1/sites", headers=cloud.admin, json=half).status_code == 400
