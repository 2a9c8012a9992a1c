"""Fernet tokens, as Keystone makes them: a small binary payload, encrypted and
authenticated (AES-128-CBC + HMAC-SHA256, `cryptography`'s MultiFernet) under the
keys of `token_keys.KeyRepository`, so a holder can neither read nor change it.

Payload (big-endian; 70 bytes for uuid-hex ids, which Fernet makes a 184-character token):

    version   1 byte   PAYLOAD_VERSION (2; version-1 tokens, without the last two ids,
                       are still read)
    methods   1 byte   bit set of METHOD_BITS (password, token, application_credential)
    issued    8 bytes  issued-at, microseconds since the epoch
    expires   8 bytes  expires-at, microseconds since the epoch
    audit id  16 bytes (shown as 22 url-safe base64 characters, as Keystone's)
    user id   packed id
    project   packed id ("" for an unscoped token)
    trust     packed id (none unless trust-scoped; the user is then the trustee)
    app cred  packed id (none unless got with an application credential)

A packed id is 0x00 + 16 bytes for 32 lower-case hex digits, 0x01 + length byte +
UTF-8 for any other id, 0x02 for none. Names and roles do not travel: validation
(token_validation.py) reads the current ones, and the trust or application
credential a token names must still exist and be valid each time. `decode`
refuses a token that is not genuine under any key, has expired, was issued in
the future, or whose lifetime exceeds the configured one (a token minted with a
stolen key). The codec re-reads the key directory when its mtime changes (one
stat per call) and, at most once a second, when a token fails to decrypt, so a
rotation needs no restart.
"""

from __future__ import annotations

import base64
import logging
import re
import struct
import threading
import time
import uuid
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from isthmus.api.identity.token_keys import KeyRepository
from isthmus.errors import BadRequest
from isthmus.store.token_revocation import LONGEST_TOKEN_LIFETIME

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 2
_VERSION_1 = 1  # no trust or application credential id
DEFAULT_EXPIRATION = 3600  # seconds, Keystone's [token] expiration
METHOD_BITS = {"password": 1, "token": 2, "application_credential": 4}
CLOCK_SKEW = 60.0  # seconds a token's issue time may lie ahead of this clock (Fernet's)
RELOAD_AFTER_FAILURE = 1.0  # seconds between re-reads of the keys caused by failed decrypts
_HEAD = struct.Struct(">BBqq16s")
_HEX_ID = re.compile(r"[0-9a-f]{32}")


class BadToken(Exception):
    """The token is not genuine, not current or not well-formed (the message says which)."""


@dataclass(frozen=True)
class TokenClaims:
    """What a token itself says."""

    user_id: str
    project_id: str
    methods: tuple[str, ...]
    audit_id: str
    issued_at: float
    expires_at: float
    trust_id: str = ""
    app_cred_id: str = ""


@dataclass(frozen=True)
class Delegation:
    """How a token acts for someone: through a trust (OS-TRUST) or an application
    credential; the token's body shows it (`OS-TRUST:trust`, `application_credential`)."""

    trust_id: str = ""
    trustor_user_id: str = ""
    trustee_user_id: str = ""
    impersonation: bool = False
    app_cred_id: str = ""
    app_cred_name: str = ""
    unrestricted: bool = False


@dataclass(frozen=True)
class TokenData:
    """A validated token: its claims with the user's and project's current names and
    the roles the user holds on the project now."""

    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: tuple[str, ...]
    issued_at: float
    expires_at: float
    audit_id: str
    methods: tuple[str, ...] = ("password",)
    delegation: Delegation | None = None


def _pack_id(value: str) -> bytes:
    if not value:
        return b"\x02"
    if _HEX_ID.fullmatch(value):
        return b"\x00" + bytes.fromhex(value)
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"id too long for a token: {value[:40]}...")
    return b"\x01" + bytes([len(raw)]) + raw


def _unpack_id(raw: bytes, offset: int) -> tuple[str, int]:
    tag = raw[offset]
    if tag == 0:
        return raw[offset + 1 : offset + 17].hex(), offset + 17
    if tag == 1:
        length = raw[offset + 1]
        return raw[offset + 2 : offset + 2 + length].decode(), offset + 2 + length
    if tag == 2:
        return "", offset + 1
    raise ValueError(f"bad id tag {tag}")


def pack(claims: TokenClaims) -> bytes:
    methods = 0
    for method in claims.methods:
        methods |= METHOD_BITS[method]
    audit = base64.urlsafe_b64decode(claims.audit_id + "==")
    head = _HEAD.pack(
        PAYLOAD_VERSION,
        methods,
        round(claims.issued_at * 1e6),
        round(claims.expires_at * 1e6),
        audit,
    )
    ids = (claims.user_id, claims.project_id, claims.trust_id, claims.app_cred_id)
    return head + b"".join(_pack_id(value) for value in ids)


