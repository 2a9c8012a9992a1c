"""Property-based fuzzing (hypothesis) of the main create and update bodies of every
OpenStack service Isthmus speaks: Compute, Network, Block Storage, Image, Identity.

Every field of a body is either a plausible value or a hostile one: text with lone
surrogates, NUL, control characters, bidi and BOM marks, huge and non-ASCII text;
wrong types; deep nesting; numbers out of every range (and NaN); sometimes the whole
body or its envelope is replaced, or the bytes are not JSON at all. For every example:

- no answer is a 5xx;
- after a 4xx the store is exactly as before (rows, generations and contents of
  every table: tests/fixtures/store_snapshot.py);
- every list of the service still answers 200 (a stored value can poison a list).

Bounded and reproducible: `derandomize=True` (the same examples on every run),
`database=None` (no .hypothesis directory), no deadline; EXAMPLES per service and
database. The service runs in-process without its engine, so only requests write.
With FUZZ_SHOW=1 (and pytest -s) every request and its answer are printed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.store_snapshot import difference, snapshot
from tests.support import Cloud, make_service

EXAMPLES = 120  # per service and database: about 80 s for the module on both
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
JSON_PATCH = "application/openstack-images-v2.1-json-patch"

# -- strategies ------------------------------------------------------------------------------

HOSTILE_TEXT = (
    "\ud800",
    "a\udfffb",
    "\ud83d",  # half of an emoji's surrogate pair
    "\x00",
    "nul\x00inside",
    "\x01\x02",
    "tab\tand\nnewline\r",
    "\x7f",
    "\x85\x9f",
    "\u202eevil",
    "\ufeffbom",
    "\u200d",
    "",
    " ",
    "x" * 64,
    "x" * 65,
    "x" * 255,
    "x" * 256,
    "é" * 300,
    "🚀" * 256,
    "x" * 150_000,
    "'; DROP TABLE resources; --",
    "../../etc/passwd",
    "%00",
    "null",
    "-1",
    "10.0.0.0/8",
    "fa:16:3e:00:00:00",
)
ALL_CHARACTERS = st.characters(categories=("L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Cs", "Co"))
texts = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(ALL_CHARACTERS, max_size=20),
    st.text(max_size=300),
)
numbers = st.one_of(
    st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities included
)


def _nest(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


shapes = st.recursive(
    st.none() | st.booleans() | texts | numbers,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn `weight` times as often as weight 1."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


deep = st.integers(min_value=20, max_value=120).map(_nest)
anything = weighted((9, shapes), (1, deep))


def fields(
    must: tuple[str, ...] = (), **plausible: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """A body with the fields in `must` and any subset of the others, each plausible,
    and a third of the time one field (or an unknown one) spoiled with a hostile value."""
    spoilable = [*sorted(plausible), "unknown_attribute"]
    required = {key: plausible[key] for key in must}
    optional = {key: value for key, value in plausible.items() if key not in must}

    def spoil(body: dict[str, Any], key: str | None, value: Any) -> dict[str, Any]:
        return body if key is None else {**body, key: value}

    return st.builds(
        spoil,
        st.fixed_dictionaries(required, optional=optional),
        weighted((2, st.none()), (1, st.sampled_from(spoilable))),
        texts | anything,
    )


def enveloped(key: str, body: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """`{key: body}` usually; sometimes a bulk list, a wrong envelope or not JSON."""
    return weighted(
        (12, body.map(lambda b: {key: b})),
        (1, st.lists(body, min_size=1, max_size=2).map(lambda items: {f"{key}s": items})),
        (1, anything),
        (1, st.binary(max_size=40)),
    )


Request = tuple[str, str, Any, str]  # method, path, body (JSON value or raw bytes), type


def op(
    method: str, path: str, body: st.SearchStrategy[Any], ctype: str = "application/json"
) -> st.SearchStrategy[Request]:
    """One request; now and then with another content type, or none at all."""
    others = st.sampled_from(["", "text/plain", "application/x-www-form-urlencoded"])
    return st.tuples(
        st.just(method), st.just(path), body, weighted((12, st.just(ctype)), (1, others))
    )


plain = st.text(st.characters(categories=("L", "N", "P", "Zs", "So")), max_size=30)
names = plain | st.sampled_from(["ok-name", "réseau-网络", "x" * 255])
bools = st.booleans()
small = st.integers(min_value=1, max_value=2)
counts = st.integers(min_value=1, max_value=64)
metadata = st.dictionaries(plain, plain, max_size=3) | anything
tags = st.lists(plain, max_size=3)

# -- the driver -----------------------------------------------------------------------------


def send(cloud: Cloud, request: Request, auth: dict[str, str]) -> httpx.Response:
    method, path, body, ctype = request
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**auth, "Content-Type": ctype} if ctype else dict(auth)
    return cloud.client.request(method, path, content=content, headers=headers)


def fuzz(
    cloud: Cloud,
    requests: st.SearchStrategy[Request],
    lists: tuple[str, ...],
    member_lists: bool = True,
) -> None:
    """Send every generated request, as the admin or as a member of another project
    (whose ids it then is not allowed to touch); check the three properties after each.
    Lists are read as both unless `member_lists` is False (Keystone's are admin-only)."""
    state = {"before": snapshot(cloud.service)}
    statuses: Counter[int] = Counter()
    callers = {"admin": cloud.admin, "member": cloud.demo}

    @SETTINGS
    @given(requests, st.sampled_from(sorted(callers)))
    def run(request: Request, caller: str) -> None:
        before = state["before"]
        response = send(cloud, request, callers[caller])
        statuses[response.status_code] += 1
        if os.environ.get("FUZZ_SHOW"):
            print(caller, request[0], request[1][:60], response.status_code, response.text[:160])
        shown = (
            f"{caller} {request[0]} {request[1]} -> {response.status_code} {response.text[:300]}"
        )
        assert response.status_code < 500, shown
        after = snapshot(cloud.service)
        if 400 <= response.status_code < 500:
            assert difference(before, after) == "", shown
        state["before"] = after
        for path in lists:
            for auth in callers.values() if member_lists else (cloud.admin,):
                listed = cloud.client.get(path, headers=auth)
                assert listed.status_code == 200, (shown, path, listed.text[:300])

    run()
    print(f"statuses: {sorted(statuses.items())}")
    # not degenerate: some bodies got past the boundary into the handlers and succeeded
    assert any(200 <= status < 300 for status in statuses), statuses


@pytest.fixture
def quiet_cloud(tmp_path: Path, db_url: str) -> Any:
    """A cloud whose engine does not run, so the store changes only through requests."""
    service = make_service(tmp_path / "data", db_url)
    yield Cloud(service)
    service.db.dispose()


def made(cloud: Cloud, path: str, body: Any, key: str | None = None) -> str:
    response = cloud.client.post(path, json=body, headers=cloud.admin)
    assert response.status_code < 300, response.text
    answer = response.json()
    return str(answer[key]["id"] if key else answer["id"])


# -- per service ------------------------------------------------------------------------------


def test_compute_bodies(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    image = cloud.client.get("/image/v2/images", headers=cloud.admin).json()["images"][0]["id"]
    flavor = cloud.client.get("/compute/v2.1/flavors", headers=cloud.admin).json()["flavors"][0]
    server_fields: dict[str, st.SearchStrategy[Any]] = {
        "name": names,
        "imageRef": st.just(image),
        "flavorRef": st.just(flavor["id"]),
        "networks": st.sampled_from(["none", "auto"]),
        "metadata": metadata,
        "min_count": small,
        "max_count": small,
        "availability_zone": st.sampled_from(["site-a", "site-b"]),
        "user_data": plain,
        "security_groups": st.lists(st.fixed_dictionaries({"name": names}), max_size=2),
        "description": plain,
    }
    base = {"name": "seed", "imageRef": image, "flavorRef": flavor["id"], "networks": "none"}
    server = made(cloud, "/compute/v2.1/servers", {"server": base}, "server")
    cloud.wait_idle()  # the engine runs here only, to make the seed server ACTIVE
    V = "/compute/v2.1"
    requests = st.one_of(
        op(
            "POST",
            f"{V}/servers",
            enveloped("server", fields(("name", "imageRef", "flavorRef"), **server_fields)),
        ),
        op("PUT", f"{V}/servers/{server}", enveloped("server", fields(name=names))),
        op("POST", f"{V}/servers/{server}/metadata", enveloped("metadata", metadata)),
        op("PUT", f"{V}/servers/{server}/metadata", enveloped("metadata", metadata)),
        op(
            "POST",
            f"{V}/servers/{server}/action",
            st.one_of(
                fields(reboot=st.fixed_dictionaries({"type": plain})), st.just({"os-stop": None})
            ),
        ),
        op(
            "POST",
            f"{V}/os-keypairs",
            enveloped(
                "keypair", fields(("name",), name=names, type=st.sampled_from(["ssh", "x509"]))
            ),
        ),
        op(
            "POST",
            f"{V}/flavors",
            enveloped(
                "flavor",
                fields(
                    ("name", "ram", "vcpus", "disk"),
                    name=names,
                    ram=counts,
                    vcpus=counts,
                    disk=counts,
                ),
            ),
        ),
    )
    fuzz(cloud, requests, (f"{V}/servers/detail", f"{V}/os-keypairs", f"{V}/flavors/detail"))


def test_network_bodies(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    N = "/network/v2.0"
    net = made(cloud, f"{N}/networks", {"network": {"name": "n"}}, "network")
    subnet_body = {"subnet": {"network_id": net, "cidr": "10.5.0.0/24", "ip_version": 4}}
    subnet = made(cloud, f"{N}/subnets", subnet_body, "subnet")
    port = made(cloud, f"{N}/ports", {"port": {"network_id": net}}, "port")
    router = made(cloud, f"{N}/routers", {"router": {"name": "r"}}, "router")
    group = made(cloud, f"{N}/security-groups", {"security_group": {"name": "g"}}, "security_group")
    external = {"network": {"name": "ext", "router:external": True}}
    ext = made(cloud, f"{N}/networks", external, "network")
    ext_subnet = {"subnet": {"network_id": ext, "cidr": "172.24.0.0/24", "ip_version": 4}}
    made(cloud, f"{N}/subnets", ext_subnet, "subnet")
    common = {"name": names, "description": plain}
    net_ids = st.sampled_from([net, ext]) | plain
    ips = st.sampled_from(["10.5.0.0/24", "10.6.0.0/16", "::/0", "fd00::/64"]) | plain
    requests = st.one_of(
        op(
            "POST",
            f"{N}/networks",
            enveloped(
                "network",
                fields(**common, tags=tags, mtu=st.integers(1280, 9000), admin_state_up=bools),
            ),
        ),
        op(
            "PUT",
            f"{N}/networks/{net}",
            enveloped("network", fields(**common, mtu=st.integers(1280, 9000))),
        ),
        op(
            "POST",
            f"{N}/subnets",
            enveloped(
                "subnet",
                fields(
                    **common,
                    network_id=net_ids,
                    cidr=ips,
                    ip_version=st.just(4),
                    dns_nameservers=st.lists(st.sampled_from(["10.5.0.53", "1.1.1.1"]), max_size=2),
                    enable_dhcp=bools,
                ),
            ),
        ),
        op("PUT", f"{N}/subnets/{subnet}", enveloped("subnet", fields(**common))),
        op(
            "POST",
            f"{N}/ports",
            enveloped(
                "port",
                fields(
                    **common,
                    network_id=net_ids,
                    security_groups=st.lists(st.just(group), max_size=1),
                    admin_state_up=bools,
                ),
            ),
        ),
        op("PUT", f"{N}/ports/{port}", enveloped("port", fields(**common, device_id=plain))),
        op(
            "POST",
            f"{N}/routers",
            enveloped(
                "router",
                fields(
                    **common,
                    external_gateway_info=st.fixed_dictionaries({"network_id": st.just(ext)}),
                ),
            ),
        ),
        op("PUT", f"{N}/routers/{router}", enveloped("router", fields(**common))),
        op("PUT", f"{N}/routers/{router}/add_router_interface", fields(subnet_id=st.just(subnet))),
        op("POST", f"{N}/security-groups", enveloped("security_group", fields(**common))),
        op("PUT", f"{N}/security-groups/{group}", enveloped("security_group", fields(**common))),
        op(
            "POST",
            f"{N}/security-group-rules",
            enveloped(
                "security_group_rule",
                fields(
                    security_group_id=st.just(group),
                    description=plain,
                    direction=st.sampled_from(["ingress", "egress"]),
                    ethertype=st.just("IPv4"),
                    protocol=st.sampled_from(["tcp", "icmp", "6"]),
                    port_range_min=st.integers(1, 65535),
                    port_range_max=st.just(65535),
                    remote_ip_prefix=st.sampled_from(["10.0.0.0/8", "0.0.0.0/0"]),
                ),
            ),
        ),
        op(
            "POST",
            f"{N}/floatingips",
            enveloped(
                "floatingip",
                fields(
                    floating_network_id=st.just(ext),
                    description=plain,
                ),
            ),
        ),
        op("PUT", f"{N}/networks/{net}/tags", fields(tags=tags)),
    )
    lists = tuple(
        f"{N}/{c}"
        for c in (
            "networks",
            "subnets",
            "ports",
            "routers",
            "security-groups",
            "security-group-rules",
            "floatingips",
        )
    )
    fuzz(cloud, requests, lists)


def test_block_storage_bodies(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    V = "/volume/v3"
    volume = made(cloud, f"{V}/volumes", {"volume": {"size": 1, "name": "v"}}, "volume")
    cloud.wait_idle()  # the engine runs here only, to make the seed volume available
    snap_body = {"snapshot": {"volume_id": volume, "name": "s"}}
    snap = made(cloud, f"{V}/snapshots", snap_body, "snapshot")
    common: dict[str, st.SearchStrategy[Any]] = {
        "name": names,
        "description": plain,
        "metadata": metadata,
    }
    requests = st.one_of(
        op(
            "POST",
            f"{V}/volumes",
            enveloped(
                "volume",
                fields(
                    **common,
                    size=small,
                ),
            ),
        ),
        op("PUT", f"{V}/volumes/{volume}", enveloped("volume", fields(**common))),
        op("POST", f"{V}/volumes/{volume}/metadata", enveloped("metadata", metadata)),
        op("PUT", f"{V}/volumes/{volume}/metadata", enveloped("metadata", metadata)),
        op(
            "POST",
            f"{V}/volumes/{volume}/action",
            st.fixed_dictionaries({"os-extend": fields(("new_size",), new_size=st.integers(2, 3))}),
        ),
        op(
            "POST",
            f"{V}/snapshots",
            enveloped("snapshot", fields(**common, volume_id=st.just(volume), force=bools)),
        ),
        op("PUT", f"{V}/snapshots/{snap}", enveloped("snapshot", fields(**common))),
        op("POST", f"{V}/snapshots/{snap}/metadata", enveloped("metadata", metadata)),
    )
    fuzz(cloud, requests, (f"{V}/volumes/detail", f"{V}/snapshots/detail"))


def test_image_bodies(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    I = "/image/v2/images"  # noqa: E741
    image = made(cloud, I, {"name": "seed", "disk_format": "raw", "container_format": "bare"})
    create = fields(
        name=names,
        disk_format=st.sampled_from(["raw", "qcow2"]) | plain,
        container_format=st.sampled_from(["bare"]) | plain,
        visibility=st.sampled_from(["private", "public", "shared", "community"]) | plain,
        tags=tags,
        min_disk=small,
        min_ram=small,
        protected=bools,
        extra_property=plain,
    )
    operation = st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "replace", "remove"]) | plain,
            "path": st.sampled_from(["/name", "/tags", "/tags/-", "/extra", "/min_ram"]) | plain,
        },
        optional={"value": anything | texts},
    )
    patch = st.one_of(st.lists(operation, max_size=3), anything)
    tag = plain.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe=""))
    requests = st.one_of(
        op("POST", I, create),
        op("POST", I, anything),
        op("PATCH", f"{I}/{image}", patch, JSON_PATCH),
        st.tuples(
            st.just("PUT"),
            tag.map(lambda t: f"{I}/{image}/tags/{t}"),
            st.just(b""),
            st.just("application/json"),
        ),
    )
    fuzz(cloud, requests, (I,))


