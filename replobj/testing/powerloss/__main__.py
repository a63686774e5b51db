"""``python -m replobj.testing.powerloss``: run the power-loss filesystem daemon."""

from __future__ import annotations

import sys

from .daemon import main

sys.exit(main())
