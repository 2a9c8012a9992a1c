"""Fuzzing (hypothesis) the create and update bodies of my compute slice with the
driver of test_fuzz_openstack.py: server groups (2.64 and 2.1 shapes), server
creates with scheduler hints, compute services (2.53 and before), aggregates.
Every answer below 500, a refused request writes nothing, the lists still load."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.api.test_fuzz_openstack import (
    anything,
    enveloped,
    fields,
    fuzz,
    made,
    names,
    op,
    plain,
    quiet_cloud,  # noqa: F401  (the fixture)
)
from tests.support import Cloud

V = "/compute/v2.1"
POLICIES = st.sampled_from(["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"])


def at(headers: dict[str, str], version: str) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


def test_server_group_hint_and_service_bodies(quiet_cloud: Cloud) -> None:  # noqa: F811
    cloud = quiet_cloud
    image = cloud.client.get("/image/v2/images", headers=cloud.admin).json()["images"][0]["id"]
    group = made(
        cloud,
        f"{V}/os-server-groups",
        {"server_group": {"name": "seed", "policies": ["anti-affinity"]}},
        "server_group",
    )
    seed = made(
        cloud,
        f"{V}/servers",
        {"server": {"name": "seed", "imageRef": image, "flavorRef": "1", "networks": "none"}},
        "server",
    )
    services = cloud.client.get(f"{V}/os-services", headers=at(cloud.admin, "2.53")).json()
    service = services["services"][0]["id"]
    rules = st.fixed_dictionaries({}, optional={"max_server_per_host": st.integers(-1, 3)})
    server_ids = st.sampled_from([seed, group, "00000000-0000-0000-0000-000000000000"]) | plain
    hints = fields(
        group=st.sampled_from([group, seed]) | plain,
        same_host=server_ids | st.lists(server_ids, max_size=2),
        different_host=server_ids | st.lists(server_ids, max_size=2),
    )
    server = fields(
        ("name", "imageRef", "flavorRef"),
        name=names,
        imageRef=st.just(image),
        flavorRef=st.just("1"),
        networks=st.just("none"),
        availability_zone=st.sampled_from(["site-a", "site-b"]),
        max_count=st.integers(1, 2),
    )
    requests = st.one_of(
        op(
            "POST",
            f"{V}/os-server-groups",
            enveloped(
                "server_group",
                fields(("name", "policy"), name=names, policy=POLICIES, rules=rules | anything),
            ),
        ),
        op(
            "POST",
            f"{V}/servers",
            st.builds(lambda s, h: {"server": s, "os:scheduler_hints": h}, server, hints),
        ),
        op(
            "PUT",
            f"{V}/os-services/{service}",
            fields(
                status=st.sampled_from(["enabled", "disabled"]) | plain,
                disabled_reason=plain,
                forced_down=st.booleans() | anything,
            ),
        ),
        op("POST", f"{V}/os-aggregates", enveloped("aggregate", fields(name=names))),
    )
    cloud.admin = at(cloud.admin, "2.64")
    cloud.demo = at(cloud.demo, "2.64")
    lists = (f"{V}/os-server-groups", f"{V}/servers/detail")
    fuzz(cloud, requests, lists)
