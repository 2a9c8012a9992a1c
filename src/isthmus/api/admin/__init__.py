"""The Isthmus admin API under /isthmus/v1 (sites, flavors, fabric) and /metrics.

The service's one router is in `router.py`; api/app.py mounts it."""
