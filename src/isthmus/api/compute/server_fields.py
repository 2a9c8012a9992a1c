"""The server request fields that depend on the microversion (server create and
update), checked as Nova's schemas check them; the response side is views.py.

- 2.19: `description` on create and update (null or up to 255 printable
  characters).
- 2.37: `networks` is required on create; besides a list it may be "auto" (the
  project's default network) or "none" (no NIC). Isthmus takes those two strings
  below 2.37 as well (as it always has; Nova would refuse them there).
- 2.52: `tags` on create (at most 50, each 1 to 60 characters without ',' or '/').
- 2.57: `personality` is no longer accepted on create.
- 2.74: `host` and `hypervisor_hostname` on create (admins): a site, where the
  server is then placed (as its zone, while `pinned_availability_zone` stays what
  the request asked for); an unknown one is 400, another zone than the host's 400.
- 2.90: `hostname` on create and update (2.94: a fully qualified name); not with
  a multiple create.
- 2.96: the zone asked for at create is kept as `pinned_availability_zone`.

A field sent below the microversion that brings it is Nova's 400 "Additional
properties are not allowed".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from isthmus.api.compute.validation import invalid_field, validate_hostname
from isthmus.api.context import RequestContext
from isthmus.errors import BadRequest, Forbidden
from isthmus.store.tables import Site

MAX_TAGS = 50
MAX_TAG_LENGTH = 60
UPDATE_FIELDS = frozenset({"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"})


def not_allowed(where: str, keys: list[str]) -> BadRequest:
    """Nova's 400 for a body key the schema of this microversion does not have."""
    listed = ", ".join(repr(k) for k in sorted(keys))
    verb = "was" if len(keys) == 1 else "were"
    return BadRequest(
        f"Invalid input for field/attribute {where}. Value: {{...}}. Additional properties"
        f" are not allowed ({listed} {verb} unexpected)"
    )


def description(value: Any) -> str | None:
    """A server's description (2.19): null or up to 255 printable characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 255 or not value.isprintable():
        raise invalid_field(
            "description",
            value,
            "The description must be null or at most 255 printable characters.",
        )
    return value


def tags(value: Any) -> list[str]:
    """Server tags given at create (2.52), as Nova's tag schema wants them."""
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise invalid_field("tags", value, f"tags must be a list of at most {MAX_TAGS} tags.")
    out: list[str] = []
    for tag in value:
        if (
            not isinstance(tag, str)
            or not 1 <= len(tag) <= MAX_TAG_LENGTH
            or "," in tag
            or "/" in tag
        ):
            raise invalid_field(
                "tags", value, f"A tag is 1 to {MAX_TAG_LENGTH} characters without ',' or '/'."
            )
        if tag not in out:
            out.append(tag)
    return out


def check_create(server: dict[str, Any], version: tuple[int, int]) -> None:
    """What a create body may and must hold at `version` (before anything else)."""
    unexpected = [
        key
        for key, since in (
            ("description", (2, 19)),
            ("tags", (2, 52)),
            ("host", (2, 74)),
            ("hypervisor_hostname", (2, 74)),
            ("hostname", (2, 90)),
        )
        if key in server and version < since
    ]
    if version >= (2, 57) and "personality" in server:
        unexpected.append("personality")
    if unexpected:
        raise not_allowed("server", unexpected)
    networks = server.get("networks")
    if version >= (2, 37):
        if "networks" not in server:
            raise invalid_field("server", "{...}", "'networks' is a required property.")
        if not isinstance(networks, list) and networks not in ("auto", "none"):
            raise invalid_field(
                "networks", networks, "networks must be 'auto', 'none' or a list of networks."
            )
    if "hostname" in server:
        validate_hostname(server["hostname"], fqdn=version >= (2, 94))
        count = server.get("max_count", server.get("min_count", 1))
        if str(count) not in ("1", "None"):
            raise BadRequest("Unable to set a hostname when creating more than one server.")


def with_requested_host(
    session: Session, ctx: RequestContext, body: dict[str, Any]
) -> dict[str, Any]:
    """The create body with the site a 2.74 `host` / `hypervisor_hostname` names
    as its availability zone (a site is both); `body` itself when it names none.
    403 for a non-admin; 400 for no such site, two different ones, or a zone
    that is not the host's."""
    server = body.get("server")
    if not isinstance(server, dict):
        return body  # parse_boot_request says what is wrong
    named = [server[key] for key in ("host", "hypervisor_hostname") if server.get(key) is not None]
    if not named:
        return body
    if not ctx.is_admin:
        raise Forbidden(
            "Policy doesn't allow compute:servers:create:requested_destination to be performed."
        )
    for name in named:
        if not isinstance(name, str) or session.get(Site, name) is None:
            raise BadRequest(f"Compute host {name} could not be found.")
    if len(set(named)) > 1:
        raise BadRequest(f"Compute host {named[0]} has no node {named[1]}.")
    zone = server.get("availability_zone")
    if zone not in (None, "", named[0]):
        raise BadRequest(
            f"Host {named[0]} is not in the requested availability zone {zone}: no valid host."
        )
    return {**body, "server": {**server, "availability_zone": named[0]}}


def create_spec(server: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """The server spec keys a create at `version` adds (checked by check_create and
    parse_boot_request); the zone it pins is the one it asked for (not a host's)."""
    spec: dict[str, Any] = {"pinned_availability_zone": server.get("availability_zone") or None}
    if version >= (2, 19):
        spec["description"] = description(server.get("description"))
    if version >= (2, 52) and "tags" in server:
        spec["tags"] = tags(server["tags"])
    if version >= (2, 90) and server.get("hostname"):
        spec["hostname"] = server["hostname"]
    return spec


def update_fields(version: tuple[int, int]) -> frozenset[str]:
    """The keys a server update body may have at `version`."""
    allowed = set(UPDATE_FIELDS)
    if version >= (2, 19):
        allowed.add("description")
    if version >= (2, 90):
        allowed.add("hostname")
    return frozenset(allowed)


def update_spec(update: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """The spec changes of the versioned keys of a server update (checked)."""
    spec: dict[str, Any] = {}
    if "description" in update:
        spec["description"] = description(update["description"])
    if "hostname" in update:
        spec["hostname"] = validate_hostname(update["hostname"], fqdn=version >= (2, 94))
    return spec
