"""``python -m opera_disp.cli``: the same as ``opera-disp``."""

import sys

from . import main

sys.exit(main())
