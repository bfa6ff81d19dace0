import sys

from sidearm_assets.lake.backfill import main

sys.exit(main())
