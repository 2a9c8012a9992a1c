"""The service catalog every token carries, and version documents shared by the
OpenStack services Isthmus serves."""

from __future__ import annotations

import uuid
from typing import Any

REGION = "RegionOne"

# (type, name, path below the base URL; {project_id} is filled per token)
SERVICES = (
    ("identity", "keystone", "/identity/v3"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/network"),
    ("volumev3", "cinderv3", "/volume/v3/{project_id}"),
    ("block-storage", "cinder", "/volume/v3/{project_id}"),
    ("image", "glance", "/image"),
    ("isthmus", "isthmus", "/isthmus/v1"),
)


def _stable_id(*parts: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, "isthmus:" + ":".join(parts)).hex


def catalog(base_url: str, project_id: str) -> list[dict[str, Any]]:
    entries = []
    for service_type, name, path in SERVICES:
        url = base_url + path.format(project_id=project_id)
        endpoints = [
            {
                "id": _stable_id(service_type, interface),
                "interface": interface,
                "region": REGION,
                "region_id": REGION,
                "url": url,
            }
            for interface in ("public", "internal", "admin")
        ]
        entries.append(
            {
                "id": _stable_id(service_type),
                "type": service_type,
                "name": name,
                "endpoints": endpoints,
            }
        )
    return entries


def base_url_of(request: Any) -> str:
    """The URL clients reached us at (honours a configured public URL)."""
    configured = request.app.state.service.config.public_url
    return (configured or str(request.base_url)).rstrip("/")
