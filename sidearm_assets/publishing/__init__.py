"""The live path's engine, no Dagster import: what turns each new game-object version into its
box-score document.

- `publish`: what publishing one version's document means (the watcher and `boxscore_doc` alike).
- `watcher`: the loop that lists the bucket and publishes every changed game, in parallel.
- `reference_cache`: the reference rows, refreshed in the background.
- `rebuild`: documents of events missed during an outage, rebuilt from newer bytes.
- `background`: the watcher's thread, kept alive by a lease, one per code-server process.
- `records`: what the watcher reports to its caller (`Outcome`, `Drained`, `TransientError`).
- `signals`: the in-process "a game was filed as completed" wake-up for the game-over sensor.

Below `assets` and `sensors`, above `domain` and `storage`: both the live asset and the live
sensor import from here, and nothing here imports them.
"""
