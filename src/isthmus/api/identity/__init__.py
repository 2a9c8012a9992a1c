"""Keystone v3 (identity): projects, users, tokens, roles, the token keys.

The service's one router is in `router.py`; api/app.py mounts it."""
