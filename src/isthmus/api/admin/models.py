"""Request and response bodies of the admin API (`/isthmus/v1`), as pydantic models.

They are what FastAPI publishes in `/isthmus/v1/openapi.json`, so every field says
what it means. Responses wrap their payload in a named key, OpenStack style
(`{"site": {...}}`, `{"sites": [...]}`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from isthmus.config import SITE_NAME_PATTERN
from isthmus.sites.validation import DRIVER_CONFIG, DRIVERS, REQUIRED_CONFIG

Health = Literal["up", "degraded", "down", "unknown"]

__all__ = ["SITE_NAME_PATTERN"]  # re-exported for api/admin/sites.py


# -- sites -------------------------------------------------------------------------------


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "object"}


def _config_schema(driver: str) -> dict[str, Any]:
    """The JSON schema of a `driver` site's config, from what sites/validation.py
    enforces (its keys, their types, no negative numbers, the required keys)."""
    properties: dict[str, Any] = {}
    for key, types in DRIVER_CONFIG[driver].items():
        kind = "number" if float in types else _JSON_TYPES[types[0]]
        schema: dict[str, Any] = {"type": kind}
        if kind in ("integer", "number"):
            schema["minimum"] = 0
        if kind == "object":
            schema["additionalProperties"] = {"type": "string"}
        properties[key] = schema
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [key for key in REQUIRED_CONFIG.get(driver, ())]
    if required:
        schema["required"] = required
        for key in required:
            properties[key]["minLength"] = 1
    return schema


def _site_create_schema(schema: dict[str, Any]) -> None:
    """Declare in the document what validate_site enforces (the one check, which keeps
    its own messages): the name's pattern, the drivers, and each driver's config keys.
    A site without `driver` is a `local` one."""
    schema["properties"]["name"].update(pattern=SITE_NAME_PATTERN, maxLength=63)
    schema["properties"]["driver"]["enum"] = list(DRIVERS)
    schema["oneOf"] = [
        {
            "properties": {"driver": {"const": driver}, "config": _config_schema(driver)},
            **({} if driver == "local" else {"required": ["driver", "config"]}),
        }
        for driver in DRIVERS
    ]


class SiteCreate(BaseModel):
    """A new site. It is checked at once, so it can take placements right away."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_site_create_schema)

    name: str = Field(
        description=(
            "Name of the site, which is also its availability zone: 1-63 letters, digits,"
            " '-' or '_', starting with a letter or digit."
        ),
        examples=["site-d"],
    )
    driver: str = Field(
        default="local",
        description=(
            "The kind of site; one of the drivers this Isthmus has (`local`, `openstack`)."
        ),
        examples=["local"],
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Driver configuration. For `local`: `vcpus`, `ram_mb`, `disk_gb` (capacity),"
            " `boot_seconds` (time a server spends in BUILD), `directory` (where its state"
            " lives; default `<data-dir>/sites/<name>`). For `openstack`: `cloud` (required:"
            " its name in a clouds.yaml on the Isthmus server, which holds the credentials),"
            " `clouds_yaml` (that file's path), `region_name`, `availability_zone`,"
            " `flavor_map` ({Isthmus flavor name: site flavor}), `default_image`,"
            " `settle_seconds`, `timeout`, `vcpus`/`ram_mb`/`disk_gb` (capacity where the"
            " site's limits are unlimited), `external_network` (the site's external network"
            " for router gateways and floating IPs), `admin_cloud` (a clouds.yaml entry with"
            " admin rights there, for BGPVPNs and chosen floating addresses)."
            " Secret-looking keys are shown masked."
        ),
        examples=[{"vcpus": 16, "ram_mb": 32768, "disk_gb": 500}],
    )


def _site_update_schema(schema: dict[str, Any]) -> None:
    """The handler answers 400 without `enabled` (nothing to change): declared required."""
    schema["required"] = ["enabled"]
    schema["properties"]["enabled"].pop("anyOf", None)
    schema["properties"]["enabled"].pop("default", None)
    schema["properties"]["enabled"]["type"] = "boolean"


def _site_link(path: str, method: str) -> dict[str, Any]:
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {
        "operationRef": f"#/paths/{pointer}/{method}",
        "parameters": {"name": "$response.body#/site/name"},
    }


# OpenAPI links of an added site: what a client (or a stateful fuzzer) may do next
SITE_LINKS = {
    "ShowSite": _site_link("/isthmus/v1/sites/{name}", "get"),
    "UpdateSite": _site_link("/isthmus/v1/sites/{name}", "patch"),
    "TakeSiteDown": _site_link("/isthmus/v1/sites/{name}/down", "post"),
    "BringSiteUp": _site_link("/isthmus/v1/sites/{name}/up", "post"),
    "RemoveSite": _site_link("/isthmus/v1/sites/{name}", "delete"),
}


