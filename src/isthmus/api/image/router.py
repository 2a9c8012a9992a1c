"""The one router of the image service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.image import images

router = APIRouter()
router.include_router(images.router)
