"""The one router of the image service: its modules' routes in the order they must match."""

from fastapi import APIRouter

from isthmus.api.image import images, imports, members

router = APIRouter()
router.include_router(images.router)
router.include_router(members.router)
router.include_router(imports.router)
