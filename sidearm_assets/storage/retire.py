"""Retiring ended games from the bucket's top level, and bringing one back.

Every `.txt` object at the bucket's top level is a game (SPEC 2), so the live watcher lists each
of them on every poll: a game that ended weeks ago costs nothing else (its version is handled),
but it still costs its listing entry. On the embedded S3 server a listing costs ~0.1 ms of
server CPU per key (200 keys 20 ms, 2,000 keys 191 ms, 5,000 keys 504 ms, measured), so a season
left in the bucket would slow every poll (SPEC 8: the per-poll cost must not grow with ended games).

`sidearm-games retire` removes the top-level object of every game whose object is byte for byte
its archived completion (`completed/<game>.txt`, same ETag) and has not changed for a while
(default 6 hours: corrections come soon after a game, and a retired game needs a restore first).
Nothing is lost: the archive holds the same bytes, the final tables count from the record and
the archive, MongoDB keeps the box-score documents, and the live watcher forgets a deleted game.
A game that changed since it ended (a correction, a replay) or was never archived is kept, with
the reason. `sidearm-games restore GAME` copies the archived bytes back to the top level (the
watcher publishes the same final document again, idempotently); the ingest API answers 409 for a
retired game until then, so a correction never starts an empty stream over a finished game.

No Dagster import. `store` is a `GameStreamStore`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

DEFAULT_ENDED_FOR = timedelta(hours=6)


class RetireError(RuntimeError):
    """A restore that cannot be done (not archived, already live)."""


@dataclass
class RetirePlan:
    retire: list[str] = field(default_factory=list)
    keep: dict[str, str] = field(default_factory=dict)  # game -> why it stays


def plan_retirement(live: dict, archived: dict, now: datetime, ended_for: timedelta) -> RetirePlan:
    """Which top-level games may go: `live` and `archived` map game id -> `ObjectVersion`."""
    if ended_for < timedelta(0):
        raise ValueError(f"ended_for must not be negative, got {ended_for}")
    plan = RetirePlan()
    for game_id in sorted(live):
        obj, filed = live[game_id], archived.get(game_id)
        age = now - obj.last_modified
        if filed is None:
            plan.keep[game_id] = "not in the archive of completed games (not over, or not filed yet)"
        elif filed.etag != obj.etag:
            plan.keep[game_id] = "its object differs from its archived completion (changed since it ended)"
        elif age < ended_for:
            plan.keep[game_id] = f"unchanged for {_span(age)} only (retired after {_span(ended_for)})"
        else:
            plan.retire.append(game_id)
    return plan


@dataclass
class RetireReport:
    retired: list[str]
    keep: dict[str, str]
    dry_run: bool


def retire_ended_games(store, ended_for: timedelta = DEFAULT_ENDED_FOR, now: datetime | None = None,
                       dry_run: bool = False) -> RetireReport:
    archived = store.list_archive()
    plan = plan_retirement(store.list_games(), archived, now or datetime.now(timezone.utc), ended_for)
    retired = []
    for game_id in plan.retire:
        if dry_run:
            retired.append(game_id)
            continue
        _, current = store.read(game_id)  # looked at again just before: a put since the listing wins
        if current.etag != archived[game_id].etag:
            plan.keep[game_id] = "changed while retiring"
            continue
        store.delete_game(game_id)
        retired.append(game_id)
    return RetireReport(retired, plan.keep, dry_run)


def restore_game(store, game_id: str):
    """Copy a retired game's archived bytes back to its top-level object; returns the bytes' size."""
    if game_id in store.list_games():
        raise RetireError(f"{game_id} is in the bucket's top level already: nothing to restore")
    try:
        data, _ = store.read_archive(game_id)
    except Exception as exc:
        raise RetireError(f"{game_id} has no archived completion to restore from ({exc})") from exc
    store.write(game_id, data)
    return len(data)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
