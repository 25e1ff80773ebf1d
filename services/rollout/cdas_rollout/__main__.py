"""``python -m cdas_rollout``: the same as the ``cdas-rollout`` command."""

import sys

from cdas_rollout.cli import main

sys.exit(main())
