"""``ws4redis.connection`` is now ``ws4redis.runtime.gevent.connection``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.runtime.gevent.connection import *  # noqa: F403
else:
    from ws4redis.runtime.gevent import connection as _moved

    sys.modules[__name__] = _moved
