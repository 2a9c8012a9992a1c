"""Nova (compute): servers, their actions and views, key pairs, limits, volume attachments.

The service's one router is in `router.py`; api/app.py mounts it."""
