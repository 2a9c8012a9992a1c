"""The fabric's pure parts, no root needed: VNI allocation, FRR and nftables
rendering, the data-plane switch of the local driver, and remote-group members
reaching every site a group is in."""

from __future__ import annotations

from pathlib import Path

import pytest

from isthmus.fabric import capability, frr
from isthmus.fabric.dataplane import prefix_for
from isthmus.fabric.security import render_rule, render_ruleset
from isthmus.model.specs import SecurityGroupSpec, SecurityRule
from isthmus.sites.local import LocalDriver
from isthmus.sites.local import plumbing as local_plumbing
from isthmus.store import repo, segments
from isthmus.store.tables import Resource
from tests.support import add_network, add_server, make_service, project_id


def test_vnis_are_unique_skip_taken_ones_and_wrap(tmp_path: Path) -> None:
    service = make_service(tmp_path / "data", None, sites=1)
    try:
        with service.db.session() as session:
            repo.add(session, "network", project_id=None, spec={"segmentation_id": 1002})
            session.flush()
            got = [segments.allocate_vni(session, 1001, 1005) for _ in range(4)]
            for vni in got:
                repo.add(session, "network", project_id=None, spec={"segmentation_id": vni})
            session.flush()
            assert got == [1001, 1003, 1004, 1005]  # 1002 was taken by an admin
            with pytest.raises(Exception, match="No free segmentation id"):
                segments.allocate_vni(session, 1001, 1005)
        project = project_id(service)
        first, _ = add_network(service, project)
        second, _ = add_network(service, project, name="two")
        with service.db.read() as session:
            vnis = [session.get(Resource, n).spec["segmentation_id"] for n in (first, second)]
        assert len(set(vnis)) == 2 and all(v >= 1001 for v in vnis)
    finally:
        service.stop()


def test_bgpd_config_is_an_ibgp_evpn_full_mesh() -> None:
    text = frr.render_bgpd(frr.BgpSite("ns-a", "192.0.2.1", ("192.0.2.2", "192.0.2.3")))
    for line in (
        "router bgp 65000",
        " bgp router-id 192.0.2.1",
        " neighbor WAN remote-as internal",
        " neighbor WAN timers 3 9",
        " neighbor WAN timers connect 1",
        " neighbor WAN advertisement-interval 0",
        " neighbor 192.0.2.2 peer-group WAN",
        " neighbor 192.0.2.3 peer-group WAN",
        "  advertise-all-vni",
    ):
        assert line in text.splitlines()
    assert frr.NEIGHBOR_LINE.findall(text) == ["192.0.2.2", "192.0.2.3"]


def test_security_rules_render_to_nft() -> None:
    members = {"g": ("10.0.0.5", "10.0.0.6", "fd00::5")}
    ssh = SecurityRule("ingress", protocol="tcp", port_range_min=22, port_range_max=22)
    assert render_rule(ssh, "eth0", members) == (
        'iifname "eth0" meta nfproto ipv4 meta l4proto tcp tcp dport 22 accept'
    )
    web = SecurityRule("ingress", protocol="udp", port_range_min=1000, port_range_max=2000,
                       remote_ip_prefix="192.168.0.0/16")  # fmt: skip
    assert "ip saddr 192.168.0.0/16 meta l4proto udp udp dport 1000-2000" in str(
        render_rule(web, "eth1", members)
    )
    group = SecurityRule("ingress", remote_group_id="g")
    assert "ip saddr { 10.0.0.5, 10.0.0.6 }" in str(render_rule(group, "eth0", members))
    assert render_rule(SecurityRule("ingress", remote_group_id="empty"), "eth0", members) is None
    v6_prefix_on_v4 = SecurityRule("ingress", remote_ip_prefix="::/0")
    assert render_rule(v6_prefix_on_v4, "eth0", members) is None
    ping = SecurityRule("ingress", protocol="icmp", port_range_min=8, port_range_max=0)
    assert "icmp type 8 icmp code 0" in str(render_rule(ping, "eth0", members))
    egress = SecurityRule("egress", remote_ip_prefix="0.0.0.0/0")
    assert render_rule(egress, "eth0", members) == 'oifname "eth0" meta nfproto ipv4 accept'

    spec = SecurityGroupSpec("g", "default", rules=(group, egress),
                             remote_group_members=(("g", members["g"]),))  # fmt: skip
    text = render_ruleset([("eth0", [spec])])
    assert text.startswith("table inet isthmus {}\ndelete table inet isthmus\n")
    assert text.count("policy drop;") == 2
    assert "ct state established,related accept" in text


def _chain(text: str, name: str) -> list[str]:
    """The rule lines of one chain of a rendered ruleset, in order."""
    lines = text.splitlines()
    start = lines.index(f"  chain {name} {{")
    end = lines.index("  }", start)
    return [line.strip() for line in lines[start + 1 : end]]