def unpack(raw: bytes) -> TokenClaims:
    try:
        version, methods, issued, expires, audit = _HEAD.unpack_from(raw)
        if version not in (PAYLOAD_VERSION, _VERSION_1):
            raise ValueError(f"payload version {version}")
        user_id, offset = _unpack_id(raw, _HEAD.size)
        project_id, offset = _unpack_id(raw, offset)
        trust_id = app_cred_id = ""
        if version == PAYLOAD_VERSION:
            trust_id, offset = _unpack_id(raw, offset)
            app_cred_id, offset = _unpack_id(raw, offset)
        if offset != len(raw) or len(user_id) == 0:
            raise ValueError("malformed payload")
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise BadToken("The token is not well-formed.") from exc
    return TokenClaims(
        user_id,
        project_id,
        tuple(name for name, bit in METHOD_BITS.items() if methods & bit),
        base64.urlsafe_b64encode(audit).rstrip(b"=").decode(),
        issued / 1e6,
        expires / 1e6,
        trust_id,
        app_cred_id,
    )


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class TokenCodec:
    """Makes and reads tokens under the keys of one repository; `lifetime` is both
    the lifetime of new tokens and the longest one accepted."""

    def __init__(self, keys: KeyRepository, lifetime: int = DEFAULT_EXPIRATION) -> None:
        if not isinstance(lifetime, int) or not 60 <= lifetime <= LONGEST_TOKEN_LIFETIME:
            raise BadRequest(
                "token_expiration must be a whole number of seconds from 60 to"
                f" {LONGEST_TOKEN_LIFETIME}, not {lifetime!r}."
            )
        self.keys = keys
        self.lifetime = lifetime
        self.generation = 0  # bumped whenever the set of keys read changes
        self._lock = threading.Lock()
        self._stamp: int | None = None
        self._loaded: list[bytes] = []
        self._fernet: MultiFernet | None = None
        self._failed_reload_at = 0.0

    def issue(
        self,
        user_id: str,
        project_id: str,
        methods: tuple[str, ...],
        expires_at: float | None,
        *,
        trust_id: str = "",
        app_cred_id: str = "",
    ) -> tuple[str, TokenClaims]:
        """A new token (expiring after `lifetime`, or at `expires_at` if sooner);
        `user_id` is the one who authenticated (a trust's trustee)."""
        micros = time.time_ns() // 1000  # the precision the payload keeps
        now = micros / 1e6
        end = micros + self.lifetime * 1_000_000
        if expires_at is not None:
            end = min(end, round(expires_at * 1e6))
        claims = TokenClaims(
            user_id, project_id, methods, new_audit_id(), now, end / 1e6, trust_id, app_cred_id
        )
        fernet = self._current()
        if fernet is None:
            raise BadRequest(f"No token keys in {self.keys.directory}.")
        return fernet.encrypt_at_time(pack(claims), int(now)).decode(), claims

    def decode(self, token: str) -> TokenClaims:
        """The claims of a genuine, current token whose lifetime is within the cap."""
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError as exc:
            raise BadToken("The token is not well-formed.") from exc
        payload = self._decrypt(raw)
        claims = unpack(payload)
        now = time.time()
        if claims.expires_at <= now:
            raise BadToken("The token has expired.")
        if claims.issued_at > now + CLOCK_SKEW:
            raise BadToken("The token was issued in the future.")
        if claims.expires_at - claims.issued_at > self.lifetime + 1:
            raise BadToken("The token's lifetime exceeds the configured maximum.")
        return claims

    def _decrypt(self, raw: bytes) -> bytes:
        fernet = self._current()
        if fernet is not None:
            try:
                return fernet.decrypt(raw, ttl=self.lifetime + int(CLOCK_SKEW))
            except InvalidToken:
                pass
        now = time.monotonic()
        if now - self._failed_reload_at >= RELOAD_AFTER_FAILURE:
            self._failed_reload_at = now
            fernet = self._reload()
            if fernet is not None:
                try:
                    return fernet.decrypt(raw, ttl=self.lifetime + int(CLOCK_SKEW))
                except InvalidToken:
                    pass
        raise BadToken("The request you have made requires authentication.")

    def refresh(self) -> int:
        """Re-read the keys if the directory changed; the key generation."""
        self._current()
        return self.generation

    def _current(self) -> MultiFernet | None:
        if self._fernet is None or self.keys.stamp() != self._stamp:
            return self._reload()
        return self._fernet

    def _reload(self) -> MultiFernet | None:
        with self._lock:
            stamp = self.keys.stamp()
            keys = self.keys.load()
            if keys != self._loaded:
                self._loaded = keys
                self.generation += 1
                fernets = []
                for key in keys:
                    try:
                        fernets.append(Fernet(key))
                    except ValueError:
                        log.error(
                            "Ignoring a file in %s that holds no Fernet key", self.keys.directory
                        )
                self._fernet = MultiFernet(fernets) if fernets else None
            self._stamp = stamp
            return self._fernet
