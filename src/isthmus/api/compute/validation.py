"""Compute request fields checked the way Nova checks them, shared by server create
(compute_create) and the server update and metadata endpoints (compute): the 400
naming a field, server metadata (keys and values up to 255 characters, at most
128 items, 413 beyond), access IPs and positive counts."""

from __future__ import annotations

import re
from typing import Any

from isthmus.errors import BadRequest, OverQuota
from isthmus.model import ipam

MAX_METADATA_ITEMS = 128  # Nova's metadata_items quota


def invalid_field(field_name: str, value: Any, reason: str) -> BadRequest:
    """Nova's 400 for one field: what it is, its value and why it is refused."""
    return BadRequest(f"Invalid input for field/attribute {field_name}. Value: {value}. {reason}")


def validate_metadata(metadata: Any, field_name: str = "metadata") -> dict[str, str]:
    """Nova's server metadata rules: string keys of 1-255 and values up to 255
    characters, at most 128 items (413 beyond)."""
    if not isinstance(metadata, dict):
        raise invalid_field(field_name, metadata, f"{metadata!r} is not of type 'object'")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise invalid_field(field_name, metadata, f"Key {key!r} must be 1 to 255 characters.")
        if not isinstance(value, str) or len(value) > 255:
            raise invalid_field(
                field_name,
                metadata,
                f"Value of {key!r} must be a string of at most 255 characters.",
            )
    if len(metadata) > MAX_METADATA_ITEMS:
        raise OverQuota(
            f"Quota exceeded for metadata_items: Requested {len(metadata)}, but the limit"
            f" is {MAX_METADATA_ITEMS}."
        )
    return dict(metadata)


def validate_access_ip(field_name: str, value: Any, version: int) -> str:
    if value in (None, ""):
        return ""
    try:
        address = ipam.parse_address(str(value))
    except BadRequest:
        raise invalid_field(
            field_name, value, f"{value!r} is not a valid IPv{version} address."
        ) from None
    if address.version != version:
        raise invalid_field(field_name, value, f"{value!r} is not a valid IPv{version} address.")
    return str(address)


def positive_count(body: dict[str, Any], key: str, default: int) -> int:
    """`body[key]` (default `default`) as Nova's positive_integer, else 400."""
    value = body.get(key, default)
    # Nova's positive_integer: an integer, or a string of digits; 2.5 or "2.5" is 400
    if isinstance(value, float) or (isinstance(value, str) and not value.strip().isdigit()):
        raise invalid_field(key, value, f"{value!r} is not an integer.")
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise invalid_field(key, value, f"{value!r} is not an integer.") from None
    if isinstance(value, bool) or count < 1:
        raise invalid_field(key, value, f"{key} must be an integer of at least 1.")
    return count


def hostname_from_name(name: str, server_id: str) -> str:
    """The hostname Nova makes of a server's name: Latin-1 only, spaces,
    underscores and dots to dashes, other non-word characters dropped, lower
    case, at most 63 characters, no leading or trailing dot or dash;
    `Server-<id>` when nothing is left."""
    text = name.encode("latin-1", "ignore").decode("latin-1")
    text = re.sub(r"[ _.]", "-", text)
    text = re.sub(r"[^\w.-]+", "", text, flags=re.ASCII).lower()
    text = text[:63].strip(".-")
    return text or f"Server-{server_id}"


_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")
_FQDN = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$")


def validate_hostname(value: Any, fqdn: bool) -> str:
    """A `hostname` set at create, update or rebuild (2.90): a name of 2 to 63
    letters, digits and dashes; from 2.94 a fully qualified name of up to 255."""
    longest = 255 if fqdn else 63
    pattern = _FQDN if fqdn else _HOSTNAME
    if not isinstance(value, str) or not 2 <= len(value) <= longest or not pattern.match(value):
        raise invalid_field(
            "hostname",
            value,
            f"The hostname must be 2 to {longest} letters, digits and dashes"
            + (" (dots between labels)" if fqdn else "")
            + ", starting and ending with a letter or digit.",
        )
    return value
