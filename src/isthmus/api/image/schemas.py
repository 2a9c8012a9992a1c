"""Glance v2 image attributes: validation of the writable ones, the JSON-patch
updates of PATCH /v2/images/{id}, and the JSON schemas served under /v2/schemas.

An image's attributes are the base ones below plus free-form "extra properties"
(string values) that Glance shows as top-level keys; Isthmus keeps those in
`spec["properties"]`. Names in Glance's reserved `os_glance` namespace are refused
(403), as Glance does. Also the member schemas (/v2/schemas/member(s)).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from isthmus.errors import BadRequest, Conflict, Forbidden

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
STATUSES = ("queued", "saving", "active", "killed", "deleted", "deactivated", "pending_delete")
# set by Isthmus only
READ_ONLY = (
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "stores",
)
# writable base attributes (create and PATCH); "id" and "owner" only at create
BASE = (
    "name",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "protected",
    "tags",
    "visibility",
    "os_hidden",
)
MAX_TAGS = 128
RESERVED_NAMESPACE = "os_glance"
PATCH_CONTENT_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)


def check_base(key: str, value: Any, is_admin: bool) -> Any:
    """A valid value for base attribute `key`, or 400/403."""
    if key == "name":
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise BadRequest("Invalid value for name: a string of at most 255 characters.")
        return value
    if key in ("disk_format", "container_format"):
        allowed = DISK_FORMATS if key == "disk_format" else CONTAINER_FORMATS
        if value is not None and value not in allowed:
            raise BadRequest(
                f"Invalid value {value!r} for {key}: must be one of {', '.join(allowed)}."
            )
        return value
    if key in ("min_disk", "min_ram"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"Invalid value for {key}: must be an integer >= 0.")
        return value
    if key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise BadRequest(f"Invalid value for {key}: must be a boolean.")
        return value
    if key == "tags":
        if not isinstance(value, list) or not all(
            isinstance(t, str) and 0 < len(t) <= 255 for t in value
        ):
            raise BadRequest("Invalid value for tags: a list of strings of 1 to 255 characters.")
        tags = list(dict.fromkeys(value))
        if len(tags) > MAX_TAGS:
            raise BadRequest(f"Maximum number of tags exceeded: {len(tags)} > {MAX_TAGS}.")
        return tags
    if key == "visibility":
        if value not in VISIBILITIES:
            raise BadRequest(f"Invalid visibility {value!r}: one of {', '.join(VISIBILITIES)}.")
        if value == "public" and not is_admin:
            raise Forbidden("You are not authorized to complete publicize_image action.")
        return value
    raise BadRequest(f"Unknown attribute {key!r}.")


def check_reserved(key: str) -> None:
    """Glance reserves the `os_glance` namespace for its own properties (403)."""
    if key.startswith(RESERVED_NAMESPACE):
        raise Forbidden(f"Attribute '{key}' is reserved.")


def check_property(key: str, value: Any) -> str:
    """A valid extra property (string key and value)."""
    check_reserved(key)
    if not key or len(key) > 255:
        raise BadRequest("Invalid property name: 1 to 255 characters.")
    if not isinstance(value, str):
        raise BadRequest(f"Invalid value for property {key}: must be a string.")
    if len(value) > 65535:
        raise BadRequest(f"Invalid value for property {key}: too long.")
    return value


def new_image(ref: dict[str, Any], is_admin: bool, project_id: str) -> dict[str, Any]:
    """Validated attributes of a new image: base ones, `id`, `owner`, `properties`."""
    values: dict[str, Any] = {
        "name": None,
        "disk_format": None,
        "container_format": None,
        "min_disk": 0,
        "min_ram": 0,
        "protected": False,
        "tags": [],
        "visibility": "shared",
        "os_hidden": False,
        "id": None,
        "owner": project_id,
        "properties": {},
    }
    for key, value in ref.items():
        if key in READ_ONLY:
            raise Forbidden(f"Attribute '{key}' is read-only.")
        if key == "id":
            try:
                values["id"] = str(uuid.UUID(str(value)))
            except ValueError as exc:
                raise BadRequest(f"Invalid image id {value!r}: must be a UUID.") from exc
        elif key == "owner":
            if value != project_id and not is_admin:
                raise Forbidden("You are not permitted to create images owned by another project.")
            values["owner"] = value
        elif key in BASE:
            values[key] = check_base(key, value, is_admin)
        else:
            values["properties"][key] = check_property(key, value)
    return values


def _attribute(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
        raise BadRequest(f"Invalid JSON pointer for this resource: {path!r}.")
    return path[1:].replace("~1", "/").replace("~0", "~")


def apply_patch(current: dict[str, Any], ops: Any, is_admin: bool, status: str) -> dict[str, Any]:
    """`current` (base attributes and `properties`) after the JSON-patch `ops`;
    `current` itself is left alone, so a failing op changes nothing."""
    if not isinstance(ops, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    doc = copy.deepcopy(current)
    properties: dict[str, str] = doc["properties"]
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise BadRequest("Operations must be JSON objects with op add, replace or remove.")
        kind = op["op"]
        key = _attribute(op.get("path"))
        if kind != "remove" and "value" not in op:
            raise BadRequest(f"Operation {kind} on {key} needs a value.")
        if key in READ_ONLY or key in ("id", "owner"):
            raise Forbidden(f"Attribute '{key}' is read-only.")
        check_reserved(key)
        if key in BASE:
            if kind == "remove":
                raise Forbidden(f"Attribute '{key}' is reserved and cannot be removed.")
            if key in ("disk_format", "container_format") and status != "queued":
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
            doc[key] = check_base(key, op["value"], is_admin)
        elif kind == "add":
            if key in properties:
                raise Conflict(f"Property {key} already present.")
            properties[key] = check_property(key, op["value"])
        elif key not in properties:
            raise Conflict(f"Property {key} does not exist.")
        elif kind == "replace":
            properties[key] = check_property(key, op["value"])
        else:
            del properties[key]
    return doc


def image_schema() -> dict[str, Any]:
    """The JSON schema of one image, as Glance serves it at /v2/schemas/image."""
    string_or_null = {"type": ["null", "string"]}
    properties: dict[str, Any] = {
        "id": {
            "type": "string",
            "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-"
            "([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
        },
        "name": {**string_or_null, "maxLength": 255},
        "status": {"type": "string", "readOnly": True, "enum": list(STATUSES)},
        "visibility": {"type": "string", "enum": list(VISIBILITIES)},
        "protected": {"type": "boolean"},
        "os_hidden": {"type": "boolean"},
        "checksum": {**string_or_null, "readOnly": True, "maxLength": 32},
        "os_hash_algo": {**string_or_null, "readOnly": True, "maxLength": 64},
        "os_hash_value": {**string_or_null, "readOnly": True, "maxLength": 128},
        "owner": {**string_or_null, "maxLength": 255},
        "size": {"type": ["null", "integer"], "readOnly": True},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True},
        "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS]},
        "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS]},
        "created_at": {"type": "string", "readOnly": True},
        "updated_at": {"type": "string", "readOnly": True},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        "min_ram": {"type": "integer"},
        "min_disk": {"type": "integer"},
        "self": {"type": "string", "readOnly": True},
        "file": {"type": "string", "readOnly": True},
        "schema": {"type": "string", "readOnly": True},
    }
    return {
        "name": "image",
        "properties": properties,
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def images_schema() -> dict[str, Any]:
    """The JSON schema of an image list (/v2/schemas/images)."""
    return {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def member_schema() -> dict[str, Any]:
    """The JSON schema of one image member (/v2/schemas/member)."""
    return {
        "name": "member",
        "properties": {
            "created_at": {"type": "string"},
            "image_id": {"type": "string"},
            "member_id": {"type": "string"},
            "schema": {"type": "string", "readOnly": True},
            "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
            "updated_at": {"type": "string"},
        },
    }


def members_schema() -> dict[str, Any]:
    """The JSON schema of an image's member list (/v2/schemas/members)."""
    return {
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }
