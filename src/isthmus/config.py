"""Service configuration: defaults, then the YAML config file, then command-line
options. The config file looks like:

    database: postgresql+psycopg://isthmus@127.0.0.1/isthmus   # default: SQLite in data dir
    host: 127.0.0.1
    port: 8780
    workers: 4
    health_interval: 2     # seconds between health checks of each site
    sweep_interval: 30     # seconds between sweeps of each site (engine/drift.py); 0: none
    max_image_size: 1099511627776   # bytes; larger image uploads get 413
    fabric: embedded       # embedded sites get the kernel data plane where it can run
    vni_range: [1001, 16777215]     # segment ids given to new networks
    metrics_listen: 127.0.0.1:9180  # /metrics without a token on this loopback port
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

Everything is checked before anything starts (`load_config`, `prepare_data_dir`):
the type and range of every key, the database URL, `fabric`, `vni_range`,
`metrics_listen` (see api/admin/metrics.py: host:port, loopback only), and each site in
`sites` exactly as `isthmus site add` checks it (sites/validation.py), plus
duplicate names. A problem raises `ConfigError` naming the key; the `isthmus`
command prints it as one `Error:` line and exits 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from isthmus.errors import BadRequest
from isthmus.sites.validation import SITE_NAME_PATTERN, check_site_name, validate_site

__all__ = ["SITE_NAME_PATTERN"]  # re-exported (api/admin/models.py)

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
    # "host:port" (loopback) where /metrics is also served without a token; "" = not
    metrics_listen: str = ""
    # seconds a token lives, and the longest lifetime a token is accepted with
    # (Keystone's [token] expiration; api/identity/tokens.py)
    token_expiration: int = 3600

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


class ConfigError(BadRequest):
    """The configuration (file, options or data dir) cannot be used; the message
    names the key and what it must be. `isthmus` prints it and exits 2."""


MAX_VNI = 16777215  # 24 bits
FABRICS = ("", "embedded")
DATABASE_DIALECTS = ("sqlite", "postgresql")
HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){HOST_LABEL}(\.{HOST_LABEL})*$")  # RFC 1123
LOOPBACK_NAMES = ("localhost",)


def _integer(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, not {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{key} must be {bounds}, not {value}.")
    return value


def _number(key: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigError(f"{key} must be a number of seconds, not {value!r}.")
    if value < 0 or (positive and value == 0) or value == float("inf"):
        what = "greater than 0" if positive else "0 or more"
        raise ConfigError(f"{key} must be a finite number {what}, not {value}.")
    return float(value)


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {value!r}.")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, not {value!r}.")
    return value


def check_host(key: str, value: Any) -> str:
    """An IP address or a DNS name (not resolved here)."""
    host = _string(key, value)
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not HOSTNAME.fullmatch(host):
        raise ConfigError(f"{key} must be an IP address or a host name, not {host!r}.")
    return host


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(key: str, value: Any) -> tuple[str, int]:
    """`host:port` (`[::1]:port` for IPv6) on a loopback address: a port that only
    this machine reaches (what serves there needs no token)."""
    text = _string(key, value).strip()
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{key} must be host:port (e.g. 127.0.0.1:9180), not {text!r}.")
    number = int(port)
    if not 1 <= number <= 65535:
        raise ConfigError(f"{key}: port must be between 1 and 65535, not {number}.")
    if not is_loopback(check_host(key, host)):
        raise ConfigError(
            f"{key} must name a loopback address (127.0.0.1, ::1, localhost),"
            f" not {host!r}: what it serves needs no token. To scrape from another machine,"
            " scrape /metrics on the main port with an admin token."
        )
    return host, number


def _listen(key: str, value: Any) -> str:
    parse_listen(key, value)
    return str(value).strip()


def _database(key: str, value: Any) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = _string(key, value).strip()
    if not url:
        return None  # the default: SQLite in the data dir
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"{key} is not a database URL: {exc}") from exc
    if parsed.get_backend_name() not in DATABASE_DIALECTS:
        raise ConfigError(
            f"{key}: Isthmus stores its data in SQLite or PostgreSQL"
            f" (e.g. postgresql+psycopg://user@host/db), not {parsed.get_backend_name()!r}."
        )
    return url


def _public_url(key: str, value: Any) -> str:
    url = _string(key, value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key} must be an http(s) URL, not {url!r}.")
    return url


def _fabric(key: str, value: Any) -> str:
    if value not in FABRICS:
        raise ConfigError(f"{key} must be 'embedded' or empty, not {value!r}.")
    return str(value)


def _vni_range(key: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{key} must be [low, high], not {value!r}.")
    low = _integer(f"{key}[0]", value[0], 1, MAX_VNI)
    high = _integer(f"{key}[1]", value[1], 1, MAX_VNI)
    if low > high:
        raise ConfigError(f"{key}: low {low} is above high {high}.")
    return low, high


def _site_name(key: str, value: Any) -> str:
    try:
        return check_site_name(value)
    except BadRequest as exc:
        raise ConfigError(exc.message) from exc


# every key a config may hold, and its check (which returns the value to keep)
CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "database": _database,
    "host": check_host,
    "port": lambda key, value: _integer(key, value, 1, 65535),
    "workers": lambda key, value: _integer(key, value, 1, 1024),
    "public_url": _public_url,
    "boot_seconds": lambda key, value: _number(key, value, positive=False),
    "health_interval": lambda key, value: _number(key, value, positive=True),
    "sweep_interval": lambda key, value: _number(key, value, positive=False),
    "max_image_size": lambda key, value: _integer(key, value, 1),
    "site_mode": _boolean,
    "site_name": _site_name,
    "fabric": _fabric,
    "vni_range": _vni_range,
    "metrics_listen": _listen,
    "token_expiration": lambda key, value: _integer(key, value, 60, 7 * 86400),
}


def check_sites(value: Any) -> list[SiteConfig]:
    """The `sites` list, each entry checked exactly as `isthmus site add` checks a
    site (sites/validation.py), and no name twice."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"Config key 'sites' must be a list of sites, not {value!r}.")
    sites: list[SiteConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(value):
        where = f"sites[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where} must be a mapping with name, driver, config; not {entry!r}."
            )
        unknown = set(entry) - {"name", "driver", "config"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))};"
                " a site has name, driver and config."
            )
        if "name" not in entry:
            raise ConfigError(f"{where} has no name.")
        name, driver = entry["name"], entry.get("driver", "local")
        config = entry.get("config") or {}
        where = f"{where} ({name!r})" if isinstance(name, str) else where
        try:
            validate_site(name, driver, config)
        except BadRequest as exc:
            raise ConfigError(f"{where}: {exc.message}") from exc
        if name in seen:
            raise ConfigError(f"{where}: site name {name!r} is given twice; names must differ.")
        seen.add(name)
        sites.append(SiteConfig(name, driver, dict(config)))
    return sites


