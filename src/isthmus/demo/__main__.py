"""`python -m isthmus.demo` (what `make demo` runs): the entry point that assembles
the story (demo/story.py) with its chapters (demo/fabric.py's ping matrix), runs it
in a temporary directory and exits 0 when every step worked, else 1 (130 when
interrupted). `--keep` keeps the temporary data dir."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from isthmus.demo import story
from isthmus.demo.fabric import FabricChapter
from isthmus.demo.story import CIDR, Demo, DemoFailed, bin_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m isthmus.demo", description=(story.__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary data dir (its path is printed)"
    )
    args = parser.parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    if not bin_path("openstack").exists():
        console.print(f"[red]The demo needs the openstack CLI at {bin_path('openstack')}.[/]")
        return 1
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-demo-"))
    demo = Demo(workdir, console, chapters=[FabricChapter(CIDR)])
    code = 0
    try:
        demo.run()
    except DemoFailed as exc:
        console.print(f"[bold red]Demo failed:[/] {exc}", highlight=False)
        console.print("[dim]--- last lines of the isthmus up log ---[/]")
        console.print(demo.service_log_tail(), highlight=False, soft_wrap=True)
        code = 1
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/]")
        code = 130
    finally:
        status = demo.stop_service()
        demo.teardown_fabric()
        if status not in (None, 0) and code == 0:
            console.print(f"[red]isthmus up exited with status {status} on SIGTERM.[/]")
            code = 1
        if args.keep:
            console.print(f"Data dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if code == 0:
        console.print(
            f"[bold green]Demo complete[/] in {time.monotonic() - started:.1f}s:"
            " three sites, one cloud, the ordinary openstack CLI."
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
