"""``ws4redis.revocation`` is now ``ws4redis.broker.revocation``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.broker.revocation import *  # noqa: F403
else:
    from ws4redis.broker import revocation as _moved

    sys.modules[__name__] = _moved
