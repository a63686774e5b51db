"""``python -m replobj.demo``: the demo; ``python -m replobj.demo member ...``: one member."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
