"""``ws4redis.presence_dispatch`` is now ``ws4redis.broker.presence_dispatch``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.broker.presence_dispatch import *  # noqa: F403
else:
    from ws4redis.broker import presence_dispatch as _moved

    sys.modules[__name__] = _moved
