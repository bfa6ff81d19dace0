"""The live box-score sensor: watches the bucket and publishes each new object version at once.

Design (docs/live-latency.md has the measurements and trade-offs): the daemon evaluates a
sensor at most every 5 s and a launched run costs over a second of process start, so a run per
change cannot make a box score fresh within half a second. This sensor therefore keeps watching
inside its tick: it lists the bucket every `SIDEARM_LIVE_POLL_SECONDS`, and for each game
whose object version changed it reads the object, builds the document and upserts it right
away (the same `live_update` the `boxscore_doc` asset runs). At the end of the tick it reports
what it did to Dagster as materializations of `raw_gamestream` and `boxscore_doc` for the
game's partition, with check results, and adds partitions for new games, all in one
`SensorResult`. The cursor holds the last version published per game, so a version is
published once; a failed write leaves the cursor alone and the next poll retries.
"""


import json
import time
from dataclasses import dataclass, field

from dagster import (
    AddDynamicPartitionsRequest,
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sidearm_assets import settings
from sidearm_assets.assets.live import boxscore_metadata, raw_metadata
from sidearm_assets.domain.games import UnscheduledGameError, matchup
from sidearm_assets.domain.live import check_outcomes, live_update
from sidearm_assets.partitions import games_partitions
from sidearm_assets.resources import BoxScoreStore, GameStreamStore, ReferenceDatabase


# The daemon starts a sensor loop at most every 5 s: a tick shorter than this makes the loop
# sleep with nobody watching the bucket. While other games are live, an early end (a game went
# final) never comes sooner than this; with no other game live it comes at once (docs/live-latency.md).
MIN_TICK_SECONDS = 4.8
# After a final document, keep watching this long for the `-1` line that usually follows at once.
FINAL_GRACE_SECONDS = 0.5
# The tick after an early end, when no other game is live: just long enough for the daemon to
# evaluate the game-over sensor next, whatever order it shuffles the sensors into.
BRIEF_WATCH_SECONDS = 1.0
# A game counts as live when its object changed this recently and its last document is not final.
LIVE_RECENT_SECONDS = 15 * 60


@dataclass
class LiveCursor:
    """Per game, the last object version handled (published, or skipped for a documented reason).

    `final_games`: games whose last document is final. `next_watch`: set when the last tick ended
    early because a game went final; the daemon evaluates the sensors in a shuffled order each
    pass, and a short next tick makes sure the game-over sensor's turn comes soon whichever order
    comes next, instead of after a full watch.
    """

    versions: dict[str, str] = field(default_factory=dict)
    final_games: set[str] = field(default_factory=set)
    next_watch: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> "LiveCursor":
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(dict(data.get("versions", {})), set(data.get("final_games", [])), data.get("next_watch"))
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor republishes current versions: writes are idempotent

    def dump(self) -> str:
        return json.dumps(
            {"versions": self.versions, "final_games": sorted(self.final_games), "next_watch": self.next_watch},
            sort_keys=True,
        )

    def other_live_games(self, listing: dict, game_ids: list[str]) -> list[str]:
        """Games in the listing, besides `game_ids`, that changed recently and are not final."""
        now = time.time()
        return [
            g for g, obj in listing.items()
            if g not in game_ids and g not in self.final_games
            and now - obj.last_modified.timestamp() < LIVE_RECENT_SECONDS
        ]


@dataclass
class TickWork:
    """What one tick did, turned into a SensorResult at its end."""

    events: list = field(default_factory=list)
    checks: dict = field(default_factory=dict)  # game id -> check evaluations of its latest version
    finished: list[str] = field(default_factory=list)  # games whose final document this tick wrote
    new_partitions: list[str] = field(default_factory=list)
    published: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _Reference:
    """Reference data read at most once per tick, and only when a game changed."""

    def __init__(self, db: ReferenceDatabase):
        self._db = db
        self._rows = None

    def rows(self):
        if self._rows is None:
            self._rows = (self._db.games(), self._db.teams(), self._db.players())
        return self._rows


def watch_bucket(
    context: SensorEvaluationContext,
    gamestreams: GameStreamStore,
    boxscores: BoxScoreStore,
    sidearmdb: ReferenceDatabase,
    watch_seconds: float,
    poll_seconds: float,
    min_tick_seconds: float = MIN_TICK_SECONDS,
) -> SensorResult | SkipReason:
    cursor = LiveCursor.parse(context.cursor)
    if cursor.next_watch is not None:
        watch_seconds = min(watch_seconds, cursor.next_watch)
        cursor.next_watch = None
    known = set(context.instance.get_dynamic_partitions(games_partitions.name))
    reference = _Reference(sidearmdb)
    work = TickWork()
    failed: set[str] = set()  # games whose write failed this tick: retried next tick
    started = time.time()
    deadline = time.monotonic() + watch_seconds
    earliest_end = time.monotonic() + min_tick_seconds
    first = True
    while True:
        try:
            listing = gamestreams.list_games()
        except Exception as exc:
            if first:
                return SkipReason(f"cannot list s3://{gamestreams.bucket}: {exc}")
            work.errors.append(f"listing failed: {exc}")
            break
        first = False
        for game_id, obj in sorted(listing.items()):
            if game_id in failed or cursor.versions.get(game_id) == obj.version:
                continue
            _publish(context, game_id, gamestreams, boxscores, reference, cursor, known, work, failed)
        if work.finished and cursor.next_watch is None:
            # End the tick soon, so the game-over sensor, evaluated next, sees the game: at once when
            # no other game is live, else not before one daemon loop (never leave live games unwatched).
            others = cursor.other_live_games(listing, work.finished)
            end = time.monotonic() + FINAL_GRACE_SECONDS
            deadline = min(deadline, max(end, earliest_end) if others else end)
            cursor.next_watch = min_tick_seconds if others else BRIEF_WATCH_SECONDS
        if time.monotonic() + poll_seconds >= deadline:
            break
        time.sleep(poll_seconds)

    since = time.strftime("%H:%M:%S", time.gmtime(started)) + f"{started % 1:.3f}"[1:]
    context.log.info(f"watched {time.time() - started:.2f} s from {since}, published {work.published} version(s)")
    work.events.extend(e for evaluations in work.checks.values() for e in evaluations)
    if not work.events and not work.new_partitions:
        reason = "; ".join(work.errors + work.skipped) or "no game object changed"
        return SensorResult(cursor=cursor.dump(), skip_reason=f"{reason} (watched {watch_seconds:.1f} s)")
    return SensorResult(
        asset_events=work.events,
        dynamic_partitions_requests=(
            [AddDynamicPartitionsRequest(games_partitions.name, work.new_partitions)]
            if work.new_partitions
            else []
        ),
        cursor=cursor.dump(),
    )


def _publish(context, game_id, gamestreams, boxscores, reference, cursor, known, work, failed) -> None:
    try:
        data, version = gamestreams.read(game_id)
    except Exception as exc:  # deleted between listing and read, or S3 down: next poll decides
        context.log.warning(f"{game_id}: cannot read its object: {exc}")
        return
    try:
        games, teams, players = reference.rows()
        game = matchup(game_id, games, teams)
    except UnscheduledGameError as exc:
        context.log.warning(str(exc))
        work.skipped.append(f"{game_id} not scheduled")
        cursor.versions[game_id] = version.version  # skipped on purpose; a new version retries
        return
    except Exception as exc:
        context.log.error(f"{game_id}: cannot read reference data: {exc}")
        work.errors.append(f"{game_id}: reference data: {exc}")
        failed.add(game_id)
        return
    update = live_update(game, data, version.version, version.last_modified.isoformat(), players)
    if update.doc is not None:
        try:
            boxscores.upsert(update.doc)
        except Exception as exc:
            context.log.error(f"{game_id}: box score not written, retried next tick: {exc}")
            work.errors.append(f"{game_id}: MongoDB: {exc}")
            failed.add(game_id)
            return
    cursor.versions[game_id] = version.version
    if game_id not in known:
        known.add(game_id)
        work.new_partitions.append(game_id)
    work.published += 1
    raw_key, doc_key = AssetKey("raw_gamestream"), AssetKey("boxscore_doc")
    work.events.append(
        AssetMaterialization(raw_key, partition=game_id, metadata=raw_metadata(game_id, data, version.version))
    )
    work.events.append(
        AssetMaterialization(doc_key, partition=game_id, metadata=boxscore_metadata(update))
    )
    if update.doc is not None and update.doc["final"]:
        work.finished.append(game_id)
        cursor.final_games.add(game_id)
    else:
        cursor.final_games.discard(game_id)
    # Checks are reported for each game's latest version in the tick: every version's figures are
    # in its materialization's metadata, and fewer events keep the daemon's pause between ticks
    # short. Reported without `partition=`: Dagster 1.13.27 stores a second runless evaluation
    # of the same check and partition as a duplicate row and fails the whole tick (UNIQUE
    # constraint on asset_check_executions); the game and version are in the metadata instead.
    # Runs of `boxscore_doc` record per-partition check results as usual.
    work.checks[game_id] = [
        AssetCheckEvaluation(
            asset_key=doc_key, check_name=o.name, passed=o.passed,
            metadata={"game_id": game_id, "version": version.version, **o.metadata},
            severity=AssetCheckSeverity(o.severity), description=f"{game_id}: {o.description}",
        )
        for o in check_outcomes(update, players)
    ]
    context.log.info(f"published {update.summary()}")


LIVE_RUN_ASSETS = [
    AssetKey("reference_teams"), AssetKey("reference_players"), AssetKey("raw_gamestream"), AssetKey("boxscore_doc"),
]


def request_runs(context: SensorEvaluationContext, gamestreams: GameStreamStore) -> SensorResult | SkipReason:
    """`SIDEARM_LIVE_MODE=runs`: one run of the live assets per new object version instead.

    Slower (the daemon's 5 s loop plus a run's process start: seconds per change, see
    docs/live-latency.md) but every version gets a run with its own logs and retries. The run
    key is `<game_id>:<ETag@LastModified>`; the run reads the object as it is when it starts, so
    under a fast stream one run may reflect a later version than its key (its metadata says which).
    """
    cursor = LiveCursor.parse(context.cursor)
    try:
        listing = gamestreams.list_games()
    except Exception as exc:
        return SkipReason(f"cannot list s3://{gamestreams.bucket}: {exc}")
    known = set(context.instance.get_dynamic_partitions(games_partitions.name))
    requests, new_partitions = [], []
    for game_id, obj in sorted(listing.items()):
        if cursor.versions.get(game_id) == obj.version:
            continue
        if game_id not in known:
            new_partitions.append(game_id)
        requests.append(
            RunRequest(
                run_key=f"{game_id}:{obj.version}",
                partition_key=game_id,
                asset_selection=LIVE_RUN_ASSETS,
                tags={"sidearm/game_id": game_id, "sidearm/version": obj.version},
            )
        )
        cursor.versions[game_id] = obj.version
    if not requests:
        return SkipReason(f"no game object changed ({len(listing)} game(s) in s3://{gamestreams.bucket})")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=(
            [AddDynamicPartitionsRequest(games_partitions.name, new_partitions)] if new_partitions else []
        ),
        cursor=cursor.dump(),
    )


@sensor(
    name="gamestream_sensor",
    asset_selection=LIVE_RUN_ASSETS,  # what `runs` mode requests; `watch` mode reports the same assets
    minimum_interval_seconds=1,  # the daemon's loop floor is 5 s; the tick itself watches longer
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the game-stream bucket and publishes each new object version's box score at once.",
)
def gamestream_sensor(
    context: SensorEvaluationContext,
    gamestreams: GameStreamStore,
    boxscores: BoxScoreStore,
    sidearmdb: ReferenceDatabase,
):
    if settings.LIVE_MODE.value() == "runs":
        return request_runs(context, gamestreams)
    return watch_bucket(
        context,
        gamestreams,
        boxscores,
        sidearmdb,
        watch_seconds=float(settings.LIVE_WATCH_SECONDS.value()),
        poll_seconds=float(settings.LIVE_POLL_SECONDS.value()),
    )
