"""``ws4redis.view_socket`` is now ``ws4redis.integration.view_socket``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.integration.view_socket import *  # noqa: F403
else:
    from ws4redis.integration import view_socket as _moved

    sys.modules[__name__] = _moved
