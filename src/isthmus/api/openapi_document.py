"""The OpenAPI document (`/isthmus/v1/openapi.json`) as the server really answers.

FastAPI generates it from every route (the OpenStack services and the admin API);
this module corrects, in one place, what FastAPI's defaults say that the server never
does: bad input (a malformed path or query parameter, a body that fails its model) is
answered 400 in the service's own error body by api/errors.py, never 422, so each
generated 422 becomes a 400 and the unused validation-error schemas go. What a route
does answer is declared at the route (`response_class=Response` for bodiless answers,
`responses=` and models for the admin API), not patched here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

BAD_INPUT = {"description": "Bad input (named in the error body); nothing was changed."}


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every 422 answer declared as the 400 the server gives instead."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", dict(BAD_INPUT))
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the corrected document at the app's `openapi_url` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = corrected(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
