"""Shared pieces of the Block Storage v3 API (api/volume/volumes.py and its companions):
request parsing (entities, flags, metadata), list paging the way Cinder does it
(api/listing.py, 404 for an unknown marker, `<things>_links`), volume types
lookup and the availability zones. The site a new volume goes to is chosen by
intent/volumes.py (the rule is model/placement.choose_volume_site).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from isthmus.api import listing
from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.listing import Page
from isthmus.api.volume import microversions as mv
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import volume_types
from isthmus.store.tables import Resource, Site

DEFAULT_VOLUME_TYPE = volume_types.DEFAULT_VOLUME_TYPE  # seeded by isthmus/service.py

# the microversions served (negotiated per request in api/volume/microversions.py)
MAX_MICROVERSION = mv.version_string(mv.MAX_VERSION)
MIN_MICROVERSION = mv.version_string(mv.MIN_VERSION)

# Cinder's default resource_filters.json: what a list may filter on (3.31, 3.33)
RESOURCE_FILTERS: dict[str, tuple[str, ...]] = {
    "volume": (
        "name",
        "status",
        "metadata",
        "bootable",
        "migration_status",
        "availability_zone",
        "group_id",
        "size",
        "created_at",
        "updated_at",
    ),
    "snapshot": ("name", "status", "volume_id", "metadata", "availability_zone"),
}
# query parameters of a list that are not filters
LIST_PARAMS = frozenset(
    ("limit", "marker", "sort", "sort_key", "sort_dir", "offset", "all_tenants", "with_count")
)
# filters compared with the body's value as text (others: metadata, time comparisons)
PLAIN_FILTERS = ("name", "status", "availability_zone", "size", "volume_id", "group_id")
TIME_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}

T = TypeVar("T")

TRUE_WORDS = {"1", "true", "t", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "f", "no", "n", "off", ""}


def service_of(request: Request) -> Any:
    return request.app.state.service


def url_project(project_id: str, ctx: RequestContext = Depends(get_context)) -> str:
    """The project id of a Block Storage URL (`/volume/v3/<project_id>/...`), checked
    once for every route mounted under it (api/volume/volumes.py adds this dependency to the
    whole prefix). As in Cinder (cinder/api/openstack/wsgi.py, `_process_stack`), it
    must name the token's own project, for an admin too: anything else is 400
    "Malformed request url" and nothing is read or written. An admin reaches other
    projects' volumes by id or `all_tenants`, and names the target project of quota
    sets after `os-quota-sets/`, never in the URL's project segment."""
    if project_id != ctx.project_id:
        raise BadRequest("Malformed request url")
    return project_id


