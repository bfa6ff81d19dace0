"""The live sensor's cursor: per game, the last object version handled and reported to Dagster."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class LiveCursor:
    """Per game, the last object version handled and reported to Dagster."""

    versions: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # game -> why its current version failed for good

    @classmethod
    def parse(cls, text: str | None) -> "LiveCursor":
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(
                {str(k): str(v) for k, v in data.get("versions", {}).items()},
                {str(k): str(v) for k, v in data.get("failures", {}).items()},
            )
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor republishes current versions: writes are idempotent

    def dump(self) -> str:
        return json.dumps({"versions": self.versions, "failures": self.failures}, sort_keys=True)
