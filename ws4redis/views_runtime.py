"""``ws4redis.views_runtime`` is now ``ws4redis.servers.websocket_views``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.servers.websocket_views import *  # noqa: F403
else:
    from ws4redis.servers import websocket_views as _moved

    sys.modules[__name__] = _moved
