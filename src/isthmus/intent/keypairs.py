"""Nova key pair writes below the API (api/compute/keypairs.py parses the body,
checks or generates the key and renders the answer).

A key pair belongs to a user (spec `user_id`) and is counted in its project's
`key_pairs` quota; a server copies its public key at boot (the Compute create
path looks it up with `find_keypair`). Nothing is enqueued. Decided here once: a
user's key pair names are unique (409), then the quota (413).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import Conflict
from isthmus.store import quotas, repo
from isthmus.store.tables import Resource


def find_keypair(session: Session, user_id: str, name: str) -> Resource | None:
    """The user's live key pair called `name` (None: none)."""
    rows = session.scalars(
        select(Resource).where(
            Resource.kind == "keypair", Resource.name == name, Resource.deleting.is_(False)
        )
    )
    return next((k for k in rows if k.spec.get("user_id") == user_id), None)


def add_keypair(
    session: Session, *, project_id: str, user_id: str, name: str, spec: dict[str, Any]
) -> Resource:
    """A new key pair of `user_id` (its public key etc. in `spec`)."""
    if find_keypair(session, user_id, name) is not None:
        raise Conflict(f"Key pair '{name}' already exists.")
    quotas.check(session, project_id, {"key_pairs": 1})
    return repo.add(
        session,
        "keypair",
        project_id=project_id,
        name=name,
        status="ACTIVE",
        spec={"user_id": user_id, **spec},
    )


def delete_keypair(session: Session, keypair: Resource) -> None:
    repo.mark_deleting(session, keypair)
