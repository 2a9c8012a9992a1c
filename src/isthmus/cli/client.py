"""How the `isthmus` command finds and talks to a running Isthmus: the client side
of the admin REST API (`/isthmus/v1`).

The service is found the way the `openstack` CLI finds a cloud:

1. `--url URL`: the Isthmus base URL; credentials come from `--os-username`,
   `--os-password`, `--os-project-name` (or OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME).
2. otherwise the cloud `--os-cloud` (OS_CLOUD, else `isthmus`) from clouds.yaml:
   OS_CLIENT_CONFIG_FILE, else ./clouds.yaml, ~/.config/openstack/clouds.yaml,
   /etc/openstack/clouds.yaml. Its `auth` section is sent to Keystone
   (`<auth_url>/auth/tokens`) and the endpoint of service type `isthmus` is taken from
   the token's catalog.
3. failing both, OS_AUTH_URL with the OS_* credentials, as in 2.

Every failure the user can do something about is raised as `ClientError` with a
message fit to print (the CLI prints it and exits 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from isthmus.errors import IsthmusError

DEFAULT_CLOUD = "isthmus"
SERVICE_TYPE = "isthmus"
TIMEOUT_SECONDS = 60.0


class ClientError(IsthmusError):
    """A request to Isthmus failed; `message` says why, `status` is the HTTP status
    (0 when the service could not be reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Credentials:
    """Where to authenticate and as whom."""

    auth_url: str  # Keystone v3 root, e.g. http://127.0.0.1:8780/identity/v3
    username: str
    password: str
    project_name: str
    user_domain: str = "Default"
    project_domain: str = "Default"
    interface: str = "public"
    region: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class ConnectOptions:
    """What the command line said about finding the service."""

    cloud: str | None = None
    url: str | None = None
    username: str | None = None
    password: str | None = None
    project_name: str | None = None


def clouds_yaml_candidates() -> list[Path]:
    """The clouds.yaml files to look in, in the order the openstack CLI uses."""
    explicit = os.environ.get("OS_CLIENT_CONFIG_FILE")
    if explicit:
        return [Path(explicit).expanduser()]
    return [
        Path.cwd() / "clouds.yaml",
        Path.home() / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]


def _find_cloud(name: str) -> tuple[Path, dict[str, Any]] | None:
    for path in clouds_yaml_candidates():
        if not path.is_file():
            continue
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClientError(f"Cannot read {path}: {exc}") from exc
        clouds = document.get("clouds") if isinstance(document, dict) else None
        if isinstance(clouds, dict) and isinstance(clouds.get(name), dict):
            return path, clouds[name]
    return None


def _keystone_v3(auth_url: str) -> str:
    url = auth_url.rstrip("/")
    return url if url.endswith("/v3") else f"{url}/v3"


def _from_env(options: ConnectOptions, auth_url: str) -> Credentials:
    username = options.username or os.environ.get("OS_USERNAME")
    password = options.password or os.environ.get("OS_PASSWORD")
    project = options.project_name or os.environ.get("OS_PROJECT_NAME")
    missing = [
        flag
        for flag, value in (
            ("--os-username/OS_USERNAME", username),
            ("--os-password/OS_PASSWORD", password),
            ("--os-project-name/OS_PROJECT_NAME", project),
        )
        if not value
    ]
    if missing:
        raise ClientError(f"Missing credentials: give {', '.join(missing)}.")
    assert username and password and project
    return Credentials(
        auth_url=_keystone_v3(auth_url),
        username=username,
        password=password,
        project_name=project,
        user_domain=os.environ.get("OS_USER_DOMAIN_NAME", "Default"),
        project_domain=os.environ.get("OS_PROJECT_DOMAIN_NAME", "Default"),
    )


def resolve(options: ConnectOptions) -> tuple[Credentials, str | None]:
    """The credentials to use, and the admin endpoint if it is already known
    (with `--url`); otherwise it comes from the catalog."""
    if options.url:
        base = options.url.rstrip("/")
        return _from_env(options, f"{base}/identity/v3"), f"{base}/isthmus/v1"
    name = options.cloud or os.environ.get("OS_CLOUD") or DEFAULT_CLOUD
    found = _find_cloud(name)
    if found is None:
        if os.environ.get("OS_AUTH_URL"):
            return _from_env(options, os.environ["OS_AUTH_URL"]), None
        searched = ", ".join(str(p) for p in clouds_yaml_candidates())
        raise ClientError(
            f"No cloud {name!r} found in {searched}. Point OS_CLIENT_CONFIG_FILE at the"
            " clouds.yaml `isthmus up` wrote (in its data dir), or give --url."
        )
    path, cloud = found
    auth = cloud.get("auth") or {}
    if not auth.get("auth_url"):
        raise ClientError(f"Cloud {name!r} in {path} has no auth.auth_url.")
    return (
        Credentials(
            auth_url=_keystone_v3(str(auth["auth_url"])),
            username=str(options.username or auth.get("username") or ""),
            password=str(options.password or auth.get("password") or ""),
            project_name=str(options.project_name or auth.get("project_name") or ""),
            user_domain=str(auth.get("user_domain_name") or "Default"),
            project_domain=str(auth.get("project_domain_name") or "Default"),
            interface=str(cloud.get("interface") or "public"),
            region=cloud.get("region_name"),
            verify=bool(cloud.get("verify", True)),
        ),
        None,
    )


def error_message(response: httpx.Response) -> str:
    """The message of an Isthmus/OpenStack error body, or the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
    text = response.text.strip()
    return text[:300] if text else f"HTTP {response.status_code} {response.reason_phrase}"


class AdminClient:
    """An authenticated client of one Isthmus admin API."""

    def __init__(self, options: ConnectOptions) -> None:
        self.credentials, endpoint = resolve(options)
        self.http = httpx.Client(timeout=TIMEOUT_SECONDS, verify=self.credentials.verify)
        self.token, catalog = self._authenticate()
        self.endpoint = endpoint or self._endpoint_from(catalog)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"Cannot reach Isthmus at {url}: {exc}") from exc

    def _authenticate(self) -> tuple[str, list[dict[str, Any]]]:
        c = self.credentials
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": c.username,
                            "domain": {"name": c.user_domain},
                            "password": c.password,
                        }
                    },
                },
                "scope": {
                    "project": {"name": c.project_name, "domain": {"name": c.project_domain}}
                },
            }
        }
        response = self._send("POST", f"{c.auth_url}/auth/tokens", json=body)
        if response.status_code != 201:
            raise ClientError(
                f"Authentication as {c.username!r} at {c.auth_url} failed:"
                f" {error_message(response)}",
                response.status_code,
            )
        token = response.headers.get("X-Subject-Token", "")
        catalog = (response.json().get("token") or {}).get("catalog") or []
        return token, catalog

    def _endpoint_from(self, catalog: list[dict[str, Any]]) -> str:
        c = self.credentials
        for entry in catalog:
            if entry.get("type") != SERVICE_TYPE:
                continue
            for endpoint in entry.get("endpoints") or []:
                if endpoint.get("interface") == c.interface and (
                    not c.region or endpoint.get("region") in (c.region, None)
                ):
                    return str(endpoint["url"]).rstrip("/")
        raise ClientError(
            f"The catalog of {c.auth_url} has no {c.interface} endpoint of type"
            f" {SERVICE_TYPE!r}: is this an Isthmus?"
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `<endpoint><path>`; the parsed JSON answer (None for 204), or ClientError."""
        response = self._send(
            method, f"{self.endpoint}{path}", headers={"X-Auth-Token": self.token}, **kwargs
        )
        if response.status_code >= 400:
            raise ClientError(error_message(response), response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any) -> Any:
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
