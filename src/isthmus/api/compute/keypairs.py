"""Compute v2.1 (Nova): key pairs (`/os-keypairs`).

A key pair belongs to a user (spec `user_id`): other users, even of the same
project, neither see nor reach it, and may use the same name. `project_id` is
the project the user was in when creating it; the key_pairs quota (413) is
counted per project.

Public keys are OpenSSH lines (ssh-rsa, ssh-dss, ssh-ed25519, ecdsa-sha2-*),
parsed here in pure Python, with Nova's MD5 fingerprint. Without a public key,
Isthmus generates an RSA 2048 key pair (as Nova's 2.1 API does) and returns the
private key once; it uses `cryptography` when installed, `ssh-keygen` otherwise.
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
from pathlib import Path
from typing import Any

from fastapi import Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute.common import compute_router, require_object
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
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


def _keypair(keypair: Resource, full: bool) -> dict[str, Any]:
    body = {
        "name": keypair.name,
        "public_key": keypair.spec.get("public_key", ""),
        "fingerprint": keypair.spec.get("fingerprint", ""),
    }
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


def _get_keypair(session: Session, ctx: RequestContext, name: str) -> Resource:
    keypair = find_keypair(session, ctx.user_id, name)
    if keypair is None:
        raise NotFound(f"Keypair {name} not found for user {ctx.user_id}")
    return keypair


@router.get("/v2.1/os-keypairs")
def list_keypairs(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        rows = session.scalars(
            select(Resource)
            .where(Resource.kind == "keypair", Resource.deleting.is_(False))
            .order_by(Resource.name)
        )
        mine = [k for k in rows if k.spec.get("user_id") == ctx.user_id]
        return {"keypairs": [{"keypair": _keypair(k, full=False)} for k in mine]}


@router.post("/v2.1/os-keypairs")
def create_keypair(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ref = require_object(body, "keypair")
    name = ref.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not KEYPAIR_NAME.match(name):
        raise BadRequest(
            f"Invalid input for field/attribute name. Value: {name}. A key pair name has 1 to"
            " 255 characters among letters, digits, '-', '_' and space."
        )
    public_key = ref.get("public_key")
    private_key = None
    if public_key is None:
        private_key, public_key = generate_key_pair()
    elif not isinstance(public_key, str):
        raise BadRequest("Keypair data is invalid: public_key must be a string.")
    public_key = public_key.strip()
    key_type, _ = parse_public_key(public_key)
    with request.app.state.service.db.session() as session:
        keypair = intent_keypairs.add_keypair(
            session,
            project_id=ctx.project_id,
            user_id=ctx.user_id,
            name=name,
            spec={
                "public_key": public_key,
                "fingerprint": fingerprint(public_key),
                "type": "ssh",
                "key_type": key_type,
            },
        )
        answer = _keypair(keypair, full=False)
        answer["user_id"] = ctx.user_id
    if private_key is not None:
        answer["private_key"] = private_key
    return {"keypair": answer}


@router.get("/v2.1/os-keypairs/{name}")
def show_keypair(
    request: Request, name: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        return {"keypair": _keypair(_get_keypair(session, ctx, name), full=True)}


@router.delete("/v2.1/os-keypairs/{name}", status_code=202, response_class=Response)
def delete_keypair(
    request: Request, name: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    with request.app.state.service.db.session() as session:
        intent_keypairs.delete_keypair(session, _get_keypair(session, ctx, name))
    return Response(status_code=202)
