"""`isthmus token-keys ...`: the keys tokens are encrypted with
(`<data-dir>/token-keys/`, api/identity/token_keys.py).

    isthmus token-keys rotate [--data-dir DIR] [--max-active N]
    isthmus token-keys list   [--data-dir DIR]

`rotate` is `keystone-manage fernet_rotate`: the staged key becomes the primary,
a new staged key is made, the oldest keys beyond `--max-active` are removed. A
running service picks the new keys up without a restart; tokens made under a key
that is still kept stay valid until they expire. Rotate more rarely than every
token lifetime / (max-active - 2), or tokens die early. Works on the files only
(no service or database needed); run it as the user the service runs as.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # imported when a command runs: the other commands start faster
    from isthmus.api.identity.token_keys import KeyRepository

token_keys_app = typer.Typer(
    help="The token encryption keys: rotate them, list them.", no_args_is_help=True
)

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="The data dir of the service (keys in token-keys/).")
]


def _repository(data_dir: Path) -> KeyRepository:
    from isthmus.api.identity.token_keys import KEY_DIR_NAME, KeyRepository

    return KeyRepository(data_dir.expanduser().resolve() / KEY_DIR_NAME)


def _role(index: int, primary: int) -> str:
    return "staged" if index == 0 else "primary" if index == primary else "secondary"


@token_keys_app.command("rotate")
def rotate(
    data_dir: DataDir = Path("data"),
    max_active: Annotated[
        int | None,
        typer.Option(
            "--max-active", help="Keys to keep, the staged one included (default: 3, as Keystone)."
        ),
    ] = None,
) -> None:
    """Rotate: the staged key becomes the primary, a new staged key, the oldest dropped."""
    from isthmus.api.identity.token_keys import DEFAULT_MAX_ACTIVE

    keys = _repository(data_dir)
    done = keys.rotate(DEFAULT_MAX_ACTIVE if max_active is None else max_active)
    typer.echo(f"Primary key is now {keys.directory / str(done.primary)}.")
    if done.removed:
        typer.echo(f"Removed keys: {', '.join(map(str, done.removed))}.")
    typer.echo(
        "Keys: " + ", ".join(f"{index} ({_role(index, done.primary)})" for index in done.active)
    )


@token_keys_app.command("list")
def list_keys(data_dir: DataDir = Path("data")) -> None:
    """The key files and what each is for."""
    keys = _repository(data_dir)
    indexes = keys.indexes()
    if not indexes:
        typer.echo(f"No token keys in {keys.directory}.")
        return
    primary = max(indexes)
    for index in indexes:
        typer.echo(f"{index}\t{_role(index, primary)}\t{keys.directory / str(index)}")