def test_a_port_without_port_security_is_not_filtered_the_others_still_are() -> None:
    members = {"g": ("10.0.0.5",)}
    ssh = SecurityRule("ingress", protocol="tcp", port_range_min=22, port_range_max=22)
    from_group = SecurityRule("ingress", remote_group_id="g")
    egress = SecurityRule("egress", remote_ip_prefix="0.0.0.0/0")
    spec = SecurityGroupSpec("g", "default", rules=(ssh, from_group, egress),
                             remote_group_members=(("g", members["g"]),))  # fmt: skip
    text = render_ruleset([("eth0", [spec])], ["eth1"])
    ingress, egress_rules = _chain(text, "input"), _chain(text, "output")
    for rules, device in ((ingress, "iifname"), (egress_rules, "oifname")):
        assert rules[0].endswith("policy drop;")  # everything else is still dropped
        # eth1 accepts everything, ahead of the connection-state checks (no invalid drop)
        assert rules[1] == f'{device} "eth1" accept'
        assert rules.index(f'{device} "eth1" accept') < rules.index("ct state invalid drop")
        assert f'{device} "eth0" accept' not in rules  # eth0 is not opened wholesale
    # eth0 keeps exactly its group's rules
    assert 'iifname "eth0" meta nfproto ipv4 meta l4proto tcp tcp dport 22 accept' in ingress
    assert 'iifname "eth0" meta nfproto ipv4 ip saddr { 10.0.0.5 } accept' in ingress
    assert 'oifname "eth0" meta nfproto ipv4 accept' in egress_rules
    assert not [r for r in ingress if "eth1" in r and r != 'iifname "eth1" accept']
    # with port security on again (no open interface) eth1 has no accept left at all
    closed = render_ruleset([("eth0", [spec]), ("eth1", [])])
    assert "eth1" not in closed
    assert _chain(closed, "input")[1] == "ct state established,related accept"


def test_local_driver_says_whether_its_data_plane_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = LocalDriver("plain", tmp_path / "plain")
    assert plain.check().data_plane == "control-plane only" and plain.plumbing is None
    monkeypatch.setattr(capability, "missing", lambda: "not root")
    wanted = LocalDriver("wanted", tmp_path / "wanted", {"data_plane": True})
    report = wanted.check()
    assert report.data_plane == "control-plane only: not root" and wanted.plumbing is None
    monkeypatch.setattr(capability, "missing", lambda: None)
    on = LocalDriver("on", tmp_path / "sites" / "on", {"data_plane": "true"})
    assert on.data_plane == capability.DATA_PLANE and on.plumbing is not None
    assert on.plumbing.fabric.directory == tmp_path / "sites" / local_plumbing.FABRIC_DIR_NAME
    assert prefix_for(tmp_path / "a") != prefix_for(tmp_path / "b")


def test_remote_group_members_reach_every_site_the_group_is_in(tmp_path: Path) -> None:
    """A server joining the default group in site-c updates the group's member
    addresses in site-a and site-b too (their copies are re-applied)."""
    service = make_service(tmp_path / "data", None, sites=3)
    try:
        project = project_id(service)
        net, _ = add_network(service, project)
        servers = [add_server(service, project, net, f"vm{i}", az=f"site-{s}")
                   for i, s in enumerate("ab")]  # fmt: skip
        assert service.engine.run_until_idle(30)
        later = add_server(service, project, net, "late", az="site-c")
        assert service.engine.run_until_idle(30)
        with service.db.read() as session:
            ips = {
                p.spec["fixed_ips"][0]["ip_address"]
                for p in session.query(Resource).filter_by(kind="port")
                if p.device_id in (*servers, later)
            }
        for site in ("site-a", "site-b", "site-c"):
            driver = service.sites.get(site)
            assert isinstance(driver, LocalDriver)
            (group,) = driver.state.list("security_group")
            members = dict((g, set(a)) for g, a in group.spec["remote_group_members"])
            assert members == {group.tag: ips}, site
    finally:
        service.stop()


def test_service_config_fabric_embedded_turns_the_data_plane_on(tmp_path: Path) -> None:
    from isthmus.config import Config, SiteConfig
    from isthmus.service import Service
    from isthmus.store.tables import Site

    config = Config(
        data_dir=tmp_path / "data",
        fabric="embedded",
        sites=[SiteConfig("one", "local", {}), SiteConfig("two", "local", {"data_plane": False})],
    )
    service = Service(config, run_engine=False)
    try:
        service.bootstrap()
        with service.db.read() as session:
            stored = {s.name: s.config.get("data_plane") for s in session.query(Site)}
        assert stored == {"one": True, "two": False}
    finally:
        service.stop()
