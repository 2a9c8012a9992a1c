"""Signed tokens: the payload (user, project, roles, expiry) travels in the token,
authenticated with HMAC-SHA256 under a key kept in the store, so every process
sharing the database validates tokens without a lookup."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import asdict, dataclass

from isthmus.errors import NotFound, Unauthorized

TOKEN_LIFETIME_SECONDS = 3600 * 12


@dataclass(frozen=True)
class TokenData:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: tuple[str, ...]
    issued_at: float
    expires_at: float
    audit_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def issue(
        self,
        *,
        user_id: str,
        user_name: str,
        project_id: str,
        project_name: str,
        roles: list[str],
        lifetime: float = TOKEN_LIFETIME_SECONDS,
    ) -> tuple[str, TokenData]:
        now = time.time()
        data = TokenData(
            user_id,
            user_name,
            project_id,
            project_name,
            tuple(roles),
            now,
            now + lifetime,
            _b64(uuid.uuid4().bytes),
        )
        body = _b64(json.dumps(asdict(data), separators=(",", ":")).encode())
        signature = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{signature}", data

    def verify(self, token: str, *, subject: bool = False) -> TokenData:
        """The token's data; Unauthorized (or NotFound for a subject token) if bad."""
        error = NotFound if subject else Unauthorized
        try:
            body, signature = token.split(".")
            expected = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(signature, expected):
                raise ValueError("bad signature")
            raw = json.loads(_unb64(body))
            raw["roles"] = tuple(raw["roles"])
            data = TokenData(**raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise error("The request you have made requires authentication.") from exc
        if data.expires_at < time.time():
            raise error("The token has expired.")
        return data
