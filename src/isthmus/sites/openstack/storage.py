"""Cinder and Glance kinds: volume, snapshot, image.

These are asynchronous in every cloud (a volume is `creating`, then
`available`; an attachment `attaching`, then `in-use`). `ensure` waits up to the
site's `settle_seconds` for each step to settle, so a volume can be created and
attached in one call; past that it returns the transient status and the engine
polls.

- volume: size (grown with os-extend, never shrunk, in use too), type, source
  (the site's snapshot, volume or image copy it is made from), metadata
  `isthmus_id`/`isthmus_name`; attached through Nova's os-volume_attachments to
  the site server of `attached_server_id`, detached when that is None. Deleting
  an attached volume detaches it first; a volume whose snapshots are still in
  the site waits for them.
- snapshot: of the site volume, forced (a volume may be in use).
- image: created private with property `isthmus_id`, its data uploaded from
  `spec.data_path`; the md5 the site computed must equal `spec.checksum`, else
  the site image is deleted and the copy retried (TemporaryError). The upload
  reports its progress (bytes sent) through sites/progress.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from openstack import exceptions as sdk

from isthmus.errors import PermanentError, TemporaryError
from isthmus.model.specs import ImageSpec, SnapshotSpec, VolumeSpec
from isthmus.sites import progress
from isthmus.sites.base import Observed
from isthmus.sites.openstack.common import (
    MARKER,
    NAME_KEY,
    Kind,
    field,
    get_or_none,
    isthmus_id_of,
    name_query,
    site_name,
)

if TYPE_CHECKING:
    from openstack.connection import Connection

VOLUME_TRANSIENT = {"creating", "attaching", "detaching", "reserved", "downloading", "extending"}
VOLUME_STATUS = {"reserved": "attaching", "downloading": "creating"}
CHUNK = 1024 * 1024
DEFAULT_VOLUME_TYPE = "__DEFAULT__"


class HashingReader:
    """A file streamed as a request body (with its length) while its md5 is taken and
    the bytes sent so far are reported (sites/progress.py)."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.size = size
        self.sent = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        progress.report(0, size)

    def read(self, amount: int = -1) -> bytes:
        chunk = self.file.read(amount)
        self.md5.update(chunk)
        if chunk:
            self.sent += len(chunk)
            progress.report(self.sent, self.size)
        return chunk

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.read(CHUNK), b"")


