"""The one router of the identity service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.identity import application_credentials, layout, roles, routes, trusts

router = APIRouter()
router.include_router(routes.router)
router.include_router(roles.router)
router.include_router(layout.router)
router.include_router(trusts.router)
router.include_router(application_credentials.router)
