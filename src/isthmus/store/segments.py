"""Segment ids (VXLAN VNIs): one per network, unique among live networks.

A network's VNI is intent (`spec["segmentation_id"]`), chosen when the network is
created, so every site's driver gets the same id in its NetworkSpec. Ids come
from a counter (the `settings` row `next_vni`, locked FOR UPDATE on PostgreSQL;
SQLite serialises writers anyway), skipping ids live networks hold, and wrap at
the end of the range: a freed VNI is reused only after a full round.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from isthmus.errors import Conflict
from isthmus.store.tables import Resource, Setting

VNI_MIN = 1001
VNI_MAX = 16777215  # 2**24 - 1
COUNTER_KEY = "next_vni"


def vni_in_use(session: Session, vni: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    Resource.kind == "network",
                    Resource.deleting.is_(False),
                    Resource.spec["segmentation_id"].as_integer() == vni,
                )
            )
        )
    )


def allocate_vni(session: Session, low: int = VNI_MIN, high: int = VNI_MAX) -> int:
    """A VNI in [low, high] that no live network holds (a concurrent insert of the
    counter row raises IntegrityError: the caller's transaction is retried)."""
    counter = session.get(Setting, COUNTER_KEY, with_for_update=True)
    if counter is None:
        counter = Setting(key=COUNTER_KEY, value=str(low))
        session.add(counter)
        session.flush()
    candidate = int(counter.value)
    if not low <= candidate <= high:
        candidate = low
    for _ in range(min(high - low + 1, 100000)):
        if not vni_in_use(session, candidate):
            counter.value = str(low if candidate >= high else candidate + 1)
            return candidate
        candidate = low if candidate >= high else candidate + 1
    raise Conflict(f"No free segmentation id in {low}-{high}.", "NoNetworkAvailable")
