"""``ws4redis.presence_query`` is now ``ws4redis.broker.presence_query``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.broker.presence_query import *  # noqa: F403
else:
    from ws4redis.broker import presence_query as _moved

    sys.modules[__name__] = _moved
