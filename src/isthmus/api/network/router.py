"""The one router of the network service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.network import (
    extras,
    floating_ips,
    l3,
    networks,
    pools,
    ports,
    security,
    subnets,
)

router = APIRouter()
router.include_router(networks.router)
router.include_router(subnets.router)
router.include_router(ports.router)
router.include_router(security.router)
router.include_router(l3.router)
router.include_router(floating_ips.router)
router.include_router(pools.router)
router.include_router(extras.router)
