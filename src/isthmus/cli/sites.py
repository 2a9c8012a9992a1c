"""`isthmus site ...`, `isthmus resource show|recreate` and `isthmus work`: clients
of the admin REST API (cli/client.py) that print rich tables, or JSON with `--json`.
`site show` also lists what drifted in the site and the foreign objects its last
sweep found there (engine/drift.py), from the store: it works while the site is down.

Connection options (`--os-cloud`, `--url`, ...) are global: give them before the
command (`isthmus --os-cloud other site list`); the OS_* variables work too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from isthmus.cli.client import AdminClient, ClientError, ConnectOptions

site_app = typer.Typer(help="Manage sites (each one availability zone).", no_args_is_help=True)
resource_app = typer.Typer(help="Look into resources.", no_args_is_help=True)

HEALTH_STYLE = {"up": "green", "degraded": "yellow", "down": "red", "unknown": "dim"}

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
NameArg = Annotated[str, typer.Argument(help="Site name (= its availability zone).")]


def console() -> Console:
    """stdout; wide when it is not a terminal, so tables are not squeezed in pipes."""
    out = Console(soft_wrap=False, highlight=False)
    if not out.is_terminal:
        out = Console(width=200, soft_wrap=False, highlight=False)
    return out


@contextmanager
def admin_client(ctx: typer.Context) -> Iterator[AdminClient]:
    options: ConnectOptions = ctx.obj if isinstance(ctx.obj, ConnectOptions) else ConnectOptions()
    client = AdminClient(options)
    try:
        yield client
    finally:
        client.close()


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


# -- formatting -------------------------------------------------------------------------------


def ago(stamp: str | None) -> str:
    """'12s ago' for an ISO 8601 UTC time, '-' for none."""
    if not stamp:
        return "-"
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return stamp
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def used_of(site: dict[str, Any], key: str, scale: int = 1, unit: str = "") -> str:
    total = site.get("capacity", {}).get(key)
    used = site.get("usage", {}).get(key, site.get("allocated", {}).get(key, 0))
    if total is None:
        return "-"
    return f"{_scaled(used, scale)}/{_scaled(total, scale)}{unit}"


def _scaled(value: int, scale: int) -> str:
    if scale == 1:
        return str(value)
    return f"{value / scale:.1f}".removesuffix(".0")


def health_text(health: str) -> str:
    return f"[{HEALTH_STYLE.get(health, 'white')}]{health}[/]"


def site_table(sites: list[dict[str, Any]]) -> Table:
    table = Table(title=None, show_lines=False)
    for header in (
        "Name",
        "Driver",
        "Zone",
        "Health",
        "Enabled",
        "Last error",
        "Last seen",
        "vCPU",
        "RAM GiB",
        "Disk GiB",
        "Queued work",
        "Data plane",
    ):
        table.add_column(header, no_wrap=header != "Last error", overflow="fold")
    for site in sites:
        queued = str(site.get("queued_work", 0))
        if site.get("work_with_errors"):
            queued += f" ({site['work_with_errors']} failing)"
        table.add_row(
            site["name"],
            site["driver"],
            site["availability_zone"],
            health_text(site["health"]),
            "yes" if site["enabled"] else "[yellow]no[/]",
            site.get("last_error") or "",
            ago(site.get("last_seen")),
            used_of(site, "vcpus"),
            used_of(site, "ram_mb", 1024),
            used_of(site, "disk_gb"),
            queued,
            site.get("data_plane") or "",
        )
    return table


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in counts.items()) or "none"


def site_detail(site: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("name", site["name"]),
        ("driver", site["driver"]),
        ("availability zone", site["availability_zone"]),
        ("enabled", "yes" if site["enabled"] else "no"),
        ("health", health_text(site["health"])),
        ("last error", site.get("last_error") or "-"),
        ("last seen", f"{site.get('last_seen') or '-'} ({ago(site.get('last_seen'))})"),
        ("vCPU used/total", used_of(site, "vcpus")),
        ("RAM used/total", used_of(site, "ram_mb", 1024, " GiB")),
        ("disk used/total", used_of(site, "disk_gb", 1, " GiB")),
        ("allocated", _counts(site.get("allocated", {}))),
        ("bindings", _counts(site.get("bindings", {}))),
        ("placed", _counts(site.get("placed", {}))),
        ("queued work", f"{site['queued_work']} ({site['work_with_errors']} failing)"),
        ("drifted", _counts(site.get("drifted", {}))),
        ("foreign objects", foreign_text(site.get("foreign") or {})),
        ("data plane", site.get("data_plane") or "-"),
        ("config", json.dumps(site.get("config", {}), sort_keys=True)),
        ("created", site.get("created_at") or "-"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def foreign_text(foreign: dict[str, Any]) -> str:
    """'3 (network 2, server 1)', or 'unknown (why)'."""
    if not foreign.get("known"):
        return f"unknown ({foreign.get('reason') or 'not listed yet'})"
    text = f"{foreign['total']}"
    if foreign.get("counts"):
        text += f" ({_counts(foreign['counts'])})"
    if foreign.get("checked_at"):
        text += f", listed {ago(foreign['checked_at'])}"
    if foreign.get("reason"):
        text += f"; {foreign['reason']}"
    return text


def foreign_table(foreign: dict[str, Any]) -> Table | None:
    items = foreign.get("items") or []
    if not items:
        return None
    shown = f"first {len(items)} of {foreign['total']}" if foreign["total"] > len(items) else ""
    table = Table(title=f"Foreign objects (Isthmus never touches them) {shown}".strip())
    for header in ("Kind", "Site id", "Name"):
        table.add_column(header, no_wrap=True)
    for item in items:
        table.add_row(item["kind"], item["id"], item.get("name") or "")
    return table


def _waiting_reason(item: dict[str, Any]) -> str:
    if item["site_health"] == "down":
        return "[dim](waits for the site to come back)[/]"
    if item["site_health"] == "removed":
        return "[dim](the site was removed)[/]"
    return ""


def work_table(items: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title)
    for header in ("Resource", "Kind", "Site", "Site health", "Attempts", "Ready in", "Age"):
        table.add_column(header, no_wrap=True)
    table.add_column("Progress / last error", overflow="fold")
    for item in items:
        table.add_row(
            item["resource_id"],
            item["kind"],
            item["site"],
            health_text(item["site_health"]),
            str(item["attempts"]),
            f"{item['ready_in_seconds']:.1f}s",
            f"{item['age_seconds']:.0f}s",
            _copy_text(item) or item.get("last_error") or _waiting_reason(item),
        )
    return table


def _copy_text(item: dict[str, Any]) -> str:
    """'copying: 45% (120.0 of 266.7 MiB)' while the item copies data into its site."""
    copy = item.get("progress")
    if not copy:
        return ""
    mib = 1024 * 1024
    return (
        f"[cyan]copying: {copy['percent']}% ({copy['bytes_done'] / mib:.1f} of"
        f" {copy['bytes_total'] / mib:.1f} MiB)[/]"
    )


# -- site commands ------------------------------------------------------------------------------


@site_app.command("list")
def site_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every site: health, capacity in use, queued work."""
    with admin_client(ctx) as client:
        sites = client.get("/sites")["sites"]
    if as_json:
        print_json(sites)
        return
    console().print(site_table(sites))


