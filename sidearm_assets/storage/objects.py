"""What a read of one object returns: its bytes, its version and its user metadata."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StoredObject:
    data: bytes
    etag: str | None  # None: no such object
    metadata: dict[str, str] = field(default_factory=dict)
