"""The input boundary: the one place where request text is checked before any
handler runs, for every API (installed by api/app.py as a plain ASGI middleware).

What is refused, with 400 in the service's error shape (api/errors.error_body) and
the field named ("Invalid input for field/attribute network.name: ..."), before
anything is read from or written to the store:

- a JSON body of a POST, PUT, PATCH or DELETE (any content type containing "json",
  e.g. Glance's application/openstack-images-v2.1-json-patch, or none at all except
  on DELETE, as FastAPI then parses JSON too) that is not UTF-8 JSON, nests deeper
  than MAX_DEPTH, holds NaN/Infinity (also as 1e400) or an integer outside 64 bits
  (no column can hold them);
- anywhere in such a body (keys and values): a lone UTF-16 surrogate (JSON
  "\\ud800": no response or database can encode it) and NUL (PostgreSQL text
  cannot hold it);
- in names (`name`, `display_name`, Glance's `/name` patch): control characters,
  Unicode category Cc (C0 with tab and newline, DEL, C1), which Nova and Cinder
  refuse in names (their `_is_printable`); Isthmus refuses them in every service's
  names, one rule (descriptions and other text may hold tabs and newlines);
- lengths OpenStack enforces (LENGTH_LIMITS): names 255 (Keystone project and
  domain names 64), descriptions 255 (Nova, Neutron, Cinder), Nova/Cinder metadata
  keys and values 255, Neutron and Glance tags 255, Keystone ids in a body 64;
- a body longer than MAX_BODY_BYTES (413, oslo.middleware's sizelimit, which Nova,
  Neutron, Cinder and Keystone run);
- NUL or invalid UTF-8 in the (percent-decoded) path or query string.

Image data (`PUT /image/v2/images/{id}/file` and `/stage`) is never buffered. A body
that passes is replayed to the application byte for byte; handlers still make the
checks that need their own context (types, ranges, references).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from isthmus.api.compute.common import (
    LEGACY_VERSION_HEADER,
    MIN_VERSION,
    VERSION_HEADER,
    negotiate_version,
    version_string,
)
from isthmus.api.errors import error_body
from isthmus.errors import ApiError

MAX_BODY_BYTES = 114688  # oslo.middleware [oslo_middleware] max_request_body_size
MAX_DEPTH = 32  # an OpenStack body nests at most ~6 levels
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

_FORBIDDEN_ANYWHERE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
NAME_FIELDS = frozenset({"name", "display_name"})
METADATA_FIELDS = frozenset({"metadata"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # a GET body is never read

# service path prefix -> field -> longest value OpenStack accepts
LENGTH_LIMITS: dict[str, dict[str, int]] = {
    "/compute": {"name": 255, "description": 255},
    "/network": {"name": 255, "description": 255, "tags": 255},
    "/volume": {"name": 255, "description": 255, "display_name": 255},
    "/image": {"name": 255, "tags": 255},
    # Keystone's id_string (64) for the ids a body names; email: the column's 255
    "/identity": {"name": 255, "domain_id": 64, "default_project_id": 64, "email": 255},
}
# Keystone's project and domain names are shorter (keystone/resource/schema.py)
_KEYSTONE_SHORT_NAMES = ("/identity/v3/projects", "/identity/v3/domains")
METADATA_LIMIT = 255  # Nova and Cinder: metadata keys and values
_METADATA_SERVICES = ("/compute", "/volume")


class InvalidInput(Exception):
    """A request the boundary refuses: HTTP status and the message to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- the middleware ----------------------------------------------------------------------------


