"""clouds.yaml for a running Isthmus: two clouds, `isthmus` (the admin) and
`isthmus-demo` (a member of the demo project), usable by the unmodified
openstack CLI and openstacksdk via OS_CLIENT_CONFIG_FILE.

Written by `isthmus up` (cli/main.py) into its data dir, and by the tests' in-process
cloud; it lives in cli/ because only the command (and tests) write it. It reads the
region from api.catalog, a layer below."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from isthmus.api.catalog import REGION
from isthmus.private_files import write_private


def clouds_document(base_url: str, passwords: dict[str, str]) -> dict[str, Any]:
    def cloud(user: str, project: str) -> dict[str, Any]:
        return {
            "auth": {
                "auth_url": f"{base_url}/identity/v3",
                "username": user,
                "password": passwords[user],
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": REGION,
            "identity_api_version": 3,
            "interface": "public",
        }

    return {"clouds": {"isthmus": cloud("admin", "admin"), "isthmus-demo": cloud("demo", "demo")}}


def write_clouds_yaml(path: Path, base_url: str, passwords: dict[str, str]) -> Path:
    """Write clouds.yaml (0600: it holds the passwords) and return its path."""
    return write_private(
        path, yaml.safe_dump(clouds_document(base_url, passwords), sort_keys=False)
    )
