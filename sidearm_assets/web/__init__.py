"""`sidearm-web`: the live box-score page, rendered from the latest `sidearm.boxscores` document."""
