from dagster import DynamicPartitionsDefinition

# One partition per game; the key is the game id (`gamestream.txt` -> `gamestream`).
# Register one by hand: `dagster instance` has no command for it, so use
# `sidearm-games add GAME_ID` (docs in README) or let the live sensor add it.
games_partitions = DynamicPartitionsDefinition(name="games")
