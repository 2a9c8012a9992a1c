"""The boundary between openstacksdk/keystoneauth and Isthmus: every exception
the SDK raises while talking to a site becomes one of ours (isthmus.errors).

    can't connect, DNS, TLS, timeout, 401, 5xx        -> SiteUnavailable
    409 (busy, task in progress), 429 (rate limited)  -> TemporaryError(delay)
    400 saying "not ready" / "status must be ..."     -> TemporaryError(delay)
    404 while updating/deleting something just found  -> TemporaryError (look again)
    400, 403, 413, 404 on create, quota (any status), -> PermanentError(site's message)
    a service missing from the catalog
    any other SDK error                               -> TemporaryError

Messages carry the site's own words (Nova's fault, Neutron's NeutronError
message) and never credentials: keystoneauth does not put them in its errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from keystoneauth1 import exceptions as ks
from openstack import exceptions as sdk

from isthmus.errors import PermanentError, SiteError, SiteUnavailable, TemporaryError

CONFLICT_DELAY = 2.0  # seconds before retrying after a 409 (a task in progress)
RATE_LIMIT_DELAY = 5.0  # after a 429 without Retry-After
OTHER_DELAY = 5.0
QUOTA = re.compile(r"quota|OverQuota|LimitExceeded", re.IGNORECASE)
# 400s that mean "not now": the object is busy in a transient state
NOT_READY = re.compile(
    r"not ready|status must be|task_state|is locked|try again|in progress", re.IGNORECASE
)


def _retry_after(response: requests.Response | None, default: float) -> float:
    if response is None:
        return default
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.5, min(float(value), 300.0))
    except ValueError:
        return default


def _site_message(exc: Exception) -> str:
    """The site's own words: the body's message if the SDK found one."""
    details = getattr(exc, "details", None)
    if details:
        return str(details).strip()
    return str(exc).strip() or type(exc).__name__


def map_http(
    site: str,
    action: str,
    status: int,
    message: str,
    response: requests.Response | None,
    *,
    create: bool = False,
) -> SiteError:
    """Our error for an HTTP error status `status` from `site` while doing `action`."""
    text = f"site {site}: {action} failed: {message} (HTTP {status})"
    if status == 401:
        return SiteUnavailable(f"site {site}: authentication failed: {message}")
    if status >= 500:
        return SiteUnavailable(text)
    if QUOTA.search(message):  # Neutron says 409 OverQuota, Nova 403, Cinder 413
        return PermanentError(text)
    if status == 400 and NOT_READY.search(message):
        return TemporaryError(text, CONFLICT_DELAY)
    if status == 429:
        return TemporaryError(text, _retry_after(response, RATE_LIMIT_DELAY))
    if status in (409, 423):
        return TemporaryError(text, _retry_after(response, CONFLICT_DELAY))
    if status == 404 and not create:
        return TemporaryError(text, CONFLICT_DELAY)
    if status in (408,):
        return SiteUnavailable(text)
    return PermanentError(text)


def translate(
    site: str, action: str, exc: BaseException, *, create: bool = False
) -> SiteError | None:
    """Our error for an SDK / keystoneauth / requests exception; None for others."""
    if isinstance(exc, SiteError):
        return exc
    if isinstance(exc, sdk.HttpException) and exc.status_code:
        return map_http(
            site, action, int(exc.status_code), _site_message(exc), exc.response, create=create
        )
    if isinstance(exc, ks.HttpError) and exc.http_status:
        return map_http(
            site, action, int(exc.http_status), _site_message(exc), exc.response, create=create
        )
    if isinstance(exc, ks.ConnectionError | ks.DiscoveryFailure | ks.RetriableConnectionFailure):
        return SiteUnavailable(f"site {site} cannot be reached ({action}): {exc}")
    if isinstance(exc, ks.EndpointNotFound | sdk.EndpointNotFound | sdk.ServiceDiscoveryException):
        return PermanentError(f"site {site} does not offer the service needed to {action}: {exc}")
    if isinstance(exc, ks.AuthPluginException | sdk.ConfigException):
        return SiteUnavailable(f"site {site}: its cloud configuration is unusable: {exc}")
    if isinstance(exc, requests.RequestException | sdk.HttpException):
        return SiteUnavailable(f"site {site} cannot be reached ({action}): {exc}")
    if isinstance(exc, sdk.SDKException | ks.ClientException):
        # the SDK wraps keystoneauth's errors (e.g. in Connection.authorize): look inside
        inner = exc.__cause__ or exc.__context__
        if inner is not None and inner is not exc:
            mapped = translate(site, action, inner, create=create)
            if mapped is not None:
                return mapped
        return TemporaryError(f"site {site}: {action} failed: {exc}", OTHER_DELAY)
    return None


@contextmanager
def site_errors(site: str, action: str, *, create: bool = False) -> Iterator[None]:
    """Run SDK calls for `action` in `site`, raising only SiteError subclasses
    (exceptions that are not the SDK's, i.e. bugs, pass through unchanged).

    `create=True` marks a create call: a 404 there means a referenced object
    (an image, a flavor) is gone, which retrying will not fix.
    """
    try:
        yield
    except SiteError:
        raise
    except Exception as exc:
        mapped = translate(site, action, exc, create=create)
        if mapped is None:
            raise
        raise mapped from exc
