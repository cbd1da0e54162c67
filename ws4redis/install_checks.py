"""``ws4redis.install_checks`` is now ``ws4redis.integration.install_checks``;
this path stays an alias of that module (the very same module object)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4redis.integration.install_checks import *  # noqa: F403
else:
    from ws4redis.integration import install_checks as _moved

    sys.modules[__name__] = _moved
