import sys

from gamestream.simulator import main

sys.exit(main())
