"""Builds the ASGI application: every OpenStack service under its own path
(see api/catalog.py), the admin API under /isthmus/v1, one error handler, and the
middlewares every request passes: request id, unexpected errors, input boundary."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request

from isthmus import __version__
from isthmus.api.admin.router import router as admin_router
from isthmus.api.boundary import InputBoundaryMiddleware
from isthmus.api.catalog import base_url_of
from isthmus.api.compute.router import router as compute_router
from isthmus.api.context import ServiceApi
from isthmus.api.errors import UnexpectedErrorMiddleware, install_error_handlers
from isthmus.api.identity.router import router as identity_router
from isthmus.api.image.router import router as image_router
from isthmus.api.network.router import router as network_router
from isthmus.api.openapi_document import install_openapi
from isthmus.api.volume.router import router as volume_router

# one router per OpenStack service, in the order their routes are matched
SERVICE_ROUTERS = (
    identity_router,
    compute_router,
    network_router,
    volume_router,
    image_router,
    admin_router,
)


class RequestIdMiddleware:
    """Every answer names its request, as OpenStack services do (`req-<uuid>` in
    X-OpenStack-Request-Id; Nova repeats it in X-Compute-Request-Id). Tempest and the
    SDKs read it; plain ASGI so it costs next to nothing per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4()}".encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()  # request.state
        compute = scope.get("path", "").startswith("/compute")

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-openstack-request-id", request_id))
                if compute:
                    headers.append((b"x-compute-request-id", request_id))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(service: ServiceApi) -> FastAPI:
    """The API of `service` (an isthmus.service.Service, already bootstrapped)."""
    app = FastAPI(
        title="Isthmus",
        version=__version__,
        description="One OpenStack API over many sites. The admin API lives under /isthmus/v1.",
        docs_url="/isthmus/v1/docs",
        openapi_url="/isthmus/v1/openapi.json",
        redoc_url=None,
    )
    app.state.service = service
    # outermost last: request id -> unexpected errors -> input boundary -> routes
    app.add_middleware(InputBoundaryMiddleware)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    install_openapi(app)
    for router in SERVICE_ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> dict[str, Any]:
        base = base_url_of(request)
        return {
            "name": "isthmus",
            "version": __version__,
            "services": {
                "identity": f"{base}/identity/v3",
                "compute": f"{base}/compute/v2.1",
                "network": f"{base}/network",
                "volume": f"{base}/volume/v3",
                "image": f"{base}/image",
                "admin": f"{base}/isthmus/v1",
            },
        }

    return app