class InputBoundaryMiddleware:
    """Checks path, query string and JSON body of every HTTP request (see the module
    docstring); answers 400/413 itself or passes the request on unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        try:
            check_url(scope.get("raw_path") or path.encode("utf-8", "surrogatepass"), "path")
            check_url(scope.get("query_string", b""), "query string")
            if not _carries_json(scope):
                await self.app(scope, receive, send)
                return
            body = await _read_body(scope, receive)
            if body.strip():
                check_body(path, parse_json(body))
        except InvalidInput as exc:
            await _answer(send, scope, exc.status, exc.message)
            return
        except _Disconnected:
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _Disconnected(Exception):
    """The client went away while its body was being read."""


def _header(scope: Any, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def _is_image_data(path: str) -> bool:
    return path.startswith("/image/") and path.rstrip("/").endswith(("/file", "/stage"))


def _carries_json(scope: Any) -> bool:
    """Whether the request's body is JSON the application will parse."""
    method = str(scope.get("method", "")).upper()
    if method not in _BODY_METHODS or _is_image_data(scope.get("path", "")):
        return False
    content_type = _header(scope, b"content-type").lower()
    return "json" in content_type if content_type else method != "DELETE"  # FastAPI: JSON


async def _read_body(scope: Any, receive: Any) -> bytes:
    length = _header(scope, b"content-length")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise InvalidInput("Request is too large.", 413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise InvalidInput("Request is too large.", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _compute_headers(scope: Any) -> list[tuple[bytes, bytes]]:
    """The microversion headers Nova puts on every answer, errors included."""
    try:
        version = negotiate_version(Request(scope))
    except ApiError:
        version = MIN_VERSION
    number = version_string(version)
    return [
        (VERSION_HEADER.lower().encode(), f"compute {number}".encode()),
        (LEGACY_VERSION_HEADER.lower().encode(), number.encode()),
        (b"vary", f"{VERSION_HEADER}, {LEGACY_VERSION_HEADER}".encode()),
    ]


async def _answer(send: Any, scope: Any, status: int, message: str) -> None:
    path = scope.get("path", "")
    error_type = "HTTPBadRequest" if status == 400 else None
    payload = json.dumps(
        error_body(path, status, message, error_type), separators=(",", ":")
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if path.startswith("/compute"):
        headers += _compute_headers(scope)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# -- the checks (pure functions) ---------------------------------------------------------------


def check_url(raw: bytes, what: str) -> None:
    """400 when the percent-decoded path or query string holds NUL or is not UTF-8."""
    if not raw:
        return
    decoded = unquote_to_bytes(raw.replace(b"+", b" ") if what == "query string" else raw)
    if b"\x00" in decoded:
        raise InvalidInput(f"Invalid input in the {what}: it contains a NUL character.")
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"Invalid input in the {what}: it is not valid UTF-8.") from exc


def _no_constants(value: str) -> Any:
    raise ValueError(f"{value} is not a number JSON allows")


def parse_json(body: bytes) -> Any:
    """The parsed body; 400 for anything that is not plain UTF-8 JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("Malformed request body: it is not valid UTF-8.") from exc
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError as exc:
        raise InvalidInput(f"Malformed request body: nested deeper than {MAX_DEPTH}.") from exc
    except ValueError as exc:  # JSONDecodeError, NaN, an integer with too many digits
        raise InvalidInput(f"Malformed request body: {exc}.") from exc


def _limits(path: str) -> dict[str, int]:
    for prefix, limits in LENGTH_LIMITS.items():
        if path.startswith(prefix):
            if path.startswith(_KEYSTONE_SHORT_NAMES):
                return {**limits, "name": 64}
            return limits
    return {}


def check_body(path: str, body: Any) -> None:
    """400 naming the first field of `body` the boundary refuses (module docstring)."""
    rules = _Rules(_limits(path), METADATA_LIMIT if path.startswith(_METADATA_SERVICES) else None)
    parts: list[tuple[tuple[str, ...], Any]] = [((), body)]
    if path.startswith("/image/") and isinstance(body, list):
        parts = _patch_targets(body)
    for where, value in parts:
        _check(value, where, len(where), rules)


class _Rules(NamedTuple):
    limits: dict[str, int]  # field -> longest value (LENGTH_LIMITS of the service)
    metadata_limit: int | None  # keys and values of a `metadata` map


def _patch_targets(operations: list[Any]) -> list[tuple[tuple[str, ...], Any]]:
    """Glance's JSON patch as (field, value) parts, so that the value of
    `{"op": "replace", "path": "/name", "value": ...}` is checked as `name` (and a
    value added at `/tags/-` as a tag); the operations themselves are walked too."""
    parts: list[tuple[tuple[str, ...], Any]] = []
    rest: list[Any] = []
    for operation in operations:
        target = operation.get("path") if isinstance(operation, dict) else None
        if not isinstance(target, str) or "value" not in operation:
            rest.append(operation)
            continue
        rest.append({k: v for k, v in operation.items() if k != "value"})
        keys = tuple(key for key in target.split("/") if key) or ("value",)
        value = operation["value"]
        if keys[0] == "tags" and len(keys) > 1:
            keys, value = ("tags",), [value]
        parts.append((keys[:1], value))
    return [((), rest), *parts]


def _check(value: Any, where: tuple[str, ...], depth: int, rules: _Rules) -> None:
    """Check every key and scalar under `value` (at field path `where`): a key, an
    entry of a metadata map or a tag has its own role and limit."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"Malformed request body: nested deeper than {MAX_DEPTH}.")
    if isinstance(value, dict):
        in_metadata = bool(where) and where[-1] in METADATA_FIELDS
        for key, item in value.items():
            inner = (*where, key)
            _check_text(inner, key, "metadata-key" if in_metadata else "key", rules)
            if in_metadata and not isinstance(item, dict | list):
                _check_text(inner, item, "metadata", rules)
            else:
                _check(item, inner, depth + 1, rules)
    elif isinstance(value, list):
        tags = bool(where) and where[-1] == "tags"
        for index, item in enumerate(value):
            inner = (*where, str(index))
            if tags and isinstance(item, str):
                _check_text(inner, item, "tag", rules)
            else:
                _check(item, inner, depth + 1, rules)
    else:
        _check_text(where, value, "value", rules)


def _dotted(where: tuple[str, ...]) -> str:
    """The field's path as the message names it; a bad key is shown escaped, never
    echoed (`metadata.\\ud800`), and a huge one cut."""
    return ".".join(_printable(part) for part in where)


def _printable(part: str) -> str:
    if _CONTROL.search(part) or _FORBIDDEN_ANYWHERE.search(part):
        part = ascii(part)[1:-1]
    return part if len(part) <= 64 else f"{part[:61]}..."


def _invalid(where: tuple[str, ...], reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid input for field/attribute {_dotted(where) or 'body'}: {reason}")


def _check_text(where: tuple[str, ...], value: Any, role: str, rules: _Rules) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _invalid(where, f"{value} is out of range.")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(where, f"{value} is out of range.")
        return
    if not isinstance(value, str):
        return
    what = "a key" if role.endswith("key") else "the value"
    found = _FORBIDDEN_ANYWHERE.search(value)
    if found:
        if found.group() == "\x00":
            raise _invalid(where, f"{what} contains a NUL character.")
        raise _invalid(where, f"{what} is not valid Unicode (a lone UTF-16 surrogate).")
    if role == "tag":
        limit = rules.limits.get("tags")
    elif role.startswith("metadata"):
        limit = rules.metadata_limit
    elif role == "value" and where:
        limit = rules.limits.get(where[-1])
        if where[-1] in NAME_FIELDS:
            _check_name(where, value)
    else:
        limit = None
    if limit is not None and len(value) > limit:
        raise _invalid(where, f"{what} is longer than {limit} characters.")


def _check_name(where: tuple[str, ...], value: str) -> None:
    control = _CONTROL.search(value)
    if control:
        raise _invalid(
            where, f"a name may not contain control characters (U+{ord(control.group()):04X})."
        )
