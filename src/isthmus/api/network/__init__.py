"""Neutron (network): networks, subnets, ports, security groups, routers, floating IPs.

The service's one router is in `router.py`; api/app.py mounts it."""
