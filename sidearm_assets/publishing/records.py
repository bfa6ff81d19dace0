"""What the watcher tells its caller: each game's latest outcome and a drain of counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from sidearm_assets.domain.live import LiveUpdate


class TransientError(RuntimeError):
    """Worth retrying soon: the version stays unhandled. `store_outage`: a store (S3, MongoDB,
    sidearmdb) failed, so other games' versions may have merged meanwhile too."""

    store_outage = True


class NotScheduledYet(TransientError):
    """The game has no schedule row in the cached reference data yet, and the cache is being
    re-read: this game waits, the stores are fine."""

    store_outage = False


class WatcherClosed(RuntimeError):
    """The watcher was closed (or the interpreter is exiting): it takes no more work."""


@dataclass
class Outcome:
    """The latest thing that happened to a game, kept until a tick reports it."""

    game_id: str
    version: str
    at: float  # time.time()
    size: int = 0  # bytes of the version
    update: LiveUpdate | None = None  # parsed (and maybe published) version
    published: bool = False  # a document was written
    skipped: str | None = None  # on purpose: why
    failed: str | None = None  # for good until the object changes: why


@dataclass
class Drained:
    """What the watcher did since the previous drain (for one sensor tick)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)  # game -> latest outcome
    published: int = 0  # documents written (versions, not counting rebuilt missed events)
    rebuilt: int = 0  # documents rebuilt for missed events
    superseded_deleted: int = 0
    errors: list[str] = field(default_factory=list)  # transient errors (bounded)
    failures: dict[str, str] = field(default_factory=dict)  # game -> standing failure reason
    listings: int = 0
    listing_seconds: float = 0.0
    handle_seconds: list[float] = field(default_factory=list)
    games_listed: int = 0
    reference_age: float | None = None
    reference_error: str | None = None
