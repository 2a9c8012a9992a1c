"""The one router of the volume service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.volume import volumes

router = APIRouter()
router.include_router(volumes.router)
