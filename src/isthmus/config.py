"""Service configuration: defaults, then the YAML config file, then command-line
options. The config file looks like:

    database: postgresql+psycopg://isthmus@127.0.0.1/isthmus   # default: SQLite in data dir
    host: 127.0.0.1
    port: 8780
    workers: 4
    max_image_size: 1099511627776   # bytes; larger image uploads get 413
    sites:
      - name: site-a
        driver: local
        config: {vcpus: 64, ram_mb: 131072, disk_gb: 2000, boot_seconds: 1}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from isthmus.errors import BadRequest

DEFAULT_PORT = 8780
DEFAULT_SITES = ("site-a", "site-b", "site-c")


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
    max_image_size: int = 1024**4  # bytes an image upload may hold (Glance's image_size_cap)

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / 'isthmus.db'}"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def default_sites(self) -> list[SiteConfig]:
        """The configured sites, or three embedded ones."""
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
        "max_image_size",
    }
    unknown = set(values) - known
    if unknown:
        raise BadRequest(f"Unknown config keys: {', '.join(sorted(unknown))}")
    return Config(data_dir=data_dir, sites=sites, **values)
