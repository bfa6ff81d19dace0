"""Publishing one version's box-score document: the one protocol of the live path.

Used by the watcher for every new version and by a hand-started `boxscore_doc` run alike, so a
document is published the same way whichever path wrote it (SPEC 5).
"""

from __future__ import annotations

from sidearm_assets.publishing import signals


class PublishError(RuntimeError):
    """A store failed while a version was published; the message names which."""


def publish_version(gamestreams, boxscores, sidearmdb, doc: dict, data: bytes, supersede: bool,
                    version: str | None = None) -> int:
    """Upsert the document; when `supersede`, delete the game's documents of a stream it replaced
    (any other with a `seq` at or above its own: SPEC 5); for a final document, file the
    completion in sidearmdb's inbox (durable: the final tables count what is filed there), copy the
    bytes to the completed-games archive and wake the game-over sensor. Returns how many documents
    were deleted; raises `PublishError` naming the store that failed (the caller retries the
    version: every step is idempotent)."""
    try:
        boxscores.upsert(doc)
        deleted = boxscores.delete_superseded(doc["game_id"], doc["seq"], doc["_id"]) if supersede else 0
    except Exception as exc:
        raise PublishError(f"MongoDB: {exc}") from exc
    if doc["final"]:
        from sidearm_assets.storage.final_tables_db import Completion, file_completions

        try:
            file_completions(sidearmdb.filing_engine(), [Completion(doc["game_id"], data, version)])
        except Exception as exc:
            raise PublishError(f"final, but not filed in sidearmdb's completions: {exc}") from exc
        try:
            gamestreams.archive(doc["game_id"], data)
        except Exception as exc:
            raise PublishError(f"final, but not filed in the completed-games archive: {exc}") from exc
        signals.notify_completion()
    return deleted
