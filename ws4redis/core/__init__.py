"""The pure core: what a websocket session decides, with no I/O (no gevent, asyncio, redis, Django or uWSGI import).

``Session`` (``session``) takes events and gives actions (``actions``); ``Config`` (``config``) is the settings it
reads, once; ``State`` (``state``) its states and their legal transitions; ``Delivery`` (``delivery``) a message from
Redis as sockets share it; ``protocol`` the wire protocols; ``codes`` the close codes. Drivers
(``ws4redis.runtime.gevent.connection``
on gevent, ``ws4redis.runtime.asyncio.connection``, ``ws4redis.servers.websocket_views``) do the I/O. See
``docs/architecture.md``.
"""

from __future__ import annotations

from ws4redis.core import actions
from ws4redis.core.codes import CloseCode
from ws4redis.core.config import Config
from ws4redis.core.delivery import Delivery, is_text
from ws4redis.core.session import DROPPED, FIRST, QUEUED, WAKE, Positions, Session
from ws4redis.core.state import TRANSITIONS, IllegalTransition, State

__all__ = [
    "DROPPED", "FIRST", "QUEUED", "TRANSITIONS", "WAKE", "CloseCode", "Config", "Delivery", "IllegalTransition",
    "Positions", "Session", "State", "actions", "is_text",
]