def load_config(data_dir: Path, config_file: Path | None = None, **overrides: Any) -> Config:
    """Defaults < config file < overrides (a key given no value, None, keeps its
    default); every value checked (ConfigError). Does not look at the data dir: see
    `prepare_data_dir`."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problem = " ".join(str(exc).split())  # YAML errors span lines
            raise ConfigError(f"Cannot read config file {config_file}: {problem}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config file {config_file} must hold a mapping of keys.")
        values.update({key: value for key, value in loaded.items() if value is not None})
    values.update({key: value for key, value in overrides.items() if value is not None})
    sites = check_sites(values.pop("sites", None))
    unknown = set(values) - set(CHECKS)
    if unknown:
        raise ConfigError(
            f"Unknown config keys: {', '.join(sorted(map(str, unknown)))};"
            f" known keys: {', '.join(sorted(CHECKS))}, sites."
        )
    checked = {key: CHECKS[key](key, value) for key, value in values.items()}
    config = Config(data_dir=data_dir, sites=sites, **checked)
    if config.site_mode and config.sites:
        raise ConfigError(
            "Site mode serves exactly one embedded site: remove `sites` from the config"
            " (name the site with `site_name` or --site-name)."
        )
    return config


def prepare_data_dir(data_dir: Path) -> Path:
    """Make sure `data_dir` is a directory this process can write (created, 0700,
    when missing); ConfigError saying why not."""
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"Data dir {data_dir} is not a directory.")
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create data dir {data_dir}: {exc.strerror or exc}.") from exc
    try:
        handle, probe = tempfile.mkstemp(prefix=".isthmus-probe-", dir=data_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"Data dir {data_dir} is not writable: {exc.strerror or exc}.") from exc
    return data_dir