class Volumes(Kind[VolumeSpec]):
    kind = "volume"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        return conn.block_storage.volumes(**name_query(name))

    def going(self, obj: Any) -> bool:
        return str(field(obj, "status")) in ("deleting", "deleted")

    def status(self, obj: Any) -> str:
        status = str(field(obj, "status", "creating"))
        return VOLUME_STATUS.get(status, status)

    def details(self, obj: Any) -> dict[str, Any]:
        details: dict[str, Any] = {"size_gb": field(obj, "size")}
        server = self._attached_to(obj)
        if server:
            details["attached_server_site_id"] = server
            found = self._server_isthmus_id(server)
            if found:
                details["attached_server_id"] = found
        return details

    def _attached_to(self, obj: Any) -> str | None:
        attachments = field(obj, "attachments", []) or []
        return str(attachments[0].get("server_id")) if attachments else None

    def _server_isthmus_id(self, server_id: str) -> str | None:
        try:
            with self.errors("look up attached server"):
                server = self.conn.compute.get_server(server_id)
        except TemporaryError:  # a 404: the server is gone
            return None
        return isthmus_id_of(field(server, "name"))

    def _fetch(self, obj: Any) -> Any | None:
        with self.errors("look up"):
            return get_or_none(self.conn.block_storage.get_volume, obj.id)

    @staticmethod
    def _busy(obj: Any) -> bool:
        return str(field(obj, "status", "creating")) in VOLUME_TRANSIENT

    def _settle(self, obj: Any) -> Any:
        settled = self.site.settle(obj, self._fetch, self._busy)
        if settled is None:
            raise TemporaryError(f"volume {obj.name} vanished from site {self.site.name}", 1.0)
        return settled

    def ensure(self, spec: VolumeSpec) -> Observed:
        conn = self.conn
        obj = self.find(spec.isthmus_id)
        if obj is None:
            body: dict[str, Any] = {
                "name": site_name(spec.isthmus_id),
                "size": spec.size_gb,
                "description": spec.name,
                "metadata": {MARKER: spec.isthmus_id, NAME_KEY: spec.name[:255]},
            }
            if spec.volume_type and spec.volume_type != DEFAULT_VOLUME_TYPE:
                body["volume_type"] = spec.volume_type  # else the site's own default type
            body.update(self._source(spec))
            if self.site.availability_zone:
                body["availability_zone"] = self.site.availability_zone
            with self.errors("create", create=True):
                obj = conn.block_storage.create_volume(**body)
        obj = self._settle(obj)
        if obj.status not in ("available", "in-use"):
            return self.observed(obj, spec.isthmus_id)  # error, or still busy
        if field(obj, "description", "") != spec.name:
            with self.errors("update"):
                obj = conn.block_storage.update_volume(obj, description=spec.name)
        if spec.size_gb > int(obj.size or 0) and obj.status in ("available", "in-use"):
            with self.errors("extend"):
                # openstacksdk types block_storage as the v2 | v3 proxy union, each
                # method wanting its own version's Volume; the live proxy takes its own.
                conn.block_storage.extend_volume(obj, spec.size_gb)  # type: ignore[arg-type]
            obj = self._settle(self._fetch(obj) or obj)
        if not spec.root_of:
            obj = self._attach(obj, spec)
            return self.observed(obj, spec.isthmus_id)
        # a root volume is its server's to attach and let go: until the site's Nova
        # attached it, it is still attaching (the engine looks again); Nova boots only
        # from a volume marked bootable
        if not field(obj, "is_bootable", False) and obj.status == "available":
            with self.errors("set bootable"):
                conn.block_storage.set_volume_bootable_status(obj, True)  # type: ignore[arg-type]
        observed = self.observed(obj, spec.isthmus_id)
        if observed.status == "available":
            observed = dataclasses.replace(observed, status="attaching")
        return observed

    def _source(self, spec: VolumeSpec) -> dict[str, Any]:
        """What the site's Cinder makes a new volume from: the site's own snapshot,
        volume or image (the image's copy in this site) of the spec's source."""
        for key, kind, source in (
            ("snapshot_id", "snapshot", spec.snapshot_id),
            ("source_volid", "volume", spec.source_volid),
            ("imageRef", "image", spec.image_id),
        ):
            if source:
                return {key: self.site.kinds[kind].require(source, f"volume {spec.isthmus_id}").id}
        return {}

    def _attach(self, obj: Any, spec: VolumeSpec) -> Any:
        """Attach `obj` to the site server of spec.attached_server_id, or detach it."""
        want = None
        if spec.attached_server_id:
            want = (
                self.site.kinds["server"]
                .require(spec.attached_server_id, f"volume {spec.isthmus_id}")
                .id
            )
        current = self._attached_to(obj)
        if current and current != want:
            obj = self._detach(obj, current)
        if want and self._attached_to(obj) != want and obj.status == "available":
            attachment: dict[str, Any] = {"volumeId": obj.id}
            if spec.device:
                attachment["device"] = spec.device
            with self.errors("attach"):
                response = self.conn.compute.post(
                    f"/servers/{want}/os-volume_attachments",
                    json={"volumeAttachment": attachment},
                )
                sdk.raise_from_response(response)
            obj = self._settle(self._fetch(obj) or obj)
        return obj

    def _detach(self, obj: Any, server_id: str) -> Any:
        """Detach `obj` from the site server; the root disk of a server (booted from
        it, being deleted) is let go by that server's deletion: look again later."""
        try:
            with self.errors("detach"):
                response = self.conn.compute.delete(
                    f"/servers/{server_id}/os-volume_attachments/{obj.id}"
                )
                if response.status_code != 404:
                    sdk.raise_from_response(response)
        except PermanentError as exc:
            if "root device" not in str(exc):
                raise
            raise TemporaryError(
                f"volume {obj.id} is the root disk of site server {server_id}: it is let go"
                " when that server is deleted",
                2.0,
            ) from exc
        return self._settle(self._fetch(obj) or obj)

    def delete(self, isthmus_id: str) -> None:
        conn = self.conn
        for found in self.find_all(isthmus_id):
            obj = self.site.settle(found, self._fetch, self._busy)
            if obj is None or self.going(obj):
                continue  # gone or going: done
            if self._busy(obj):
                raise TemporaryError(
                    f"volume {isthmus_id} is {obj.status} in site {self.site.name}; it is"
                    " deleted once that settles",
                    2.0,
                )
            server = self._attached_to(obj)
            if server:
                obj = self._detach(obj, server)
            self._wait_for_snapshots(obj, isthmus_id)
            with self.errors("delete"):
                conn.block_storage.delete_volume(obj, ignore_missing=True)

    def _wait_for_snapshots(self, obj: Any, isthmus_id: str) -> None:
        def snapshots(_: Any) -> list[Any]:
            with self.errors("list snapshots"):
                return list(self.conn.block_storage.snapshots(volume_id=obj.id))

        found = snapshots(None)
        live = [s for s in found if s.volume_id == obj.id and s.status != "deleting"]
        if live:
            raise TemporaryError(
                f"volume {isthmus_id} still has {len(live)} snapshot(s) in site {self.site.name}",
                2.0,
            )
        left = self.site.settle(found, snapshots, lambda s: any(x.volume_id == obj.id for x in s))
        if any(x.volume_id == obj.id for x in left or []):
            raise TemporaryError(
                f"volume {isthmus_id} waits for its snapshots to leave site {self.site.name}", 2.0
            )

    def remove(self, conn: Connection, obj: Any) -> None:  # pragma: no cover - see delete
        conn.block_storage.delete_volume(obj, ignore_missing=True)


