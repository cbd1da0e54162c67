"""``ws4redis.asgi.routing`` is now ``ws4redis.servers.asgi.routing``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.servers.asgi.routing import *  # noqa: F403
else:
    from ws4redis.servers.asgi import routing as _moved

    sys.modules[__name__] = _moved