@site_app.command("show")
def site_show(ctx: typer.Context, name: NameArg, as_json: JsonOption = False) -> None:
    """One site in detail."""
    with admin_client(ctx) as client:
        site = client.get(f"/sites/{name}")["site"]
    if as_json:
        print_json(site)
        return
    out = console()
    out.print(site_detail(site))
    table = foreign_table(site.get("foreign") or {})
    if table is not None:
        out.print(table)


def parse_config(config_json: str | None, settings: list[str]) -> dict[str, Any]:
    """`--config-json` as an object, then each `--set key=value` (value read as YAML)."""
    config: dict[str, Any] = {}
    if config_json:
        try:
            loaded = json.loads(config_json)
        except json.JSONDecodeError as exc:
            raise ClientError(f"--config-json is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ClientError("--config-json must be a JSON object.")
        config.update(loaded)
    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or not key.strip():
            raise ClientError(f"--set takes key=value, not {setting!r}.")
        try:
            config[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            config[key.strip()] = raw
    return config


@site_app.command("add")
def site_add(
    ctx: typer.Context,
    name: NameArg,
    driver: Annotated[str, typer.Option(help="The site's driver.")] = "local",
    config_json: Annotated[
        str | None, typer.Option("--config-json", help="Driver config as a JSON object.")
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="One driver config key=value (repeatable), e.g. vcpus=16."),
    ] = None,
    cloud: Annotated[
        str | None,
        typer.Option("--cloud", help="openstack driver: the clouds.yaml entry of the site."),
    ] = None,
    clouds_yaml: Annotated[
        Path | None,
        typer.Option(
            "--clouds-yaml",
            help="openstack driver: the clouds.yaml file holding --cloud (a path the "
            "Isthmus service can read; made absolute). Default: the standard locations.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a site; it is checked at once and can take placements right away.

    An OpenStack region: `isthmus site add NAME --driver openstack --cloud CLOUD
    [--clouds-yaml FILE]`. The credentials stay in that file on the server's side;
    no answer of the API carries them.
    """
    config = parse_config(config_json, settings or [])
    if (cloud is not None or clouds_yaml is not None) and driver != "openstack":
        raise ClientError("--cloud and --clouds-yaml are for --driver openstack.")
    if cloud is not None:
        config["cloud"] = cloud
    if clouds_yaml is not None:
        config["clouds_yaml"] = str(clouds_yaml.expanduser().absolute())
    body = {"name": name, "driver": driver, "config": config}
    with admin_client(ctx) as client:
        site = client.post("/sites", json=body)["site"]
    if as_json:
        print_json(site)
        return
    out = console()
    out.print(f"Site [bold]{name}[/] added: {health_text(site['health'])}")
    out.print(site_detail(site))


@site_app.command("remove")
def site_remove(
    ctx: typer.Context,
    name: NameArg,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Remove it although it still holds resources: they are lost (their"
            " servers and volumes show ERROR); logged with your name.",
        ),
    ] = False,
) -> None:
    """Remove a site that holds nothing (refused, with the count, while resources
    are there, unless --force). An embedded site's state on disk goes with it."""
    with admin_client(ctx) as client:
        client.delete(f"/sites/{name}" + ("?force=true" if force else ""))
    console().print(f"Site [bold]{name}[/] removed{' (forced)' if force else ''}.")


def _site_action(ctx: typer.Context, name: str, path: str, body: Any, verb: str) -> None:
    with admin_client(ctx) as client:
        if body is None:
            site = client.post(f"/sites/{name}/{path}")["site"]
        else:
            site = client.patch(f"/sites/{name}", json=body)["site"]
    reason = f" ({site['last_error']})" if site.get("last_error") else ""
    enabled = "" if site["enabled"] else ", disabled"
    console().print(
        f"Site [bold]{name}[/] {verb}: health {health_text(site['health'])}{enabled}{reason}"
    )


@site_app.command("down")
def site_down(ctx: typer.Context, name: NameArg) -> None:
    """Take an embedded site down (as if its cloud were unreachable)."""
    _site_action(ctx, name, "down", None, "taken down")


@site_app.command("up")
def site_up(ctx: typer.Context, name: NameArg) -> None:
    """Bring an embedded site back up; its waiting work converges."""
    _site_action(ctx, name, "up", None, "brought up")


@site_app.command("enable")
def site_enable(ctx: typer.Context, name: NameArg) -> None:
    """Let the site take new placements again."""
    _site_action(ctx, name, "", {"enabled": True}, "enabled")


@site_app.command("disable")
def site_disable(ctx: typer.Context, name: NameArg) -> None:
    """Stop new placements in the site (what is there stays)."""
    _site_action(ctx, name, "", {"enabled": False}, "disabled")


# -- resources and work ---------------------------------------------------------------------------


@resource_app.command("show")
def resource_show(
    ctx: typer.Context,
    resource_id: Annotated[str, typer.Argument(help="The resource id.")],
    as_json: JsonOption = False,
) -> None:
    """A resource's intent, the sites it is in, and its queued work: why is it stuck?"""
    with admin_client(ctx) as client:
        detail = client.get(f"/resources/{resource_id}")
    if as_json:
        print_json(detail)
        return
    out = console()
    resource = detail["resource"]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key in (
        "id",
        "kind",
        "name",
        "project_id",
        "status",
        "site",
        "parent_id",
        "device_id",
        "generation",
        "deleting",
        "created_at",
        "updated_at",
    ):
        value = resource.get(key)
        table.add_row(key, "-" if value in (None, "") else str(value))
    table.add_row("spec", json.dumps(resource.get("spec", {}), sort_keys=True))
    if resource.get("observed"):
        table.add_row("observed", json.dumps(resource["observed"], sort_keys=True))
    out.print(table)
    bindings = Table(title="Bindings")
    for header in ("Site", "Site id", "Generation", "Status"):
        bindings.add_column(header, no_wrap=True)
    bindings.add_column("Last error", overflow="fold")
    for b in detail["bindings"]:
        generation = f"{b['applied_generation']}/{resource['generation']}"
        status = b["observed_status"]
        if b.get("drifted_at"):
            status = f"[red]drifted[/] ({b['drifted_at']})"
        bindings.add_row(
            b["site"],
            b.get("site_resource_id") or "-",
            generation if b["in_sync"] else f"[yellow]{generation}[/]",
            status,
            b.get("last_error") or "",
        )
    out.print(bindings if detail["bindings"] else "Bindings: none (in no site)")
    if detail["work"]:
        out.print(work_table(detail["work"], "Queued work"))
    else:
        out.print("Queued work: none")


@resource_app.command("recreate")
def resource_recreate(
    ctx: typer.Context,
    resource_id: Annotated[str, typer.Argument(help="The drifted resource's id.")],
) -> None:
    """Make a server or volume that was deleted in its site outside Isthmus again."""
    with admin_client(ctx) as client:
        answer = client.post(f"/resources/{resource_id}/recreate")
    resource = answer["resource"]
    console().print(
        f"{resource['kind'].capitalize()} [bold]{resource_id}[/] will be made again in"
        f" {', '.join(answer['sites'])} (now {resource['status']})."
    )


def work_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The work queue: per site and kind, the oldest item, items that keep failing."""
    with admin_client(ctx) as client:
        summary = client.get("/work")
    if as_json:
        print_json(summary)
        return
    out = console()
    out.print(f"Queued work: [bold]{summary['total']}[/] item(s)")
    if summary["groups"]:
        table = Table()
        for header in ("Site", "Site health", "Kind", "Queued", "Failing", "Leased", "Oldest"):
            table.add_column(header, no_wrap=True)
        for g in summary["groups"]:
            table.add_row(
                g["site"],
                health_text(g["site_health"]),
                g["kind"],
                str(g["queued"]),
                str(g["with_errors"]),
                str(g["leased"]),
                f"{g['oldest_age_seconds']:.0f}s",
            )
        out.print(table)
    if summary.get("oldest"):
        out.print(work_table([summary["oldest"]], "Oldest item"))
    if summary["errors"]:
        out.print(work_table(summary["errors"], "Items with errors"))
    if summary.get("copies"):
        out.print(work_table(summary["copies"], "Copies under way"))
