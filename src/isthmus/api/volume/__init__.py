"""Cinder v3 (block storage): volumes, snapshots, their extras.

The service's one router is in `router.py`; api/app.py mounts it."""
