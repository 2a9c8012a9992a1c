"""`/metrics` shows site names, health, capacity and resource counts: on the main
port it needs an admin token (X-Auth-Token or `Authorization: Bearer`, as
Prometheus sends it); with `metrics_listen` set, `isthmus up` also serves it
without a token on that loopback port only."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.isthmus_process import free_port, start_isthmus
from tests.support import Cloud


def test_metrics_needs_an_admin_token(cloud: Cloud) -> None:
    anonymous = cloud.client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers.get("WWW-Authenticate")
    assert "isthmus_site" not in anonymous.text and "site-a" not in anonymous.text
    garbage = cloud.client.get("/metrics", headers={"Authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401
    basic = cloud.client.get("/metrics", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert basic.status_code == 401

    member = cloud.client.get("/metrics", headers=cloud.demo)
    assert member.status_code == 403 and "site-a" not in member.text
    bearer_member = cloud.client.get(
        "/metrics", headers={"Authorization": f"Bearer {cloud.demo['X-Auth-Token']}"}
    )
    assert bearer_member.status_code == 403

    by_header = cloud.client.get("/metrics", headers=cloud.admin)
    assert by_header.status_code == 200
    assert 'isthmus_site_enabled{site="site-a"} 1.0' in by_header.text
    by_bearer = cloud.client.get(
        "/metrics", headers={"Authorization": f"Bearer {cloud.admin['X-Auth-Token']}"}
    )
    assert by_bearer.status_code == 200 and "isthmus_store_up 1.0" in by_bearer.text


@pytest.mark.cli
def test_metrics_listen_serves_without_a_token_on_loopback_only(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = tmp_path / "isthmus.yaml"
    config.write_text(yaml.safe_dump({"metrics_listen": f"127.0.0.1:{metrics_port}"}))
    running = start_isthmus(tmp_path / "data", None, "--config", str(config))
    try:
        side = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert side.status_code == 200
        assert 'isthmus_site_health{health="up",site="site-a"}' in side.text or (
            'isthmus_site_health{health="unknown",site="site-a"}' in side.text
        )
        # only /metrics is there: not the APIs
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/isthmus/v1/sites").status_code == 404
        # the main port still asks for the admin token
        assert httpx.get(f"{running.url}/metrics", timeout=10).status_code == 401
        assert f"127.0.0.1:{metrics_port}/metrics" in running.output()
    finally:
        assert running.stop() == 0
    with pytest.raises(httpx.HTTPError):  # the side port closed with the service
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
