"""``ws4redis.asgi.refusal`` is now ``ws4redis.servers.asgi.refusal``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.servers.asgi.refusal import *  # noqa: F403
else:
    from ws4redis.servers.asgi import refusal as _moved

    sys.modules[__name__] = _moved
