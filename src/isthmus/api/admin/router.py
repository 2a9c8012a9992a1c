"""The one router of the admin service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.admin import sites

router = APIRouter()
router.include_router(sites.router)