class SiteUpdate(BaseModel):
    """Fields of a site an operator may change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_site_update_schema)

    enabled: bool | None = Field(
        default=None,
        description=(
            "False: the site takes no new placements (what is there stays and is still"
            " reconciled). True: it takes placements again."
        ),
    )


class ForeignObjectView(BaseModel):
    """One object found in a site that Isthmus did not make."""

    kind: str = Field(description="network, subnet, port, security_group, server, volume, ...")
    id: str = Field(description="The site's own id for it.")
    name: str = Field(description="Its name in the site.")


class ForeignObjects(BaseModel):
    """What the last sweep found in the site that Isthmus did not make (and never
    touches). Read from the store: showing it never calls the site."""

    known: bool = Field(description="False until a sweep could list the site.")
    reason: str | None = Field(
        description="Why the figures are unknown or may be old (site down, listing failed)."
    )
    total: int | None = Field(description="How many foreign objects (None: unknown).")
    counts: dict[str, int] = Field(description="Foreign objects counted by kind.")
    items: list[ForeignObjectView] = Field(
        description="The first of them (at most 50), by kind and name."
    )
    checked_at: str | None = Field(
        default=None, description="When the site was last listed (UTC, ISO 8601)."
    )


class SiteView(BaseModel):
    """One site as Isthmus sees it: health from the last check, and what it holds."""

    name: str = Field(description="Name of the site.")
    driver: str = Field(description="The driver that talks to the site (`local`, ...).")
    availability_zone: str = Field(description="The availability zone it appears as (its name).")
    enabled: bool = Field(description="Whether new servers and volumes may be placed there.")
    health: Health = Field(
        description=(
            "From the last health check: `up`, `degraded` (reachable, not all well), `down`"
            " (unreachable; its work waits) or `unknown` (not checked yet)."
        )
    )
    last_error: str | None = Field(description="Why the last check was not `up`, if it was not.")
    last_seen: str | None = Field(description="When a check last reached the site (UTC, ISO 8601).")
    capacity: dict[str, int] = Field(
        description="What the site reported it can hold: `vcpus`, `ram_mb`, `disk_gb`."
    )
    usage: dict[str, int] = Field(
        description="What the site reported in use: `vcpus`, `ram_mb`, `disk_gb`, `servers`, ..."
    )
    allocated: dict[str, int] = Field(
        description="What placement has promised there (accepted servers not yet gone)."
    )
    data_plane: str = Field(
        description="What data plane the site runs (e.g. `control-plane only` without root/FRR)."
    )
    config: dict[str, Any] = Field(
        description="The driver configuration, with secret-looking values replaced by `***`."
    )
    bindings: dict[str, int] = Field(description="Resources realised in the site, counted by kind.")
    placed: dict[str, int] = Field(
        description="Resources placed in the site (their `site` is this one), counted by kind."
    )
    queued_work: int = Field(description="Work items waiting to be reconciled in this site.")
    work_with_errors: int = Field(description="Of those, how many failed at least once.")
    drifted: dict[str, int] = Field(
        description=(
            "Resources deleted in the site outside Isthmus (not recreated), counted by kind."
        )
    )
    foreign: ForeignObjects = Field(
        description="Objects in the site that Isthmus did not make, from the last sweep."
    )
    created_at: str | None = Field(description="When the site was added (UTC, ISO 8601).")


class SiteEnvelope(BaseModel):
    site: SiteView


class SiteList(BaseModel):
    sites: list[SiteView] = Field(description="Every site, by name.")


# -- resources ---------------------------------------------------------------------------


class BindingView(BaseModel):
    """The resource in one site."""

    site: str = Field(description="The site.")
    site_resource_id: str | None = Field(description="The site's own id for the object.")
    applied_generation: int = Field(description="The intent generation last applied there.")
    in_sync: bool = Field(description="Whether the applied generation is the current one.")
    observed_status: str = Field(description="Status the site last reported.")
    last_error: str | None = Field(description="The fault the site reported, if any.")
    updated_at: str | None = Field(description="When the binding last changed (UTC).")
    drifted_at: str | None = Field(
        default=None,
        description=(
            "When Isthmus found the object deleted in the site outside Isthmus (drift); it"
            " is not recreated unless an operator asks (POST .../recreate)."
        ),
    )


class CopyProgressView(BaseModel):
    """How far a data copy into a site (image data) is (engine/progress.py)."""

    bytes_done: int = Field(description="Bytes copied so far.")
    bytes_total: int = Field(description="Bytes to copy in all.")
    percent: int = Field(description="Whole percent done.")
    updated_at: str | None = Field(description="When this was recorded (UTC, ISO 8601).")


class WorkView(BaseModel):
    """One queued work item: reconcile one resource in one site."""

    id: int = Field(description="Work item id.")
    resource_id: str = Field(description="The resource to reconcile.")
    kind: str = Field(description="Its kind.")
    site: str = Field(description="The site to reconcile it in.")
    site_health: str = Field(
        description="That site's health (`down` explains work that does not move)."
    )
    attempts: int = Field(description="Failed attempts since the last new request.")
    requests: int = Field(description="How many times it was requested since it was queued.")
    ready_in_seconds: float = Field(
        description="Seconds until it may run again (0: ready now; it waits for backoff)."
    )
    leased_by: str | None = Field(description="The worker holding it now, if any.")
    last_error: str | None = Field(description="Why the last attempt did not finish it.")
    age_seconds: float = Field(description="Seconds since it was first queued.")
    queued_at: str | None = Field(description="When it was first queued (UTC, ISO 8601).")
    progress: CopyProgressView | None = Field(
        default=None, description="The data copy (image) it is making in its site, if any."
    )


class ResourceView(BaseModel):
    """A resource's intent row, as stored."""

    id: str
    kind: str = Field(description="server, network, subnet, port, volume, image, ...")
    project_id: str | None = Field(description="Owning project (None for public/global).")
    name: str
    status: str = Field(description="The status the OpenStack API shows.")
    site: str | None = Field(description="The site a single-site resource is placed in.")
    parent_id: str | None = Field(description="Network of a subnet/port, volume of a snapshot.")
    device_id: str | None = Field(description="Server or router a port/volume is attached to.")
    generation: int = Field(description="Intent version; every change bumps it.")
    deleting: bool = Field(description="A delete was accepted; the row goes once no site has it.")
    spec: dict[str, Any] = Field(description="Kind-specific intent.")
    observed: dict[str, Any] = Field(
        description="Engine notes: a fault or the reason it is pending, and in which site."
    )
    created_at: str | None
    updated_at: str | None


