"""``python -m fastnn.cli``: the same as ``python -m fastnn``."""

import sys

from . import main

sys.exit(main())
