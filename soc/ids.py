"""Deterministic record ids: the same input always gets the same id, so a replay overwrites
instead of duplicating (DESIGN.md, delivery is at-least-once end to end)."""

from __future__ import annotations

import hashlib


def stable_id(*parts: str | bytes) -> str:
    """A 32-hex-digit id from the parts; parts are length-prefixed so ('ab','c') != ('a','bc')."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
