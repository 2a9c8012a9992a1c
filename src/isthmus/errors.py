"""The one error tree of Isthmus, mapped once to HTTP by the API and once from
site SDKs by each driver.

    IsthmusError                 anything Isthmus raises on purpose
    +-- ApiError                 a request cannot be served (has an HTTP status)
    |   +-- BadRequest           400: input is wrong; nothing was changed
    |   +-- Unauthorized         401: no or bad credentials / token
    |   +-- Forbidden            403: authenticated, but policy says no
    |   +-- NotFound             404: no such thing, or not visible to the caller
    |   +-- NotAcceptable        406: the requested API (micro)version is not served
    |   +-- Conflict             409: the current state does not allow it
    |   +-- OverQuota            413: the project would exceed a quota
    +-- SiteError                a driver could not do what was asked
        +-- SiteUnavailable      retryable: the site cannot be reached / is down
        +-- TemporaryError       retryable after `delay` seconds (busy, not ready yet)
        +-- PermanentError       retrying the same intent will not help

Drivers raise only SiteError subclasses; the engine retries the first two
with backoff and records the third on the binding (the resource goes ERROR).
"""

from __future__ import annotations


class IsthmusError(Exception):
    """Root of every error Isthmus raises deliberately."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(IsthmusError):
    """An error that answers an API request. `status` is the HTTP status code;
    `error_type` names it for APIs that say so (Neutron: "NetworkNotFound")."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type or type(self).__name__


class BadRequest(ApiError):
    status = 400
    title = "Bad Request"


class Unauthorized(ApiError):
    status = 401
    title = "Unauthorized"


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class NotFound(ApiError):
    status = 404
    title = "Not Found"


class NotAcceptable(ApiError):
    status = 406
    title = "Not Acceptable"


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class OverQuota(ApiError):
    status = 413
    title = "Request Entity Too Large"


class SiteError(IsthmusError):
    """A site could not carry out a driver call."""

    retryable: bool = False


class SiteUnavailable(SiteError):
    """The site cannot be reached or is down; the work stays queued."""

    retryable = True


class TemporaryError(SiteError):
    """Try again after `delay` seconds (site busy, or a prerequisite not ready)."""

    retryable = True

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(SiteError):
    """The site refused the intent itself; retrying it unchanged will not help."""
