"""Sweep cost: how long one sweep of an embedded site takes (engine/drift.py: list
the site, compare with the bindings, store foreign objects), with N servers
there, first with nothing drifted, then with a tenth of them deleted in the site
behind Isthmus' back (each becomes drift).

    .venv/bin/python bench/drift_sweep.py [--servers 1000] [--database URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from isthmus.config import Config, SiteConfig
from isthmus.engine.drift import sweep_site
from isthmus.service import Service
from isthmus.sites.local import LocalDriver

sys.path.insert(0, str(Path(__file__).parent))
from provision_throughput import write_intent  # noqa: E402


def timed_sweep(service: Service) -> tuple[float, int]:
    started = time.perf_counter()
    result = sweep_site(service.db, service.sites, "site-a")
    return time.perf_counter() - started, len(result.drifted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-") as tmp:
        capacity = {"boot_seconds": 0, "vcpus": 100000, "ram_mb": 10**8, "disk_gb": 10**7}
        config = Config(
            data_dir=Path(tmp),
            database=args.database,
            sites=[SiteConfig("site-a", "local", capacity)],
        )
        service = Service(config)
        service.bootstrap()
        service.health.check_all()
        write_intent(service, args.servers)
        assert service.engine.run_until_idle(600)
        clean, _ = timed_sweep(service)
        driver = service.sites.get("site-a")
        assert isinstance(driver, LocalDriver)
        servers = driver.state.list("server")
        for obj in servers[: len(servers) // 10]:
            driver.state.remove(obj.site_id)
        drifting, drifted = timed_sweep(service)
        service.stop()
    db = "sqlite" if not args.database else args.database.split(":")[0]
    print(f"drift_sweep db={db} servers={args.servers} (each with a port) in one site")
    print(f"  sweep, nothing drifted:   {clean * 1000:8.1f} ms")
    print(f"  sweep, {drifted:4d} drifted:     {drifting * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
