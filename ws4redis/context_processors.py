"""``ws4redis.context_processors`` is now ``ws4redis.integration.context_processors``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.integration.context_processors import *  # noqa: F403
else:
    from ws4redis.integration import context_processors as _moved

    sys.modules[__name__] = _moved
