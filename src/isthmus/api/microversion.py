"""OpenStack API microversions, as Nova and Cinder negotiate them (one rule for both;
api/compute/common.py and api/volume/microversions.py name their service's range).

A request names its version in `OpenStack-API-Version: <service> X.Y` (among other
services' entries, comma separated), or "latest"; none means the minimum. A
malformed version is 400, one outside the range 406, in the services' words.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers

from isthmus.errors import BadRequest, NotAcceptable

Version = tuple[int, int]

VERSION_HEADER = "OpenStack-API-Version"
_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


def version_string(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def requested_for(headers: Headers, service: str) -> str | None:
    """What `OpenStack-API-Version` asks of `service`, if it names it."""
    header = headers.get(VERSION_HEADER)
    if not header:
        return None
    for item in header.split(","):
        parts = item.strip().split()
        if len(parts) == 2 and parts[0].lower() == service:
            return parts[1]
    return None


def negotiate(requested: str | None, minimum: Version, maximum: Version) -> Version:
    """The version `requested` means within [minimum, maximum]: the minimum when it
    names none, the maximum for "latest"; else 400 (malformed) or 406 (outside)."""
    if requested is None:
        return minimum
    requested = requested.strip()
    if requested.lower() == "latest":
        return maximum
    match = _VERSION_RE.match(requested)
    if not match:
        raise BadRequest(
            f"API Version String {requested} is of invalid format. Must be of format"
            " MajorNum.MinorNum."
        )
    version = (int(match.group(1)), int(match.group(2)))
    if not minimum <= version <= maximum:
        raise NotAcceptable(
            f"Version {requested} is not supported by the API. Minimum is"
            f" {version_string(minimum)} and maximum is {version_string(maximum)}."
        )
    return version
