"""``ws4redis.views`` is now ``ws4redis.integration.views``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.integration.views import *  # noqa: F403
else:
    from ws4redis.integration import views as _moved

    sys.modules[__name__] = _moved
