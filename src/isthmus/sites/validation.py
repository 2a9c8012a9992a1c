"""What a site definition may hold: the one check every way of defining a site
goes through (`POST /isthmus/v1/sites` and `isthmus site add`, the `sites:` list
of the config file read by `isthmus up`/`worker`/`migrate`), so a site the config
file names is held to exactly what `site add` accepts.

    validate_site(name, driver, config)   BadRequest naming the first problem

Pure: no I/O, no store; whether the name is already taken is the caller's
question (the store for the API, the list itself for the config file).
"""

from __future__ import annotations

import re
from typing import Any

from isthmus.errors import BadRequest

SITE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"  # a site name is its availability zone

DRIVERS = ("local", "openstack")

# what each driver's config may hold, and the type each value must have
DRIVER_CONFIG: dict[str, dict[str, tuple[type, ...]]] = {
    "local": {
        "vcpus": (int,),
        "ram_mb": (int,),
        "disk_gb": (int,),
        "boot_seconds": (int, float),
        "directory": (str,),
        "data_plane": (bool,),
        "copy_rate": (int, float),  # bytes/s: simulated WAN bandwidth for image copies
    },
    # credentials are not config: they stay in the clouds.yaml file on this server
    "openstack": {
        "cloud": (str,),
        "clouds_yaml": (str,),
        "region_name": (str,),
        "availability_zone": (str,),
        "flavor_map": (dict,),
        "default_image": (str,),
        "settle_seconds": (int, float),
        "timeout": (int, float),
        "vcpus": (int,),
        "ram_mb": (int,),
        "disk_gb": (int,),
        "external_network": (str,),
        "admin_cloud": (str,),
    },
}
REQUIRED_CONFIG: dict[str, tuple[str, ...]] = {"openstack": ("cloud",)}


def check_site_name(name: object) -> str:
    """`name` if it is a valid site name (it is also the availability zone)."""
    if not isinstance(name, str) or not re.fullmatch(SITE_NAME_PATTERN, name):
        raise BadRequest(
            f"Invalid site name {name!r}: a site name is its availability zone and must be"
            " 1-63 letters, digits, '-' or '_', starting with a letter or digit."
        )
    return name


def check_driver(driver: object) -> str:
    """`driver` if Isthmus has a driver of that name."""
    if not isinstance(driver, str) or driver not in DRIVERS:
        raise BadRequest(f"Unknown site driver {driver!r}; known drivers: {', '.join(DRIVERS)}.")
    return driver


def check_driver_config(driver: str, config: object) -> dict[str, Any]:
    """`config` if it holds only keys `driver` knows, each of its type, none negative,
    and every key the driver needs. A whole number written as a float (`4.0`) is an
    integer, as in JSON Schema: it is stored in `config` as the int."""
    if not isinstance(config, dict):
        raise BadRequest(f"The config of a {driver!r} site must be a mapping, not {config!r}.")
    allowed = DRIVER_CONFIG.get(driver, {})
    missing = [key for key in REQUIRED_CONFIG.get(driver, ()) if not config.get(key)]
    if missing:
        raise BadRequest(
            f"Driver {driver!r} needs config key(s) {', '.join(missing)}"
            " (e.g. the cloud's name in a clouds.yaml file on the Isthmus server)."
        )
    for key, value in list(config.items()):
        if key not in allowed:
            raise BadRequest(
                f"Unknown config key {key!r} for driver {driver!r};"
                f" known keys: {', '.join(sorted(allowed)) or 'none'}."
            )
        types = allowed[key]
        if isinstance(value, float) and value.is_integer() and float not in types and int in types:
            value = config[key] = int(value)
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise BadRequest(f"Config key {key!r} must be {names}, not {value!r}.")
        if isinstance(value, int | float) and value < 0:
            raise BadRequest(f"Config key {key!r} must not be negative.")
        if isinstance(value, dict) and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise BadRequest(f"Config key {key!r} must map names to names (strings).")
    return config


def validate_site(name: object, driver: object, config: object) -> None:
    """The one check of a site definition: name, driver, the driver's config."""
    check_site_name(name)
    check_driver_config(check_driver(driver), config)
