"""Network v2.0 port security and allowed address pairs (extensions port-security and
allowed-address-pairs) as ML2 answers: the network's default, no default group on
an unsecured port, 400/409 for groups or pairs without port security, the pairs'
own validation, and the port's driver spec carrying both."""

from __future__ import annotations

from isthmus.model.specs import PortSpec
from isthmus.store.tables import Resource
from tests.api.test_network import api, create, fails, make_network, snapshot
from tests.support import Cloud


def _spec(cloud: Cloud, port_id: str) -> PortSpec:
    with cloud.service.db.read() as session:
        row = session.get(Resource, port_id)
        assert row is not None
        return PortSpec.from_intent(row)


def test_network_default_and_port_without_security(cloud: Cloud) -> None:
    net, _ = make_network(cloud, cidr="10.80.0.0/24")
    assert net["port_security_enabled"] is True
    secured = create(cloud, "ports", "port", network_id=net["id"])
    assert secured["port_security_enabled"] is True and len(secured["security_groups"]) == 1
    assert secured["allowed_address_pairs"] == []

    api(
        cloud,
        "PUT",
        f"/networks/{net['id']}",
        body={"network": {"port_security_enabled": False}},
        status=200,
    )
    open_port = create(cloud, "ports", "port", network_id=net["id"])
    assert open_port["port_security_enabled"] is False and open_port["security_groups"] == []
    assert _spec(cloud, open_port["id"]).port_security_enabled is False

    plain = create(cloud, "networks", "network", name="plain", port_security_enabled=False)
    assert plain["port_security_enabled"] is False

    # turning it off needs the groups gone in the same request (or before)
    before = snapshot(cloud)
    fails(
        cloud,
        "PUT",
        f"/ports/{secured['id']}",
        409,
        "PortSecurityPortHasSecurityGroup",
        body={"port": {"port_security_enabled": False}},
    )
    fails(
        cloud,
        "PUT",
        f"/ports/{open_port['id']}",
        400,
        "PortSecurityAndIPRequiredForSecurityGroups",
        body={"port": {"security_groups": secured["security_groups"]}},
    )
    fails(
        cloud,
        "POST",
        "/ports",
        400,
        "PortSecurityAndIPRequiredForSecurityGroups",
        body={
            "port": {
                "network_id": net["id"],
                "port_security_enabled": False,
                "security_groups": secured["security_groups"],
            }
        },
    )
    assert snapshot(cloud) == before
    off = api(
        cloud,
        "PUT",
        f"/ports/{secured['id']}",
        body={"port": {"port_security_enabled": False, "security_groups": []}},
        status=200,
    )["port"]
    assert off["port_security_enabled"] is False and off["security_groups"] == []


def test_allowed_address_pairs(cloud: Cloud) -> None:
    net, _ = make_network(cloud, cidr="10.81.0.0/24")
    port = create(
        cloud,
        "ports",
        "port",
        network_id=net["id"],
        allowed_address_pairs=[
            {"ip_address": "10.81.0.200"},
            {"ip_address": "192.168.5.0/24", "mac_address": "FA:16:3E:00:00:01"},
        ],
    )
    mac = port["mac_address"]
    assert port["allowed_address_pairs"] == [
        {"ip_address": "10.81.0.200", "mac_address": mac},
        {"ip_address": "192.168.5.0/24", "mac_address": "fa:16:3e:00:00:01"},
    ]
    assert _spec(cloud, port["id"]).allowed_address_pairs == (
        ("10.81.0.200", mac),
        ("192.168.5.0/24", "fa:16:3e:00:00:01"),
    )
    updated = api(
        cloud,
        "PUT",
        f"/ports/{port['id']}",
        body={"port": {"allowed_address_pairs": [{"ip_address": "10.81.0.201"}]}},
        status=200,
    )["port"]
    assert updated["allowed_address_pairs"] == [{"ip_address": "10.81.0.201", "mac_address": mac}]
    listed = api(cloud, "GET", f"/ports/{port['id']}", status=200)["port"]
    assert listed["allowed_address_pairs"] == updated["allowed_address_pairs"]

    before = snapshot(cloud)
    path = f"/ports/{port['id']}"
    for pairs, status, error in (
        ([{"mac_address": mac}], 400, "AllowedAddressPairsMissingIP"),
        ([{"ip_address": "nonsense"}], 400, "HTTPBadRequest"),
        ([{"ip_address": "10.0.0.1", "other": 1}], 400, "HTTPBadRequest"),
        ([{"ip_address": "10.0.0.1"}, {"ip_address": "10.0.0.1"}], 400, None),
        ([{"ip_address": f"10.0.0.{i}"} for i in range(11)], 400, "AllowedAddressPairExhausted"),
        ("x", 400, "HTTPBadRequest"),
    ):
        fails(cloud, "PUT", path, status, error, body={"port": {"allowed_address_pairs": pairs}})
    # pairs need port security: on the port, or turned off while pairs stay
    fails(
        cloud,
        "PUT",
        path,
        409,
        "AddressPairAndPortSecurityRequired",
        body={"port": {"port_security_enabled": False, "security_groups": []}},
    )
    fails(
        cloud,
        "POST",
        "/ports",
        409,
        "AddressPairAndPortSecurityRequired",
        body={
            "port": {
                "network_id": net["id"],
                "port_security_enabled": False,
                "allowed_address_pairs": [{"ip_address": "10.81.0.9"}],
            }
        },
    )
    assert snapshot(cloud) == before
    aliases = {e["alias"] for e in api(cloud, "GET", "/extensions", status=200)["extensions"]}
    assert {"port-security", "allowed-address-pairs"} <= aliases
