"""The one place errors become HTTP answers, in the body shape each OpenStack
service uses (Nova/Cinder `{"itemNotFound": {...}}`, Neutron `{"NeutronError":
{...}}`, Keystone `{"error": {...}}`). Bad input never reaches the store: pydantic
validation errors become 400 with the field named."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from isthmus.errors import ApiError

log = logging.getLogger(__name__)

NOVA_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    500: "computeFault",
}
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def error_body(path: str, status: int, message: str, error_type: str | None = None) -> Any:
    if path.startswith(("/compute", "/volume")):
        return {NOVA_KEYS.get(status, "computeFault"): {"message": message, "code": status}}
    if path.startswith("/network"):
        return {
            "NeutronError": {
                "type": error_type or TITLES.get(status, "Error").replace(" ", ""),
                "message": message,
                "detail": "",
            }
        }
    return {"error": {"code": status, "title": TITLES.get(status, "Error"), "message": message}}


def error_response(
    request: Request, status: int, message: str, error_type: str | None = None
) -> JSONResponse:
    headers = {}
    if status == 401:
        base = str(request.base_url).rstrip("/")
        headers["WWW-Authenticate"] = f'Keystone uri="{base}/identity"'
    return JSONResponse(
        error_body(request.url.path, status, message, error_type),
        status_code=status,
        headers=headers,
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.message, exc.error_type)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = []
        for error in exc.errors()[:3]:
            messages.append(
                f"Invalid input for field/attribute {_field(tuple(error['loc']))}: {error['msg']}"
            )
        return error_response(request, 400, "; ".join(messages) or "Invalid input", "InvalidInput")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        if exc.status_code == 404:
            message = f"The resource could not be found: {request.method} {request.url.path}"
        return error_response(request, exc.status_code, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            request,
            500,
            "The server has either erred or is incapable of performing the requested operation.",
        )
