"""The original's ``ws4redis.models.store_groups_in_session`` (connected at app loading by ``ws4redis.apps``).

No models: this module only keeps the original's import path.
"""

from __future__ import annotations

from ws4redis.apps import store_groups_in_session

__all__ = ["store_groups_in_session"]
