"""`sidearm-ingest`: scorers post events over HTTP; they land in the game's stream object (SPEC 9)."""