def entity(body: Any, key: str) -> dict[str, Any]:
    """The `{key: {...}}` envelope of a request body, or 400."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadRequest(f"Missing required element '{key}' in request body.")
    return body[key]


def flag(value: Any, name: str = "flag") -> bool:
    """A boolean from JSON or a query string ("true", "1", "False", ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise BadRequest(f"Invalid value '{value}' for {name}: expected a boolean.")


def text(ref: dict[str, Any], key: str, max_length: int = 255) -> str | None:
    """An optional string field (None stays None), at most `max_length` long."""
    value = ref.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field/attribute {key}: must be a string.")
    if len(value) > max_length:
        raise BadRequest(
            f"Invalid input for field/attribute {key}: longer than {max_length} characters."
        )
    return value


def positive_int(value: Any, name: str) -> int:
    """An integer >= 1 given as a number or a string of digits."""
    if isinstance(value, bool):
        raise BadRequest(f"Invalid input for field/attribute {name}: must be an integer.")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise BadRequest(f"Invalid input for field/attribute {name}: must be an integer.")
    if value < 1:
        raise BadRequest(
            f"Invalid input received: {name} must be an integer and greater than 0 (got {value})."
        )
    return value


def metadata(value: Any) -> dict[str, str]:
    """Cinder metadata: a mapping of strings (keys 1..255, values up to 255)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("Invalid input for field/attribute metadata: must be an object.")
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise BadRequest("Invalid metadata key: must be 1 to 255 characters.")
        if not isinstance(item, str) or len(item) > 255:
            raise BadRequest(f"Invalid metadata value for {key}: must be a string of <= 255.")
    return dict(value)


def metadata_filter(raw: str | None) -> dict[str, str]:
    """The `metadata` list filter: a dict written as JSON or as a Python literal."""
    if not raw:
        return {}
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(raw)
        except (ValueError, SyntaxError):
            continue
        if isinstance(parsed, dict):
            return {str(k): str(v) for k, v in parsed.items()}
    raise BadRequest(f"Invalid metadata filter {raw!r}: expected a mapping.")


# -- list paging ------------------------------------------------------------------------------


def paginate(
    items: list[T], page: Page, value: Callable[[T, str], Any], ident: Callable[[T], str]
) -> tuple[list[T], bool]:
    """listing.paginate with Cinder's answer to an unknown marker (404)."""
    return listing.paginate(
        items, page, value, ident, lambda marker: NotFound(f"Marker {marker} could not be found.")
    )


def list_query(request: Request, ctx: RequestContext, kind: str) -> Select[Resource]:
    """The rows of `kind` a list request may see: the caller's project, or with
    `all_tenants` (admins) every project or the one `project_id` names; `name=`
    filters exactly."""
    params = request.query_params
    scope = ctx.scope(flag(params.get("all_tenants", "false"), "all_tenants"))
    query = select(Resource).where(Resource.kind == kind)
    if scope is not None:
        query = query.where(Resource.project_id == scope)
    elif params.get("project_id"):
        query = query.where(Resource.project_id == params["project_id"])
    if params.get("name"):
        query = query.where(Resource.name == params["name"])
    return query


def list_filters(request: Request, kind: str) -> dict[str, str]:
    """The filters of a list request (`name~` is a like filter from 3.34). From 3.31
    a filter that is not in the kind's RESOURCE_FILTERS is Cinder's 400; before, it
    is ignored."""
    allowed = RESOURCE_FILTERS[kind]
    found: dict[str, str] = {}
    invalid: list[str] = []
    for key, value in request.query_params.items():
        if key in LIST_PARAMS or (key == "project_id"):
            continue
        base = key[:-1] if key.endswith("~") and mv.at_least(request, mv.LIKE_FILTER) else key
        if base in allowed:
            found[key] = value
        elif key in ("glance_metadata", "volume_type") and kind == "volume":
            found[key] = value
        else:
            invalid.append(key)
    if invalid and mv.at_least(request, mv.RESOURCE_FILTERS):
        raise BadRequest(
            f"Invalid input received: Invalid filters {', '.join(invalid)} are found in"
            " query options."
        )
    return found


def _time_matches(value: str | None, condition: str, key: str) -> bool:
    """`created_at=gt:2020-01-01T00:00:00` (3.60): comparisons joined by commas."""
    for part in condition.split(","):
        operator, sep, moment = part.partition(":")
        if not sep or operator not in TIME_OPERATORS:
            raise BadRequest(
                f"Invalid input received: Invalid filter value {condition} for {key}:"
                f" expected one of {', '.join(TIME_OPERATORS)} followed by ':' and a time."
            )
        if value is None or not TIME_OPERATORS[operator](value[:19], moment.strip()[:19]):
            return False
    return True


def _matches(request: Request, body: dict[str, Any], key: str, wanted: str) -> bool:
    like = key.endswith("~")
    name = key.rstrip("~")
    if name in ("created_at", "updated_at"):
        if not mv.at_least(request, mv.TIME_FILTERS):
            return True
        return _time_matches(body.get(name), wanted, name)
    if name == "metadata":
        return metadata_filter(wanted).items() <= body.get("metadata", {}).items()
    if name == "glance_metadata":
        image_meta = body.get("volume_image_metadata") or {}
        return metadata_filter(wanted).items() <= image_meta.items()
    if name == "bootable":
        return body.get("bootable") == ("true" if flag(wanted, "bootable") else "false")
    if name not in PLAIN_FILTERS and name != "volume_type":
        return True  # migration_status: Isthmus volumes never migrate
    have = body.get(name)
    text_value = "" if have is None else str(have)
    return wanted.lower() in text_value.lower() if like else text_value == wanted


def list_answer(
    request: Request,
    collection: str,
    pairs: list[tuple[Resource, dict[str, Any]]],
    page: Page,
    summary: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> dict[str, Any]:
    """One page of (row, body) pairs after the list's filters (`list_filters`), as
    Cinder answers a list: bodies (or their `summary` for the non-detail list) plus
    next links, and `count` (of all that matched) when asked with `with_count`
    from 3.45. Call it inside the session the rows came from (paging reads them)."""
    filters = list_filters(request, collection.rstrip("s"))
    for key, wanted in filters.items():
        pairs = [p for p in pairs if _matches(request, p[1], key, wanted)]
    page_pairs, more = paginate(pairs, page, listing.by_body, listing.pair_id)
    shown = [body if summary is None else summary(body) for _, body in page_pairs]
    answer: dict[str, Any] = {collection: shown}
    if shown:
        answer.update(next_links(request, collection, shown[-1]["id"], more))
    with_count = request.query_params.get("with_count")
    if with_count is not None and mv.at_least(request, mv.COUNT_INFO):
        if flag(with_count, "with_count"):
            answer["count"] = len(pairs)
    return answer


def next_links(request: Request, collection: str, last_id: str, more: bool) -> dict[str, Any]:
    """`{"<collection>_links": [{"rel": "next", ...}]}` when more items follow."""
    if not more:
        return {}
    query = request.url.include_query_params(marker=last_id).query
    href = f"{base_url_of(request)}{request.url.path}?{query}"
    return {f"{collection}_links": [{"rel": "next", "href": href}]}


def self_links(request: Request, project_id: str | None, path: str) -> list[dict[str, str]]:
    base = base_url_of(request)
    return [
        {"rel": "self", "href": f"{base}/volume/v3/{project_id}/{path}"},
        {"rel": "bookmark", "href": f"{base}/volume/{project_id}/{path}"},
    ]


# -- volume types --------------------------------------------------------------------------------


def live_types(session: Session) -> list[Resource]:
    query = select(Resource).where(Resource.kind == "volume_type", Resource.deleting.is_(False))
    return list(session.scalars(query.order_by(Resource.name)))


def type_names(session: Session) -> dict[str, str]:
    """Volume type id -> current name."""
    return {t.id: t.name for t in live_types(session)}


def default_type(session: Session) -> Resource:
    found = session.scalar(
        select(Resource).where(
            Resource.kind == "volume_type",
            Resource.name == DEFAULT_VOLUME_TYPE,
            Resource.deleting.is_(False),
        )
    )
    if found is None:
        raise NotFound("Default volume type can not be found.")
    return found


find_type = volume_types.find_type  # by id or name (intent/volume_types.py)


# -- sites -----------------------------------------------------------------------------------------


def zones(session: Session) -> list[dict[str, Any]]:
    """Cinder's availabilityZoneInfo: one zone per site."""
    return [
        {"zoneName": s.name, "zoneState": {"available": bool(s.enabled and s.health != "down")}}
        for s in session.scalars(select(Site).order_by(Site.name))
    ]