def test_identity_bodies(quiet_cloud: Cloud) -> None:
    cloud = quiet_cloud
    K = "/identity/v3"
    project = made(cloud, f"{K}/projects", {"project": {"name": "fuzzed"}}, "project")
    user = made(cloud, f"{K}/users", {"user": {"name": "fuzzer", "password": "pw"}}, "user")
    user_ref = fields(name=names | st.just("admin"), domain=fields(id=plain, name=plain), id=plain)
    password = fields(user=user_ref.map(lambda u: {**u, "password": "x"}))
    auth = st.fixed_dictionaries(
        {
            "identity": fields(
                methods=st.just(["password"]) | st.lists(plain, max_size=2), password=password
            )
        },
        optional={"scope": anything | fields(project=fields(name=names, id=plain))},
    ).map(lambda a: {"auth": a})
    requests = st.one_of(
        op("POST", f"{K}/auth/tokens", auth | anything),
        op(
            "POST",
            f"{K}/projects",
            enveloped("project", fields(("name",), name=names, description=plain, enabled=bools)),
        ),
        op("PATCH", f"{K}/projects/{project}", enveloped("project", fields(name=names))),
        op(
            "POST",
            f"{K}/users",
            enveloped(
                "user",
                fields(("name",), name=names, password=plain, email=plain),
            ),
        ),
        op("PATCH", f"{K}/users/{user}", enveloped("user", fields(name=names, enabled=bools))),
    )
    fuzz(cloud, requests, (f"{K}/projects", f"{K}/users"), member_lists=False)
