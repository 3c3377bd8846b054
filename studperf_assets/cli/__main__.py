"""``python -m studperf_assets.cli``: what ``studperf up`` runs its parts with."""

import sys

from studperf_assets.cli.main import main

sys.exit(main())