class RecreateResult(BaseModel):
    """A drifted resource the engine will make again."""

    resource: ResourceView
    sites: list[str] = Field(description="The sites it will be made in again.")


class ResourceDetail(BaseModel):
    """Everything Isthmus knows about one resource: why it is (not) where it should be."""

    resource: ResourceView
    bindings: list[BindingView] = Field(description="The sites it exists in.")
    work: list[WorkView] = Field(description="Work queued for it, with the last errors.")


# -- work --------------------------------------------------------------------------------


class WorkGroup(BaseModel):
    """Queued work of one kind in one site."""

    site: str
    kind: str
    site_health: str = Field(description="Health of the site.")
    queued: int = Field(description="Items queued.")
    with_errors: int = Field(description="Items whose last attempt failed.")
    leased: int = Field(description="Items a worker holds right now.")
    max_attempts: int = Field(description="Most failed attempts of any item.")
    oldest_age_seconds: float = Field(description="Age of the oldest item.")


class WorkSummary(BaseModel):
    """The engine's queue at a glance."""

    total: int = Field(description="Items queued in all sites.")
    groups: list[WorkGroup] = Field(description="Counts per site and kind.")
    oldest: WorkView | None = Field(description="The item queued longest, if any.")
    errors: list[WorkView] = Field(description="Items with a last error, most attempts first.")
    copies: list[WorkView] = Field(
        default_factory=list, description="Items copying data (images) into their site now."
    )


# -- service -----------------------------------------------------------------------------


class ServiceHealth(BaseModel):
    """Liveness of this Isthmus process (no authentication needed)."""

    status: Literal["ok"] = Field(description="`ok` when the process serves and its store answers.")
    version: str = Field(description="Isthmus version.")
    engine: bool = Field(description="Whether this process runs engine workers.")
    sites: dict[str, int] = Field(description="Number of sites per health.")


class ErrorDetail(BaseModel):
    code: int = Field(description="The HTTP status.")
    title: str = Field(description="Its name.")
    message: str = Field(description="What went wrong, for a human.")


class ErrorBody(BaseModel):
    """Body of every admin API error."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Bad input; nothing was changed."),
        (401, "No or bad X-Auth-Token."),
        (403, "The token lacks the admin role."),
        (404, "No such site or resource."),
        (409, "The current state does not allow it."),
    )
}
