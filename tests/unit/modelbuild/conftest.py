"""gyre-modelbuild is not an installed package (build.sh runs it with PYTHONPATH): put it on the path."""

from __future__ import annotations

import sys
from pathlib import Path

_LIB = Path(__file__).resolve().parents[3] / "libs" / "gyre-modelbuild"
if str(_LIB) not in sys.path:
    sys.path.insert(0, str(_LIB))
