"""Compute v2.1 (Nova): key pairs (`/os-keypairs`).

A key pair belongs to a user (spec `user_id`): other users, even of the same
project, neither see nor reach it, and may use the same name. `project_id` is
the project the user was in when creating it; the key_pairs quota (413) is
counted per project.

Public keys are OpenSSH lines (ssh-rsa, ssh-dss, ssh-ed25519, ecdsa-sha2-*),
parsed here in pure Python, with Nova's MD5 fingerprint. Without a public key,
Isthmus generates an RSA 2048 key pair (as Nova's 2.1 API does) and returns the
private key once; it uses `cryptography` when installed, `ssh-keygen` otherwise.

Microversions: 2.2 key pair `type` (ssh, or x509: a PEM certificate, SHA-1
fingerprint of its DER form, generated self-signed when no key is given; needs
`cryptography`), create answers 201 and delete 204; 2.10 an admin names another
user with `user_id` (body of create, query of list/show/delete; 403 for others);
2.35 `limit`/`marker` (a name) on the list, with `keypairs_links`; 2.92 the
public key is required (no generated keys) and names may hold '@' and '.'.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
import struct
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute.common import (
    compute_router,
    next_links,
    page_after_marker,
    parse_limit,
    request_version,
    require_object,
)
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, Forbidden, NotFound
from isthmus.intent import keypairs as intent_keypairs
from isthmus.intent.keypairs import find_keypair
from isthmus.store import repo
from isthmus.store.tables import Resource

router = compute_router()

KEY_TYPES = (
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
GENERATED_COMMENT = "Generated-by-Nova"
KEYPAIR_NAME = re.compile(r"^[a-zA-Z0-9 _-]+$")
KEYPAIR_NAME_292 = re.compile(r"^[a-zA-Z0-9 @._-]+$")


def _fields(blob: bytes) -> list[bytes]:
    """The length-prefixed strings an SSH key blob is made of."""
    out = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ValueError("truncated length")
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            raise ValueError("truncated field")
        out.append(blob[offset : offset + length])
        offset += length
    return out


def parse_public_key(text: str) -> tuple[str, bytes]:
    """(key type, key blob) of an OpenSSH public key line; 400 when it is not one."""
    invalid = BadRequest(
        "Keypair data is invalid: failed to generate fingerprint. The public key must be"
        " one OpenSSH line such as 'ssh-ed25519 AAAA... comment' (types: "
        + ", ".join(KEY_TYPES)
        + ")."
    )
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise invalid
    try:
        blob = base64.b64decode(parts[1], validate=True)
        fields = _fields(blob)
    except (binascii.Error, ValueError):
        raise invalid from None
    expected = {"ssh-rsa": 3, "ssh-dss": 5, "ssh-ed25519": 2}.get(parts[0], 3)
    if not fields or fields[0].decode(errors="replace") != parts[0] or len(fields) != expected:
        raise invalid
    if parts[0] == "ssh-ed25519" and len(fields[1]) != 32:
        raise invalid
    return parts[0], blob


def fingerprint(public_key: str) -> str:
    """Nova's fingerprint: MD5 of the key blob, as colon-separated hex pairs."""
    _, blob = parse_public_key(public_key)
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def generate_key_pair() -> tuple[str, str]:
    """A new RSA 2048 key pair: (private key PEM, public key line)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        return _generate_with_ssh_keygen()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, f"{public} {GENERATED_COMMENT}"


def _generate_with_ssh_keygen() -> tuple[str, str]:
    binary = shutil.which("ssh-keygen")
    if binary is None:
        raise BadRequest(
            "This Isthmus cannot generate key pairs (neither the cryptography package nor"
            " ssh-keygen is installed); pass a public_key instead."
        )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "key"
        subprocess.run(
            [binary, "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C"]
            + [GENERATED_COMMENT, "-f", str(path)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return path.read_text(), path.with_suffix(".pub").read_text().strip()


# -- key pairs -------------------------------------------------------------------------------


def _keypair(keypair: Resource, full: bool, version: tuple[int, int]) -> dict[str, Any]:
    body = {
        "name": keypair.name,
        "public_key": keypair.spec.get("public_key", ""),
        "fingerprint": keypair.spec.get("fingerprint", ""),
    }
    if version >= (2, 2):
        body["type"] = keypair.spec.get("type", "ssh")
    if full:
        body.update(
            {
                "user_id": keypair.spec.get("user_id"),
                "id": int(keypair.id.replace("-", "")[:8], 16),
                "created_at": repo.isoformat(keypair.created_at),
                "updated_at": None,
                "deleted": False,
                "deleted_at": None,
            }
        )
    return body


def _owner(request: Request, ctx: RequestContext, given: Any, action: str) -> str:
    """The user whose key pairs a request is about: the caller, or (2.10) the
    `user_id` an admin names; 403 when another user names someone else."""
    if given is None or request_version(request) < (2, 10):
        return ctx.user_id
    if not isinstance(given, str) or not given:
        raise BadRequest(f"Invalid input for field/attribute user_id. Value: {given}.")
    if given != ctx.user_id and not ctx.is_admin:
        raise Forbidden(
            f"Policy doesn't allow os_compute_api:os-keypairs:{action} to be performed."
        )
    return given


def _get_keypair(session: Session, user_id: str, name: str) -> Resource:
    keypair = find_keypair(session, user_id, name)
    if keypair is None:
        raise NotFound(f"Keypair {name} not found for user {user_id}")
    return keypair


@router.get("/v2.1/os-keypairs")
def list_keypairs(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    version = request_version(request)
    user_id = _owner(request, ctx, request.query_params.get("user_id"), "index")
    paged = version >= (2, 35)
    limit = parse_limit(request) if paged else None
    with request.app.state.service.db.read() as session:
        rows = session.scalars(
            select(Resource)
            .where(Resource.kind == "keypair", Resource.deleting.is_(False))
            .order_by(Resource.name)
        )
        mine = {k.name: k for k in rows if k.spec.get("user_id") == user_id}
        names = list(mine)
        if limit is not None:
            names = page_after_marker(names, request.query_params.get("marker"), limit)
        body: dict[str, Any] = {
            "keypairs": [{"keypair": _keypair(mine[n], False, version)} for n in names]
        }
    if limit is not None:
        more = next_links(request, "os-keypairs", names, limit)
        if more:
            body["keypairs_links"] = more
    return body


@router.post("/v2.1/os-keypairs")
def create_keypair(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> Response:
    version = request_version(request)
    ref = require_object(body, "keypair")
    unexpected = sorted(
        key
        for key, since in (("type", (2, 2)), ("user_id", (2, 10)))
        if key in ref and version < since
    )
    if unexpected:
        raise BadRequest(
            "Invalid input for field/attribute keypair. Additional properties are not allowed"
            f" ({', '.join(repr(k) for k in unexpected)} unexpected)"
        )
    name = ref.get("name")
    pattern = KEYPAIR_NAME_292 if version >= (2, 92) else KEYPAIR_NAME
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not pattern.match(name):
        raise BadRequest(
            f"Invalid input for field/attribute name. Value: {name}. A key pair name has 1 to"
            " 255 characters among letters, digits, '-', '_' and space"
            + (", '@' and '.'." if version >= (2, 92) else ".")
        )
    kind = ref.get("type", "ssh")
    if kind not in ("ssh", "x509"):
        raise BadRequest(
            f"Invalid input for field/attribute type. Value: {kind}. 'type' must be one of"
            " 'ssh', 'x509'."
        )
    user_id = _owner(request, ctx, ref.get("user_id"), "create")
    public_key = ref.get("public_key")
    private_key = None
    if public_key is None:
        if version >= (2, 92):
            raise BadRequest(
                "Invalid input for field/attribute keypair. 'public_key' is a required property"
            )
        private_key, public_key = generate_x509() if kind == "x509" else generate_key_pair()
    elif not isinstance(public_key, str):
        raise BadRequest("Keypair data is invalid: public_key must be a string.")
    public_key = public_key.strip()
    if kind == "x509":
        key_type, print_ = "x509", x509_fingerprint(public_key)
    else:
        key_type, _ = parse_public_key(public_key)
        print_ = fingerprint(public_key)
    with request.app.state.service.db.session() as session:
        keypair = intent_keypairs.add_keypair(
            session,
            project_id=ctx.project_id,
            user_id=user_id,
            name=name,
            spec={
                "public_key": public_key,
                "fingerprint": print_,
                "type": kind,
                "key_type": key_type,
            },
        )
        answer = _keypair(keypair, False, version)
        answer["user_id"] = user_id
    if private_key is not None:
        answer["private_key"] = private_key
    return JSONResponse({"keypair": answer}, status_code=201 if version >= (2, 2) else 200)


@router.get("/v2.1/os-keypairs/{name}")
def show_keypair(
    request: Request, name: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    user_id = _owner(request, ctx, request.query_params.get("user_id"), "show")
    with request.app.state.service.db.read() as session:
        keypair = _get_keypair(session, user_id, name)
        return {"keypair": _keypair(keypair, True, request_version(request))}


@router.delete("/v2.1/os-keypairs/{name}", status_code=202, response_class=Response)
def delete_keypair(
    request: Request, name: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    user_id = _owner(request, ctx, request.query_params.get("user_id"), "delete")
    with request.app.state.service.db.session() as session:
        intent_keypairs.delete_keypair(session, _get_keypair(session, user_id, name))
    return Response(status_code=204 if request_version(request) >= (2, 2) else 202)


# -- x509 (2.2) ----------------------------------------------------------------------------------


def x509_fingerprint(certificate: str) -> str:
    """Nova's fingerprint of an x509 key pair: SHA-1 of the certificate's DER
    form as colon-separated hex pairs; 400 when it is not a PEM certificate."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise BadRequest("This Isthmus cannot read x509 certificates.") from None
    try:
        cert = x509.load_pem_x509_certificate(certificate.encode())
    except ValueError:
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    digest = hashlib.sha1(
        cert.public_bytes(serialization.Encoding.DER), usedforsecurity=False
    ).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def generate_x509() -> tuple[str, str]:
    """A new RSA 2048 key and a self-signed certificate of it, valid ten years:
    (private key PEM, certificate PEM)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise BadRequest(
            "This Isthmus cannot generate x509 key pairs; pass a public_key."
        ) from None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GENERATED_COMMENT)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return private, cert.public_bytes(serialization.Encoding.PEM).decode()
