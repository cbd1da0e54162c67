"""``ws4redis.asgi.handshake`` is now ``ws4redis.servers.asgi.handshake``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.servers.asgi.handshake import *  # noqa: F403
else:
    from ws4redis.servers.asgi import handshake as _moved

    sys.modules[__name__] = _moved
