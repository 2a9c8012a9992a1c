"""Glance v2 (image): images, their schemas and data, members and the interoperable import.

The service's one router is in `router.py`; api/app.py mounts it."""
