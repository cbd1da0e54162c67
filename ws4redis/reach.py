"""``ws4redis.reach`` is now ``ws4redis.broker.reach``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.broker.reach import *  # noqa: F403
else:
    from ws4redis.broker import reach as _moved

    sys.modules[__name__] = _moved
