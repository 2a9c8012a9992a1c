"""Image copies into an embedded site: chunked, sparse-aware, optionally paced, with
progress (sites/progress.py) and the md5 the site keeps to check the copy.

`copy_rate` (bytes/s, the local driver's config key of the same name; 0 = as fast as
the disk goes) simulates the WAN bandwidth between Isthmus and a remote site for the
embedded site, so a multi-GB copy behaves (and shows its progress) as it would over
a real link. Runs of zeros are not written but skipped (holes), so a sparse raw image
stays sparse in the site. Nothing is ever read whole into memory.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from isthmus.sites import progress

CHUNK = 1024 * 1024


def copy_image(source: Path, target: Path, copy_rate: float = 0.0) -> int:
    """Copy `source` to `target` in chunks, reporting progress; at most `copy_rate`
    bytes/s when that is > 0. Returns the number of bytes copied."""
    total = source.stat().st_size
    done = 0
    started = time.monotonic()
    progress.report(0, total)
    with source.open("rb") as src, target.open("wb") as out:
        while chunk := src.read(CHUNK):
            if chunk.count(0) == len(chunk):
                out.seek(len(chunk), 1)  # a hole: the file system reads zeros there
            else:
                out.write(chunk)
            done += len(chunk)
            if copy_rate > 0:
                ahead = started + done / copy_rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            progress.report(done, total)
        out.truncate(done)  # a trailing hole still counts for the size
    return done


def file_md5(path: Path) -> str:
    """The md5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_stats(path: Path) -> dict[str, object]:
    """Glance's figures of an image file: size, md5 `checksum` and sha512
    `os_hash_value`, read in chunks."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha512 = hashlib.sha512()
    size = 0
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            md5.update(chunk)
            sha512.update(chunk)
            size += len(chunk)
    return {
        "size": size,
        "checksum": md5.hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": sha512.hexdigest(),
    }
