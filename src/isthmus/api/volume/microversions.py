"""Block Storage microversions (Cinder's `OpenStack-API-Version: volume X.Y`).

Every route of the volume routers is a `VolumeRoute`: it reads the requested
version, answers 400 for a malformed one and 406 for one outside
[MIN_VERSION, MAX_VERSION] as Cinder does, keeps the version on
`request.state.volume_version` for the handlers (`version_of`, `at_least`), and
echoes it with `Vary: OpenStack-API-Version` on every answer, errors included.
No header means 3.0; `latest` means MAX_VERSION.

What changes with the version (cinder/api/openstack/rest_api_version_history.rst)
and Isthmus serves: volume bodies (api/volume/views.py) gain group_id (3.13),
provider_id for admins (3.21), shared_targets and service_uuid (3.48; a tristate
from 3.69), cluster_name for admins (3.61), volume_type_id (3.63) and
consumes_quota (3.65); snapshot bodies gain group_snapshot_id (3.14), user_id
(3.41) and consumes_quota (3.65); volume lists take the configured filters and
refuse unknown ones (3.31), `~` like filters (3.34), `with_count` (3.45) and
created_at/updated_at comparisons (3.60); GET volumes/summary (3.12, metadata from
3.36); GET resource_filters (3.33); extend of an in-use volume (3.42); unknown
volume create keys refused (3.53); snapshots of in-use volumes without force
(3.66). Features Isthmus does not have (groups, backups, messages, clusters,
attachments API, transfers, manage/unmanage, re-image) keep their routes absent:
their versions change nothing else here.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from isthmus.api.errors import error_response
from isthmus.api.microversion import VERSION_HEADER, Version, requested_for, version_string
from isthmus.api.microversion import negotiate as negotiate_range
from isthmus.errors import ApiError

MIN_VERSION: Version = (3, 0)
MAX_VERSION: Version = (3, 70)

# the versions named in the handlers and views
GROUP_VOLUME: Version = (3, 13)
GROUP_SNAPSHOTS: Version = (3, 14)
PROVIDER_ID: Version = (3, 21)
RESOURCE_FILTERS: Version = (3, 31)
VOLUME_SUMMARY: Version = (3, 12)
LIKE_FILTER: Version = (3, 34)
SUMMARY_METADATA: Version = (3, 36)
SNAPSHOT_USER_ID: Version = (3, 41)
EXTEND_IN_USE: Version = (3, 42)
COUNT_INFO: Version = (3, 45)
SHARED_TARGETS: Version = (3, 48)
SCHEMA_VALIDATION: Version = (3, 53)
TIME_FILTERS: Version = (3, 60)
CLUSTER_NAME: Version = (3, 61)
VOLUME_TYPE_ID: Version = (3, 63)
CONSUMES_QUOTA: Version = (3, 65)
SNAPSHOT_IN_USE: Version = (3, 66)
SHARED_TARGETS_TRISTATE: Version = (3, 69)


def negotiate(request: Request) -> Version:
    """The microversion a request asks for (3.0 when it names none)."""
    return negotiate_range(requested_for(request.headers, "volume"), MIN_VERSION, MAX_VERSION)


def version_of(request: Request) -> Version:
    """The negotiated version of this request (3.0 outside a VolumeRoute)."""
    return getattr(request.state, "volume_version", MIN_VERSION)


def at_least(request: Request, version: Version) -> bool:
    return version_of(request) >= version


class VolumeRoute(APIRoute):
    """A route that negotiates the volume microversion and echoes it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            version: Version | None = None
            try:
                version = negotiate(request)
                request.state.volume_version = version
                response = await original(request)
            except ApiError as exc:
                response = error_response(request, exc.status, exc.message, exc.error_type)
            except RequestValidationError as exc:  # a body that is not a JSON object
                reasons = "; ".join(str(e.get("msg", "")) for e in exc.errors()[:3])
                response = error_response(request, 400, f"Malformed request body: {reasons}")
            if version is not None:
                response.headers[VERSION_HEADER] = f"volume {version_string(version)}"
            response.headers["Vary"] = VERSION_HEADER
            return response

        return handler
