"""List paging shared by the Cinder and Glance APIs: both take `limit`, `marker`
(the id of the last item seen) and either `sort=key1:dir,key2` or
`sort_key`/`sort_dir`, defaulting to newest first.

Lists are filtered in SQL where the filter is a column and sorted and cut here,
in Python, since sort keys may live in a resource's JSON spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request

from isthmus.errors import ApiError, BadRequest
from isthmus.store.tables import Resource

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    limit: int | None
    marker: str | None
    sort: tuple[tuple[str, str], ...]


def page_of(
    request: Request,
    keys: Sequence[str],
    default_limit: int | None = None,
    max_limit: int | None = None,
) -> Page:
    """limit / marker / sort (`k1:dir,k2`) or sort_key + sort_dir; default created_at desc."""
    params = request.query_params
    limit = default_limit
    if params.get("limit") not in (None, ""):
        raw = params["limit"]
        if not raw.isdigit():
            raise BadRequest(f"Invalid limit {raw!r}: must be a non-negative integer.")
        limit = int(raw)
    if limit is not None and max_limit is not None:
        limit = min(limit, max_limit)
    sort: list[tuple[str, str]] = []
    if params.get("sort"):
        for part in params["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            sort.append((key, direction or "desc"))
    else:
        sort_keys = params.getlist("sort_key")
        sort_dirs = params.getlist("sort_dir")
        for index, key in enumerate(sort_keys or (["created_at"] if sort_dirs else [])):
            direction = sort_dirs[min(index, len(sort_dirs) - 1)] if sort_dirs else "desc"
            sort.append((key, direction))
    for key, direction in sort:
        if key not in keys:
            raise BadRequest(f"Invalid sort key {key!r}; valid keys: {', '.join(keys)}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction {direction!r}: use asc or desc.")
    return Page(limit, params.get("marker") or None, tuple(sort or [("created_at", "desc")]))


def paginate(
    items: list[T],
    page: Page,
    value: Callable[[T, str], Any],
    ident: Callable[[T], str],
    missing_marker: Callable[[str], ApiError],
) -> tuple[list[T], bool]:
    """Sort `items` by the page's keys (then id), skip past the marker, cut at the
    limit; returns the page and whether more items follow."""
    ordered = sorted(items, key=ident)
    for key, direction in reversed(page.sort):
        ordered.sort(key=_by_key(value, key), reverse=direction == "desc")
    if page.marker:
        ids = [ident(item) for item in ordered]
        if page.marker not in ids:
            raise missing_marker(page.marker)
        ordered = ordered[ids.index(page.marker) + 1 :]
    if page.limit is None or len(ordered) <= page.limit:
        return ordered, False
    return ordered[: page.limit], True


def _by_key(value: Callable[[T, str], Any], key: str) -> Callable[[T], tuple[int, Any]]:
    return lambda item: _sortable(value(item, key))


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def by_body(pair: tuple[Resource, dict[str, Any]], key: str) -> Any:
    """Sort value of a (row, API body) pair: exact times from the row (bodies show
    whole seconds), anything else from the body."""
    row, body = pair
    if key in ("created_at", "updated_at"):
        return getattr(row, key)
    return body.get(key)


def pair_id(pair: tuple[Resource, dict[str, Any]]) -> str:
    return pair[0].id
