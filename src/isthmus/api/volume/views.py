"""Cinder's volume and snapshot bodies, per microversion (api/volume/microversions.py).

`extended` bodies (show and list) carry what Cinder's API extensions add
(os-vol-tenant-attr, os-vol-host-attr and os-vol-mig-status-attr for admins,
volume_image_metadata of a volume made from an image,
os-extended-snapshot-attributes); create and update answers do not, as in
Cinder (Tempest's schemas forbid them there).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request

from isthmus.api.volume import microversions as mv
from isthmus.api.volume.common import self_links
from isthmus.store import repo
from isthmus.store.tables import Resource


def attachments(volume: Resource) -> list[dict[str, Any]]:
    if not volume.device_id:
        return []
    attachment_id = volume.spec.get("attachment_id") or str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"isthmus:attachment:{volume.id}:{volume.device_id}")
    )
    return [
        {
            "id": volume.id,
            "attachment_id": attachment_id,
            "volume_id": volume.id,
            "server_id": volume.device_id,
            "host_name": volume.spec.get("host_name"),
            "device": volume.spec.get("device"),
            "attached_at": volume.spec.get("attached_at"),
        }
    ]


def service_uuid(site: str | None) -> str | None:
    """The id of the "cinder-volume service" of a site: stable per site name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"isthmus:volume-service:{site}")) if site else None


def volume_body(
    request: Request,
    volume: Resource,
    admin: bool,
    types: dict[str, str],
    extended: bool = True,
) -> dict[str, Any]:
    """Cinder's volume view at the request's microversion."""
    spec = volume.spec
    type_id = spec.get("volume_type_id")
    body: dict[str, Any] = {
        "id": volume.id,
        "name": volume.name or None,
        "description": spec.get("description"),
        "status": "deleting" if volume.deleting else volume.status,
        "size": int(spec.get("size", 0)),
        "availability_zone": volume.site,
        "created_at": repo.isoformat(volume.created_at),
        "updated_at": repo.isoformat(volume.updated_at),
        "attachments": attachments(volume),
        "bootable": "true" if spec.get("bootable") else "false",
        "encrypted": False,
        "multiattach": False,
        "replication_status": None,
        "consistencygroup_id": None,
        "volume_type": types.get(type_id or "", spec.get("volume_type")),
        "metadata": dict(spec.get("metadata") or {}),
        "snapshot_id": spec.get("snapshot_id"),
        "source_volid": spec.get("source_volid"),
        "user_id": spec.get("user_id"),
        "links": self_links(request, volume.project_id, f"volumes/{volume.id}"),
    }
    if mv.at_least(request, mv.GROUP_VOLUME):
        body["group_id"] = None
    if admin and mv.at_least(request, mv.PROVIDER_ID):
        body["provider_id"] = None
    if mv.at_least(request, mv.SHARED_TARGETS):
        # Isthmus volumes never share an iSCSI target (locking never needed)
        body["shared_targets"] = False
        body["service_uuid"] = service_uuid(volume.site)
    if admin and mv.at_least(request, mv.CLUSTER_NAME):
        body["cluster_name"] = None
    if mv.at_least(request, mv.VOLUME_TYPE_ID):
        body["volume_type_id"] = type_id
    if mv.at_least(request, mv.CONSUMES_QUOTA):
        body["consumes_quota"] = True
    if extended:
        body["os-vol-tenant-attr:tenant_id"] = volume.project_id
        if spec.get("volume_image_metadata"):
            body["volume_image_metadata"] = dict(spec["volume_image_metadata"])
    if extended and admin:
        body["os-vol-host-attr:host"] = volume.site
        body["os-vol-mig-status-attr:migstat"] = None
        body["os-vol-mig-status-attr:name_id"] = None
    return body


def volume_summary(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": body["id"], "name": body["name"], "links": body["links"]}


def snapshot_body(request: Request, snapshot: Resource, extended: bool = True) -> dict[str, Any]:
    """Cinder's snapshot view at the request's microversion."""
    status = "deleting" if snapshot.deleting else snapshot.status
    body: dict[str, Any] = {
        "id": snapshot.id,
        "name": snapshot.name or None,
        "description": snapshot.spec.get("description"),
        "status": status,
        "size": int(snapshot.spec.get("size", 0)),
        "volume_id": snapshot.parent_id,
        "created_at": repo.isoformat(snapshot.created_at),
        "updated_at": repo.isoformat(snapshot.updated_at),
        "metadata": dict(snapshot.spec.get("metadata") or {}),
    }
    if mv.at_least(request, mv.GROUP_SNAPSHOTS):
        body["group_snapshot_id"] = None
    if mv.at_least(request, mv.SNAPSHOT_USER_ID):
        body["user_id"] = snapshot.spec.get("user_id")
    if mv.at_least(request, mv.CONSUMES_QUOTA):
        body["consumes_quota"] = True
    if extended:
        body["os-extended-snapshot-attributes:project_id"] = snapshot.project_id
        body["os-extended-snapshot-attributes:progress"] = "100%" if status == "available" else "0%"
    return body  # no links: Cinder's snapshot view has none (Tempest's schema forbids them)
