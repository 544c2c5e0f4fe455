"""Files written durably and read with their checksum, in one pass over the bytes.

Creating a backup, verifying one and restoring one all stream a data file in chunks
while hashing it; ``stream_hashed`` is that loop, once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from limits import backup_read_chunk_bytes
from storage.backup.model import Progress


def stream_hashed(
    read: Callable[[int], bytes], out: BinaryIO | None, total: int, progress: Progress | None
) -> tuple[int, str]:
    """Read chunks from ``read`` until it returns none, hashing each and writing it to
    ``out`` (then fsyncing it) when one is given; return the byte count and SHA-256.

    ``total`` is the expected size, for ``progress``; a stream longer than expected
    reports its own length as the total.
    """
    digest = hashlib.sha256()
    done = 0
    while chunk := read(backup_read_chunk_bytes):
        if out is not None:
            out.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, max(total, done))
    if out is not None:
        out.flush()
        os.fsync(out.fileno())
    return done, digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
