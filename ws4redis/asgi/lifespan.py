"""``ws4redis.asgi.lifespan`` is now ``ws4redis.servers.asgi.lifespan``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.servers.asgi.lifespan import *  # noqa: F403
else:
    from ws4redis.servers.asgi import lifespan as _moved

    sys.modules[__name__] = _moved
