"""The one router of the identity service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.identity import layout, roles, routes

router = APIRouter()
router.include_router(routes.router)
router.include_router(roles.router)
router.include_router(layout.router)
