"""``ws4redis.streams`` is now ``ws4redis.integration.streams``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.integration.streams import *  # noqa: F403
else:
    from ws4redis.integration import streams as _moved

    sys.modules[__name__] = _moved
