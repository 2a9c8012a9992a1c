"""Run every bench (bench/*.py but this one) in turn with modest defaults and
print their figures; `make bench` runs this. Fails if any bench fails.

    .venv/bin/python bench/run_all.py [NAME ...]   # e.g. api_latency; default: all
                                                   # but the opt-in ones (OPT_IN)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the arguments each bench runs with here (a bench not listed runs with none)
DEFAULTS = {
    "provision_throughput": ["--servers", "2000", "--sites", "10", "--workers", "1"],
    "api_latency": [],
    "fabric_convergence": ["--sites", "3", "--servers", "2", "--repeat", "3"],
    "facade_overhead": ["--servers", "10", "--requests", "200"],
}
# run only when named (`run_all.py facade_overhead`): each brings up a real OpenStack site
OPT_IN = {"facade_overhead"}


def main() -> int:
    wanted = set(sys.argv[1:])
    benches = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    unknown = wanted - {p.stem for p in benches}
    if unknown:
        print(f"no such bench: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    failed = []
    started = time.perf_counter()
    for path in benches:
        if path.stem not in wanted and (wanted or path.stem in OPT_IN):
            continue
        args = DEFAULTS.get(path.stem, [])
        print(f"== {path.stem} {' '.join(args)}".rstrip(), flush=True)
        began = time.perf_counter()
        code = subprocess.call([sys.executable, str(path), *args], cwd=HERE.parent)
        print(f"== {path.stem}: {time.perf_counter() - began:.1f} s", flush=True)
        if code != 0:
            failed.append(f"{path.stem} (exit {code})")
    print(f"== all benches: {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