class Snapshots(Kind[SnapshotSpec]):
    kind = "snapshot"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        return conn.block_storage.snapshots(**name_query(name))

    def going(self, obj: Any) -> bool:
        return str(field(obj, "status")) in ("deleting", "deleted")

    def status(self, obj: Any) -> str:
        return str(field(obj, "status", "creating"))

    def _fetch(self, obj: Any) -> Any | None:
        with self.errors("look up"):
            return get_or_none(self.conn.block_storage.get_snapshot, obj.id)

    def ensure(self, spec: SnapshotSpec) -> Observed:
        conn = self.conn
        obj = self.find(spec.isthmus_id)
        if obj is None:
            volume = self.site.kinds["volume"].require(
                spec.volume_id, f"snapshot {spec.isthmus_id}"
            )
            with self.errors("create", create=True):
                obj = conn.block_storage.create_snapshot(
                    name=site_name(spec.isthmus_id),
                    volume_id=volume.id,
                    description=spec.name,
                    is_forced=True,
                    metadata={MARKER: spec.isthmus_id, NAME_KEY: spec.name[:255]},
                )
        obj = self.settle(obj, self._fetch, {"creating"}) or obj
        if obj.status == "available" and field(obj, "description", "") != spec.name:
            with self.errors("update"):
                # v2 | v3 proxy union in openstacksdk's hints, as for extend_volume above
                obj = conn.block_storage.update_snapshot(obj, description=spec.name)  # type: ignore[arg-type]
        return self.observed(obj, spec.isthmus_id)

    def remove(self, conn: Connection, obj: Any) -> None:
        obj = self.settle(obj, self._fetch, {"creating"})
        if obj is None:
            return
        if obj.status == "creating":
            raise TemporaryError(
                f"snapshot {obj.name} is still creating in site {self.site.name}; it is"
                " deleted once that settles",
                2.0,
            )
        conn.block_storage.delete_snapshot(obj, ignore_missing=True)


