"""The game simulator: replays a lacrosse game into the `gamestreams` bucket (SPEC 4).

Run it as `gamestream` (console script) or `python -m gamestream`; see `gamestream.simulator`.
"""
