"""The one router of the compute service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.compute import (
    actions,
    extras,
    hypervisors,
    interfaces,
    keypairs,
    limits,
    server_groups,
    server_security_groups,
    servers,
    services,
    tags,
    usage,
    volumes,
)

router = APIRouter()
router.include_router(servers.router)
router.include_router(actions.router)
router.include_router(interfaces.router)
router.include_router(tags.router)
router.include_router(server_security_groups.router)
router.include_router(extras.router)
router.include_router(keypairs.router)
router.include_router(limits.router)
router.include_router(volumes.router)
router.include_router(server_groups.router)
router.include_router(hypervisors.router)
router.include_router(services.router)
router.include_router(usage.router)