class Images(Kind[ImageSpec]):
    kind = "image"

    def listing(self, conn: Connection, name: str | None) -> Iterable[Any]:
        query: dict[str, Any] = {"owner": conn.current_project_id}
        if name:
            query["name"] = name
        return conn.image.images(**query)

    def going(self, obj: Any) -> bool:
        return str(field(obj, "status")) in ("deleted", "pending_delete")

    def status(self, obj: Any) -> str:
        return str(field(obj, "status", "queued"))

    def _fetch(self, obj: Any) -> Any | None:
        with self.errors("look up"):
            return get_or_none(self.conn.image.get_image, field(obj, "id"))

    def ensure(self, spec: ImageSpec) -> Observed:
        if spec.snapshot_of:
            return self._snapshot(spec)
        conn = self.conn
        obj = self.find(spec.isthmus_id)
        if obj is not None and self.status(obj) == "killed":
            with self.errors("delete a failed copy"):
                conn.image.delete_image(obj, ignore_missing=True)
            obj = None
        if obj is not None and self.status(obj) == "active":
            return self.observed(obj, spec.isthmus_id)
        source = Path(spec.data_path)
        if not source.is_file():
            raise PermanentError(f"image {spec.isthmus_id} has no data at {source}")
        if obj is None:
            body = {
                "name": site_name(spec.isthmus_id),
                "disk_format": spec.disk_format,
                "container_format": spec.container_format,
                "visibility": "private",
                MARKER: spec.isthmus_id,
                NAME_KEY: spec.name[:255],
            }
            with self.errors("create", create=True):
                response = conn.image.post("/images", json=body)
                sdk.raise_from_response(response)
            obj = response.json()
        if self.status(obj) == "queued":
            self._upload(obj, source, spec)
            obj = self._fetch(obj) or obj
        obj = self.settle(obj, self._fetch, {"saving", "uploading", "importing"}) or obj
        return self.observed(obj, spec.isthmus_id)

    def _snapshot(self, spec: ImageSpec) -> Observed:
        """Nova's createImage of the site server, named for the image's Isthmus id
        (so it is this image's copy in the site); once the site's image is active,
        its bytes are downloaded to `spec.data_path` and the answer's `snapshot`
        detail has Glance's figures of them. Until then: `saving` (poll again)."""
        conn = self.conn
        obj = self.find(spec.isthmus_id)
        if obj is None:
            server = self.site.kinds["server"].find(spec.snapshot_of or "")
            if server is None:
                raise PermanentError(
                    f"image {spec.isthmus_id}: server {spec.snapshot_of} is not in site"
                    f" {self.site.name}"
                )
            with self.errors("create image of server", create=True):
                conn.compute.create_server_image(
                    server,
                    name=site_name(spec.isthmus_id),
                    metadata={MARKER: spec.isthmus_id, NAME_KEY: spec.name[:255]},
                )
            obj = self.find(spec.isthmus_id)
        if obj is not None:
            obj = self.settle(obj, self._fetch, {"queued", "saving", "uploading"}) or obj
        if obj is None or self.status(obj) != "active":
            if obj is not None and self.status(obj) == "killed":
                raise PermanentError(
                    f"site {self.site.name} failed to make image {spec.isthmus_id}"
                )
            return Observed("image", spec.isthmus_id, str(field(obj, "id", "")), "saving")
        target = Path(spec.data_path)
        part = target.with_name(target.name + ".part")
        md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
        with self.errors("download image data"), part.open("wb") as out:
            response = conn.image.download_image(obj, stream=True)
            for chunk in response.iter_content(chunk_size=1024 * 1024):
                out.write(chunk)
                md5.update(chunk)
                sha512.update(chunk)
                size += len(chunk)
        part.replace(target)
        stats = {
            "size": size,
            "checksum": md5.hexdigest(),
            "os_hash_algo": "sha512",
            "os_hash_value": sha512.hexdigest(),
        }
        observed = self.observed(obj, spec.isthmus_id)
        details = {**observed.details, "snapshot": stats}
        return Observed("image", spec.isthmus_id, observed.site_id, "active", None, details)

    def _upload(self, obj: Any, source: Path, spec: ImageSpec) -> None:
        image_id = field(obj, "id")
        with source.open("rb") as data, self.errors("upload data"):
            reader = HashingReader(data, source.stat().st_size)
            response = self.conn.image.put(
                f"/images/{image_id}/file",
                data=reader,
                headers={"Content-Type": "application/octet-stream"},
            )
            sdk.raise_from_response(response)
        uploaded = self._fetch(obj)
        site_md5 = field(uploaded, "checksum") or reader.md5.hexdigest()
        if spec.checksum and site_md5 != spec.checksum:
            with self.errors("delete a failed copy"):
                self.conn.image.delete_image(image_id, ignore_missing=True)
            raise TemporaryError(
                f"image {spec.isthmus_id} copy to site {self.site.name} failed its checksum"
                f" check (site has md5 {site_md5}, Isthmus {spec.checksum})",
                1.0,
            )

    def remove(self, conn: Connection, obj: Any) -> None:
        conn.image.delete_image(obj, ignore_missing=True)
