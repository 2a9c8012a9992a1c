"""`isthmus server exec SERVER -- CMD...`: run a command inside a server of an
embedded site whose data plane is on (the server is a network namespace).

The server is found through the admin API (`GET /isthmus/v1/resources/{id}`):
its binding in its site carries the site's own id for it, which for a data-plane
server is its namespace name. The command runs in that namespace's network stack
(`nsenter --net=/run/netns/<name>`), on this machine, so it needs root here; its
exit status is the command's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from isthmus.cli.client import ClientError
from isthmus.cli.sites import admin_client

NETNS_DIR = Path("/run/netns")

server_app = typer.Typer(help="Reach servers of embedded sites.", no_args_is_help=True)


def namespace_of(detail: dict[str, Any]) -> str:
    """The namespace of a server, from its admin resource view (ClientError if none)."""
    resource = detail["resource"]
    if resource["kind"] != "server":
        raise ClientError(f"{resource['id']} is a {resource['kind']}, not a server.")
    site = resource.get("site")
    for binding in detail.get("bindings", []):
        name = binding.get("site_resource_id") or ""
        if binding["site"] == site and name and (NETNS_DIR / name).exists():
            return name
    raise ClientError(
        f"Server {resource['id']} has no network namespace on this machine (site {site}:"
        " not yet built, not an embedded site with `data_plane: true`, or another machine)."
    )


@server_app.command(
    "exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
def server_exec(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="The server id.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments.")],
) -> None:
    """Run CMD inside SERVER's network namespace (e.g. `-- ping -c1 10.0.0.3`)."""
    with admin_client(ctx) as client:
        detail = client.get(f"/resources/{server}")
    namespace = namespace_of(detail)
    if shutil.which("nsenter") is None:
        raise ClientError("nsenter (util-linux) is needed to enter the server's namespace.")
    argv = ["nsenter", f"--net={NETNS_DIR / namespace}", *command]
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise ClientError(f"Cannot run {command[0]}: {exc}") from exc
