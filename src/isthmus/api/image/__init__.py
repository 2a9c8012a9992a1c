"""Glance v2 (image): images, their schemas and data.

The service's one router is in `router.py`; api/app.py mounts it."""
