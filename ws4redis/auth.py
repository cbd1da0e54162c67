"""``ws4redis.auth`` is now ``ws4redis.integration.auth``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.integration.auth import *  # noqa: F403
else:
    from ws4redis.integration import auth as _moved

    sys.modules[__name__] = _moved
