"""Shared plumbing of the Compute v2.1 API (api/compute/*.py).

- Microversions: every route of a compute router runs through `ComputeRoute`,
  which reads `OpenStack-API-Version: compute X` (or the legacy
  `X-OpenStack-Nova-API-Version: X`), answers 400 for a malformed version and 406
  for one outside [MIN_VERSION, MAX_VERSION] as Nova does, and echoes the version
  used in `OpenStack-API-Version`, `X-OpenStack-Nova-API-Version` and `Vary` on
  every answer, errors included.
- Links, pagination (`limit`/`marker`, `<collection>_links` next link) and the
  small parsers every compute module uses.

Isthmus serves microversions 2.1 to 2.96 (MIN_VERSION..MAX_VERSION); a request
without a version gets 2.1, as Nova's. Whether a request is at or above a
microversion is decided here, once: `request_version(request) >= (2, 47)` (the
handlers and views ask this; nothing else reads the headers).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext
from isthmus.api.errors import error_response
from isthmus.api.microversion import VERSION_HEADER, negotiate, requested_for, version_string
from isthmus.errors import ApiError, BadRequest, NotFound
from isthmus.store.tables import Resource

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 96)
MAX_LIMIT = 1000  # Nova's osapi_max_limit
LEGACY_VERSION_HEADER = "X-OpenStack-Nova-API-Version"


def _requested_version(request: Request) -> str | None:
    return requested_for(request.headers, "compute") or request.headers.get(LEGACY_VERSION_HEADER)


def negotiate_version(request: Request) -> tuple[int, int]:
    """The microversion the request asks for (2.1 when it asks for none)."""
    return negotiate(_requested_version(request), MIN_VERSION, MAX_VERSION)


def request_version(request: Request) -> tuple[int, int]:
    """The microversion this request was negotiated at (ComputeRoute sets it)."""
    return getattr(request.state, "compute_version", MIN_VERSION)


def _add_version_headers(response: Response, version: tuple[int, int]) -> None:
    response.headers[VERSION_HEADER] = f"compute {version_string(version)}"
    response.headers[LEGACY_VERSION_HEADER] = version_string(version)
    response.headers["Vary"] = f"{VERSION_HEADER}, {LEGACY_VERSION_HEADER}"


class ComputeRoute(APIRoute):
    """A route that negotiates the compute microversion and echoes it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            version = MIN_VERSION
            try:
                version = negotiate_version(request)
                request.state.compute_version = version
                response = await original(request)
            except ApiError as exc:
                response = error_response(request, exc.status, exc.message, exc.error_type)
            except RequestValidationError as exc:  # a body that is not a JSON object
                reasons = "; ".join(str(e.get("msg", "")) for e in exc.errors()[:3])
                response = error_response(request, 400, f"Malformed request body: {reasons}")
            _add_version_headers(response, version)
            return response

        return handler


def compute_router() -> APIRouter:
    """A router for one compute module: under /compute, with microversions."""
    return APIRouter(prefix="/compute", route_class=ComputeRoute)


# -- links and pagination ------------------------------------------------------------------


def api_url(request: Request) -> str:
    return f"{base_url_of(request)}/compute/v2.1"


def links(
    request: Request, collection: str, item_id: str, base: str | None = None
) -> list[dict[str, str]]:
    """Nova's self and bookmark links of one item (`base`: base_url_of(request),
    when the caller has it already)."""
    base = base or base_url_of(request)
    return [
        {"rel": "self", "href": f"{base}/compute/v2.1/{collection}/{item_id}"},
        {"rel": "bookmark", "href": f"{base}/compute/{collection}/{item_id}"},
    ]


def bookmark(
    request: Request, collection: str, item_id: str, base: str | None = None
) -> list[dict[str, str]]:
    base = base or base_url_of(request)
    return [{"rel": "bookmark", "href": f"{base}/compute/{collection}/{item_id}"}]


def parse_limit(request: Request) -> int:
    """`limit` of a list request (MAX_LIMIT when absent or 0); 400 when malformed."""
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return MAX_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters limit. Value: {raw}.") from None
    if limit < 0:
        raise BadRequest(f"Invalid input for query parameters limit. Value: {raw}.")
    return min(limit or MAX_LIMIT, MAX_LIMIT)


def next_links(
    request: Request, collection: str, page: list[str], limit: int
) -> list[dict[str, str]]:
    """`<collection>_links` with a next link when the page is full (as Nova does)."""
    if not page or len(page) < limit:
        return []
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("marker",)]
    if not any(k == "limit" for k, _ in params):
        params.append(("limit", str(limit)))
    params.append(("marker", page[-1]))
    path = request.url.path.split("/compute/v2.1", 1)[-1]
    return [{"rel": "next", "href": f"{api_url(request)}{path}?{urlencode(params)}"}]


def page_after_marker(ids: list[str], marker: str | None, limit: int) -> list[str]:
    """The ids after `marker` (400 if it is not among them), at most `limit`."""
    if marker:
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        ids = ids[ids.index(marker) + 1 :]
    return ids[:limit]


# -- parsers ---------------------------------------------------------------------------------


def ref_id(ref: Any) -> str:
    """The id in a flavorRef/imageRef, which may be an id or a URL ending in one."""
    text = str(ref).strip().rstrip("/")
    return text.rsplit("/", 1)[-1] if "/" in text else text


def parse_bool(name: str, value: Any) -> bool:
    """Nova's boolean-like values ("true", "1", "yes", ...); 400 otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes", ""):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid value '{value}' for {name}: expected a boolean.")


def parse_int(field: str, value: Any, minimum: int) -> int:
    """An integer (or digit string) of at least `minimum`; 400 otherwise."""
    try:
        number = int(value)
        if isinstance(value, bool) or isinstance(value, float) and value != number:
            raise ValueError
    except (TypeError, ValueError):
        raise BadRequest(
            f"Invalid input for field/attribute {field}. Value: {value}. It must be an integer."
        ) from None
    if number < minimum:
        raise BadRequest(
            f"Invalid input for field/attribute {field}. Value: {value}. It must be at least"
            f" {minimum}."
        )
    return number


def require_object(body: Any, key: str) -> dict[str, Any]:
    """body[key] as a dict, or 400 naming the missing or malformed key."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadRequest(
            f"Invalid input for field/attribute {key}. '{key}' is a required property"
            " and must be an object."
        )
    return body[key]


# -- flavors (used by servers and flavors) ---------------------------------------------------


def flavor_visible(ctx: RequestContext, flavor: Resource) -> bool:
    if ctx.is_admin or flavor.spec.get("is_public", True):
        return True
    return ctx.project_id in (flavor.spec.get("projects") or [])


def get_flavor(session: Any, ctx: RequestContext, flavor_id: str) -> Resource:
    """The flavor, if the caller may see it; 404 otherwise."""
    flavor = session.get(Resource, flavor_id)
    if (
        flavor is None
        or flavor.kind != "flavor"
        or flavor.deleting
        or not flavor_visible(ctx, flavor)
    ):
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return flavor
