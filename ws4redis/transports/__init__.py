"""``ws4redis.transports`` is now ``ws4redis.runtime.gevent.transport`` (the interface) with its implementations
beside it; ``Transport`` keeps this path, and each former submodule is an alias of its new module."""

from __future__ import annotations

from ws4redis.runtime.gevent.transport import Transport

__all__ = ["Transport"]
