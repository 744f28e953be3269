"""What the agent keeps on disk: file offsets and the spool.

Both survive a crash at any instant: every file is written to a temporary name, flushed to disk
and renamed over (rename is atomic), then the directory is flushed, so a reader after a power cut
sees the old version or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from soc import metrics

log = logging.getLogger(__name__)


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class FileState:
    """A file's identity and the offset up to which its records are safe: acknowledged by the
    intake or in the spool."""

    dev: int
    ino: int
    fingerprint: str
    fingerprint_len: int
    generation: int
    offset: int
    path: str


class Offsets:
    """`offsets.json`: file identity key -> FileState, rewritten whole on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, FileState] = {}
        if path.exists():
            try:
                loaded: dict[str, Any] = orjson.loads(path.read_bytes())
                self.files = {key: FileState(**value) for key, value in loaded["files"].items()}
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                # Starting over re-sends files from their start: duplicates the store absorbs
                # (same ids), never a loss. Keep the bad file for a post-mortem.
                log.error("agent offsets unreadable, files are read again path=%s error=%s",
                          path, exc)  # fmt: skip
                os.replace(path, path.with_suffix(".corrupt"))

    def snapshot(self) -> bytes:
        return orjson.dumps({"files": {key: asdict(state) for key, state in self.files.items()}})


class Spool:
    """Batches (gzipped NDJSON request bodies) waiting for the intake, oldest first, one file
    each. `size` is what it holds on disk, against the configured bound."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(".*.tmp"):
            stale.unlink()
        self._entries = sorted(directory.glob("*.ndjson.gz"))
        self.size = sum(entry.stat().st_size for entry in self._entries)
        self._next = int(self._entries[-1].name.split(".")[0]) + 1 if self._entries else 0
        metrics.AGENT_SPOOL_BYTES.set(self.size)

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, body: bytes) -> None:
        path = self.directory / f"{self._next:016d}.ndjson.gz"
        self._next += 1
        write_atomically(path, body)
        self._entries.append(path)
        self.size += len(body)
        metrics.AGENT_SPOOL_BYTES.set(self.size)

    def head(self) -> tuple[Path, bytes]:
        path = self._entries[0]
        return path, path.read_bytes()

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self._entries.remove(path)
        self.size -= size
        metrics.AGENT_SPOOL_BYTES.set(self.size)

    def park(self, path: Path, parked: Path) -> None:
        """Set aside a batch the intake refuses outright, where an operator finds it."""
        parked.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size
        os.replace(path, parked / path.name)
        with contextlib.suppress(ValueError):
            self._entries.remove(path)
        self.size -= size
        metrics.AGENT_SPOOL_BYTES.set(self.size)
