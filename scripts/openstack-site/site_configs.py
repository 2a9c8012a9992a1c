"""The configuration files of the test site's services (scripts/openstack-site/site.py):
Keystone, Neutron (ML2 + fakebind, bgpvpn), Glance, Placement, Nova, Cinder and their uwsgi
ini files, all under WORK/etc, with every port on 127.0.0.1 taken from `ports`."""

from __future__ import annotations

from pathlib import Path

from site_catalog import REGION


class ConfigFiles:
    """Mixed into site.Site, which sets these attributes."""

    work: Path
    etc: Path
    logs: Path
    name: str
    password: str
    ports: dict[str, int]

    # -- configuration ---------------------------------------------------------------------

    def db(self, name: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.ports['pg']}/{name}"

    def url(self, service: str) -> str:
        suffix = {"nova": "/v2.1", "cinder": "/v3/%(project_id)s", "keystone": "/v3"}
        return f"http://127.0.0.1:{self.ports[service]}{suffix.get(service, '')}"

    @property
    def transport(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.ports['amqp']}/"

    def authtoken(self, user: str) -> str:
        return (
            "[keystone_authtoken]\n"
            f"www_authenticate_uri = {self.url('keystone')}\n"
            f"auth_url = {self.url('keystone')}\n"
            "auth_type = password\nproject_name = service\nproject_domain_name = Default\n"
            f"user_domain_name = Default\nusername = {user}\npassword = {self.password}\n"
            # Cinder lets only Nova (a service token with role `service`) delete an attachment
            "service_token_roles = service\nservice_token_roles_required = true\n"
        )

    def creds(self, section: str, user: str) -> str:
        return (
            f"[{section}]\nregion_name = {REGION}\nauth_url = {self.url('keystone')}\n"
            "auth_type = password\nproject_name = service\nproject_domain_name = Default\n"
            f"user_domain_name = Default\nusername = {user}\npassword = {self.password}\n"
        )

    def uwsgi_ini(self, name: str, port: int, wsgi_file: str, env: str) -> Path:
        path = self.etc / f"{name}-uwsgi.ini"
        path.write_text(
            "[uwsgi]\nplugins = python3\n"
            f"http-socket = 127.0.0.1:{port}\nwsgi-file = {wsgi_file}\n"
            "master = true\nprocesses = 1\nthreads = 4\nlazy-apps = true\n"
            "enable-threads = true\nbuffer-size = 65535\ndie-on-term = true\n"
            # uwsgi's http-socket drops kept-alive connections: tell clients so
            "add-header = Connection: close\n"
            f"env = {env}\nlogto = {self.logs}/{name}-uwsgi.log\n"
        )
        return path

    def write_configs(self) -> None:
        etc, logs, work, p = self.etc, self.logs, self.work, self.ports
        lock = work / "lock"
        (work / "images").mkdir(exist_ok=True)
        (work / "nova-state").mkdir(exist_ok=True)
        (work / "cinder-state").mkdir(exist_ok=True)
        (etc / "placement").mkdir(exist_ok=True)
        (etc / "keystone.conf").write_text(
            f"[DEFAULT]\nlog_file = {logs}/keystone.log\n"
            f"[database]\nconnection = {self.db('keystone')}\n"
            f"[token]\nprovider = fernet\n[fernet_tokens]\nkey_repository = {work}/fernet-keys\n"
            f"[credential]\nkey_repository = {work}/credential-keys\n"
        )
        (etc / "neutron.conf").write_text(
            "[DEFAULT]\nbind_host = 127.0.0.1\n"
            f"bind_port = {p['neutron']}\ncore_plugin = ml2\n"
            "service_plugins = router,bgpvpn\nauth_strategy = keystone\n"
            # no agents and no broker: a fake transport, no RPC workers
            "transport_url = fake://\napi_workers = 1\nrpc_workers = 0\n"
            "rpc_state_report_workers = 0\nnotify_nova_on_port_status_changes = false\n"
            "notify_nova_on_port_data_changes = false\n"
            f"log_file = {logs}/neutron.log\napi_paste_config = /etc/neutron/api-paste.ini\n"
            f"[database]\nconnection = {self.db('neutron')}\n"
            f"[oslo_concurrency]\nlock_path = {lock}\n"
            "[ml2]\ntype_drivers = flat,vlan,vxlan\ntenant_network_types = vxlan\n"
            "mechanism_drivers = fakebind\nextension_drivers = port_security\n"
            "[ml2_type_flat]\nflat_networks = *\n"
            "[ml2_type_vlan]\nnetwork_vlan_ranges = physnet1:100:199\n"
            "[ml2_type_vxlan]\nvni_ranges = 1:1000\n"
            "[service_providers]\nservice_provider = BGPVPN:Dummy:networking_bgpvpn.neutron."
            "services.service_drivers.driver_api.BGPVPNDriver:default\n" + self.authtoken("neutron")
        )
        (etc / "glance-api.conf").write_text(
            f"[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {p['glance']}\nworkers = 1\n"
            f"log_file = {logs}/glance.log\nenabled_backends = file:file\n"
            "[glance_store]\ndefault_backend = file\n"
            f"[file]\nfilesystem_store_datadir = {work}/images\n"
            f"[database]\nconnection = {self.db('glance')}\n"
            "[paste_deploy]\nflavor = keystone\nconfig_file = /etc/glance/glance-api-paste.ini\n"
            f"[oslo_concurrency]\nlock_path = {lock}\n" + self.authtoken("glance")
        )
        (etc / "placement" / "placement.conf").write_text(
            f"[DEFAULT]\nlog_file = {logs}/placement.log\n[api]\nauth_strategy = keystone\n"
            f"[placement_database]\nconnection = {self.db('placement')}\n"
            + self.authtoken("placement")
        )
        nova_common = (
            f"[DEFAULT]\nhost = {self.name}-compute1\nmy_ip = 127.0.0.1\n"
            f"transport_url = {self.transport}\ncompute_driver = fake.FakeDriver\n"
            "enabled_apis = osapi_compute\nosapi_compute_listen = 127.0.0.1\n"
            f"osapi_compute_listen_port = {p['nova']}\nosapi_compute_workers = 1\n"
            f"state_path = {work}/nova-state\nlog_dir = {logs}/nova\n"
            "[wsgi]\napi_paste_config = /etc/nova/api-paste.ini\n"
            "[api]\nauth_strategy = keystone\n"
            "[conductor]\nworkers = 1\n"
            "[scheduler]\nworkers = 1\ndiscover_hosts_in_cells_interval = 2\n"
            "[service_user]\nsend_service_user_token = true\n"
            + self.creds("service_user", "nova").split("\n", 1)[1]
            + self.creds("placement", "placement")
            + self.creds("neutron", "neutron")
            + f"[glance]\nregion_name = {REGION}\n"
            f"[cinder]\nos_region_name = {REGION}\n"
            "[vnc]\nenabled = false\n"
            f"[oslo_concurrency]\nlock_path = {lock}\n"
            "[oslo_messaging_notifications]\ndriver = noop\n" + self.authtoken("nova")
        )
        (logs / "nova").mkdir(exist_ok=True)
        # nova-compute must not have database access: its config has no [database]
        (etc / "nova-compute.conf").write_text(nova_common)
        (etc / "nova.conf").write_text(
            nova_common + f"[api_database]\nconnection = {self.db('nova_api')}\n"
            f"[database]\nconnection = {self.db('nova')}\n"
        )
        (logs / "cinder").mkdir(exist_ok=True)
        (etc / "cinder.conf").write_text(
            f"[DEFAULT]\ntransport_url = {self.transport}\nauth_strategy = keystone\n"
            f"osapi_volume_listen = 127.0.0.1\nosapi_volume_listen_port = {p['cinder']}\n"
            "osapi_volume_workers = 1\nenabled_backends = fake\ndefault_volume_type = fake\n"
            f"host = {self.name}-volume1\nmy_ip = 127.0.0.1\n"
            f"state_path = {work}/cinder-state\nlog_dir = {logs}/cinder\n"
            f"glance_api_servers = {self.url('glance')}\n"
            "api_paste_config = /etc/cinder/api-paste.ini\n"
            f"[database]\nconnection = {self.db('cinder')}\n"
            f"[oslo_concurrency]\nlock_path = {lock}\n"
            "[oslo_messaging_notifications]\ndriver = noop\n"
            "[fake]\nvolume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver\n"
            "volume_backend_name = fake\n" + self.creds("nova", "nova") + self.authtoken("cinder")
        )
