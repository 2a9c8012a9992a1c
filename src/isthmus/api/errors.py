"""The one place errors become HTTP answers, in the body shape each OpenStack
service uses (Nova/Cinder `{"itemNotFound": {...}}`, Neutron `{"NeutronError":
{...}}`, Keystone `{"error": {...}}`). Bad input never reaches the store: pydantic
validation errors become 400 with the field named (text itself is checked earlier, in
api/boundary.py). Anything unexpected becomes a 500 in UnexpectedErrorMiddleware,
which keeps the connection open and logs one line with the request id."""

from __future__ import annotations

import json
import logging
import os
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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
    # a message may echo input; never let an unencodable character break the answer
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
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


def allowed_methods(request: Request) -> str:
    """The `Allow` header of a 405 (RFC 9110): every method some route takes at this path."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    )


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

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # a unique key the handler did not check first (e.g. renaming a project to a
        # taken name): Keystone's and Neutron's 409 for a duplicate entry; rolled back
        return error_response(
            request,
            409,
            "Conflict occurred attempting to store the change: it duplicates an existing"
            " entry (for example a name already in use).",
            "Conflict",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        if exc.status_code == 404:
            message = f"The resource could not be found: {request.method} {request.url.path}"
        response = error_response(request, exc.status_code, message)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route's methods
            response.headers["Allow"] = allowed_methods(request)
        return response


UNEXPECTED_MESSAGE = (
    "The server has either erred or is incapable of performing the requested operation."
)


def one_line(exc: BaseException) -> str:
    """`Type: message (at module.py:line in function)` on one line: the innermost
    frame of Isthmus's own code, the message's whitespace folded and cut."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if f"{os.sep}isthmus{os.sep}" in frame.filename]
    where = ""
    if ours or frames:
        frame = (ours or frames)[-1]
        where = f" (at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name})"
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = f"{message[:297]}..."
    return f"{type(exc).__name__}: {message}{where}"


class UnexpectedErrorMiddleware:
    """Any exception a handler did not turn into an answer becomes the service's 500
    body here, with one log line at ERROR naming the request id (set by api/app.py's
    RequestIdMiddleware in `scope["state"]["request_id"]`) and where it failed; the
    traceback follows at DEBUG. Answering here, below
    Starlette's ServerErrorMiddleware (which re-raises after answering, so uvicorn
    would drop the connection), keeps a keep-alive connection usable. The handler's
    transaction was already rolled back by `service.db.session()`. Only when the
    answer had already begun is the exception re-raised (the connection must close)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            path = scope.get("path", "")
            request_id = scope.get("state", {}).get("request_id", "req-unknown")
            log.error(
                "%s %s %s failed: %s", request_id, scope.get("method", ""), path, one_line(exc)
            )
            log.debug("%s traceback", request_id, exc_info=exc)
            if started:
                raise
            payload = json.dumps(
                error_body(path, 500, UNEXPECTED_MESSAGE), separators=(",", ":")
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
