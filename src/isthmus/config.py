"""Service configuration: defaults, then the YAML config file, then command-line
options. The config file looks like:

    database: postgresql+psycopg://isthmus@127.0.0.1/isthmus   # default: SQLite in data dir
    host: 127.0.0.1
    port: 8780
    workers: 4
    health_interval: 2     # seconds between health checks of each site
    sweep_interval: 30     # seconds between sweeps of each site (engine/drift.py); 0: none
    max_image_size: 1099511627776   # bytes; larger image uploads get 413
    sites:
      - name: site-a
        driver: local
        config: {vcpus: 64, ram_mb: 131072, disk_gb: 2000, boot_seconds: 1}
      - name: region-two
        driver: openstack
        config: {cloud: region-two, clouds_yaml: /etc/isthmus/clouds.yaml}

Site mode (`site_mode: true`, `isthmus up --site-mode`) serves exactly one embedded
site, named `site_name` (default `local`), through the same API: such an Isthmus
can be an `openstack` site of another Isthmus. It takes no `sites` list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from isthmus.errors import BadRequest

SITE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"  # a site name is its availability zone

DEFAULT_PORT = 8780
DEFAULT_SITES = ("site-a", "site-b", "site-c")
DEFAULT_SITE_MODE_NAME = "local"


@dataclass(frozen=True)
class SiteConfig:
    name: str
    driver: str = "local"
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    data_dir: Path
    database: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 4
    public_url: str | None = None
    sites: list[SiteConfig] = field(default_factory=list)
    boot_seconds: float = 1.0
    health_interval: float = 2.0
    # seconds between sweeps of each site (drift, observed status, foreign objects;
    # engine/drift.py); 0 turns sweeps off
    sweep_interval: float = 30.0
    max_image_size: int = 1024**4  # bytes an image upload may hold (Glance's image_size_cap)
    site_mode: bool = False  # serve exactly one embedded site (see the module docstring)
    site_name: str = DEFAULT_SITE_MODE_NAME
    fabric: str = ""  # "embedded": embedded sites get the kernel data plane where it can run
    vni_range: tuple[int, int] = (1001, 16777215)  # segment ids given to new networks

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / 'isthmus.db'}"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def default_sites(self) -> list[SiteConfig]:
        """The configured sites, or three embedded ones; in site mode the one site."""
        if self.site_mode:
            return [SiteConfig(self.site_name, "local", {"boot_seconds": self.boot_seconds})]
        if self.sites:
            return self.sites
        return [
            SiteConfig(name, "local", {"boot_seconds": self.boot_seconds}) for name in DEFAULT_SITES
        ]


def load_config(data_dir: Path, config_file: Path | None = None, **overrides: Any) -> Config:
    """Defaults < config file < overrides (None values in overrides are ignored)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise BadRequest(f"Cannot read config file {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise BadRequest(f"Config file {config_file} must hold a mapping")
        values.update(loaded)
    values.update({key: value for key, value in overrides.items() if value is not None})
    sites = [
        SiteConfig(str(s["name"]), str(s.get("driver", "local")), dict(s.get("config") or {}))
        for s in values.pop("sites", []) or []
    ]
    known = {
        "database",
        "host",
        "port",
        "workers",
        "public_url",
        "boot_seconds",
        "health_interval",
        "sweep_interval",
        "max_image_size",
        "site_mode",
        "site_name",
        "fabric",
        "vni_range",
    }
    unknown = set(values) - known
    if unknown:
        raise BadRequest(f"Unknown config keys: {', '.join(sorted(unknown))}")
    config = Config(data_dir=data_dir, sites=sites, **values)
    if config.site_mode and config.sites:
        raise BadRequest(
            "Site mode serves exactly one embedded site: remove `sites` from the config"
            " (name the site with `site_name` or --site-name)."
        )
    if not re.fullmatch(SITE_NAME_PATTERN, str(config.site_name)):
        raise BadRequest(
            f"Invalid site name {config.site_name!r}: 1-63 letters, digits, '-' or '_',"
            " starting with a letter or digit."
        )
    return config
