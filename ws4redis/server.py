"""``ws4redis.server`` is now ``ws4redis.servers.gevent_server``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.servers.gevent_server import *  # noqa: F403
else:
    from ws4redis.servers import gevent_server as _moved

    sys.modules[__name__] = _moved
