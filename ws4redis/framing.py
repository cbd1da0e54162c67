"""``ws4redis.framing`` is now ``ws4redis.runtime.gevent.framing``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.runtime.gevent.framing import *  # noqa: F403
else:
    from ws4redis.runtime.gevent import framing as _moved

    sys.modules[__name__] = _moved
