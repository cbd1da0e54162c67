"""``ws4redis.redis_store`` is now ``ws4redis.broker.redis_store``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.broker.redis_store import *  # noqa: F403
else:
    from ws4redis.broker import redis_store as _moved

    sys.modules[__name__] = _moved
