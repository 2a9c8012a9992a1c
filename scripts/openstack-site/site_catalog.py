"""What the test site holds once its services run (scripts/openstack-site/site.py):
Keystone's service users and catalog, the tenant project `isthmus` and its quotas,
flavors, a tiny public image, Cinder's `fake` volume type; the waits until Nova and
Cinder can serve; and the clouds.yaml that reaches it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REGION = "RegionOne"
QUOTAS = {"instances": 100, "cores": 200, "ram": 204800, "volumes": 100, "gigabytes": 1000}
FLAVORS = [("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20), ("m1.medium", 2, 4096, 40)]


class Catalog:
    """Mixed into site.Site, which provides these attributes and methods."""

    work: Path
    etc: Path
    name: str
    password: str
    project_id: str

    def url(self, service: str) -> str:  # site_configs.ConfigFiles
        raise NotImplementedError

    def base_env(self, **extra: str) -> dict[str, str]:  # site.Site
        raise NotImplementedError

    def lap(self, what: str) -> None:  # site.Site
        raise NotImplementedError

    # -- keystone catalog, flavors, image ----------------------------------------------------

    def connect(self, project: str = "admin", user: str = "admin") -> Any:
        import openstack

        return openstack.connect(
            auth_url=self.url("keystone"),
            username=user,
            password=self.password,
            project_name=project,
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=REGION,
            identity_api_version="3",
            load_envvars=False,
            load_yaml_config=False,
        )

    def register(self) -> None:
        conn = self.connect()
        identity = conn.identity
        service_project = identity.create_project(name="service", domain_id="default")
        roles = {r.name: r for r in identity.roles()}
        if "service" not in roles:
            roles["service"] = identity.create_role(name="service")
        catalog = [
            ("neutron", "network", f"http://127.0.0.1:{self.ports['neutron']}"),
            ("glance", "image", f"http://127.0.0.1:{self.ports['glance']}"),
            ("placement", "placement", f"http://127.0.0.1:{self.ports['placement']}"),
            ("nova", "compute", self.url("nova")),
            ("cinder", "volumev3", self.url("cinder")),
        ]
        for user, service_type, url in catalog:
            account = identity.create_user(name=user, password=self.password, domain_id="default")
            for role in ("admin", "service"):
                identity.assign_project_role_to_user(service_project, account, roles[role])
            service = identity.create_service(name=user, type=service_type)
            for interface in ("public", "internal"):
                identity.create_endpoint(
                    service_id=service.id, interface=interface, url=url, region_id=REGION
                )
        project = identity.create_project(name="isthmus", domain_id="default")
        user = identity.create_user(
            name="isthmus",
            password=self.password,
            domain_id="default",
            default_project_id=project.id,
        )
        identity.assign_project_role_to_user(project, user, roles["member"])
        self.project_id = project.id
        conn.close()

    def populate(self) -> None:
        conn = self.connect()
        for name, vcpus, ram, disk in FLAVORS:
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk)
        image = self.work / "tiny.img"
        image.write_bytes(b"\0" * 1024 * 1024)
        conn.image.create_image(
            name="cirros-tiny",
            filename=str(image),
            disk_format="raw",
            container_format="bare",
            visibility="public",
            wait=True,
        )
        q = QUOTAS
        conn.set_compute_quotas(
            self.project_id, instances=q["instances"], cores=q["cores"], ram=q["ram"]
        )
        conn.set_volume_quotas(
            self.project_id, volumes=q["volumes"], gigabytes=q["gigabytes"], snapshots=q["volumes"]
        )
        conn.set_network_quotas(
            self.project_id,
            network=100,
            subnet=100,
            port=500,
            security_group=100,
            security_group_rule=1000,
        )
        self.lap("flavors+image")
        # the volume type the fake backend serves (it is the default type, see cinder.conf)
        deadline = time.monotonic() + 180
        while True:
            try:
                conn.block_storage.create_type(
                    name="fake", extra_specs={"volume_backend_name": "fake"}
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        # (not os-hypervisors: from microversion 2.88 it asks the fake driver for an uptime)
        self.wait_until(
            "nova-compute up",
            lambda: any(
                s.binary == "nova-compute" and s.state == "up" for s in conn.compute.services()
            ),
        )
        self.wait_until(
            "cinder-volume up",
            lambda: any(
                s.binary == "cinder-volume" and s.state == "up"
                for s in conn.block_storage.services()
            ),
        )
        self.wait_until("compute host in a cell", lambda: self.host_mapped(conn))
        conn.close()

    def host_mapped(self, conn: Any) -> bool:
        """The scheduler maps new hosts every 2 s; a mapped host has a placement provider."""
        providers = conn.placement.resource_providers()
        return any(True for _ in providers) and self.nova_host_ready(conn)

    def nova_host_ready(self, conn: Any) -> bool:
        proc = subprocess.run(
            ["nova-manage", "--config-file", str(self.etc / "nova.conf"), "cell_v2", "list_hosts"],
            capture_output=True,
            text=True,
            env=self.base_env(),
        )
        return f"{self.name}-compute1" in proc.stdout

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    break
            except Exception as exc:  # a service still starting
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {exc}") from exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout:.0f} s")
            time.sleep(1)
        self.lap(what)

    def write_clouds_yaml(self) -> None:
        def cloud(project: str, user: str) -> str:
            return (
                f"  {'os-site' if user == 'isthmus' else 'os-site-admin'}:\n"
                f"    region_name: {REGION}\n    identity_api_version: 3\n"
                f"    auth:\n      auth_url: {self.url('keystone')}\n"
                f"      username: {user}\n      password: {self.password}\n"
                f"      project_name: {project}\n      user_domain_name: Default\n"
                "      project_domain_name: Default\n"
            )

        path = self.work / "clouds.yaml"
        path.write_text("clouds:\n" + cloud("isthmus", "isthmus") + cloud("admin", "admin"))
        path.chmod(0o600)
