"""Where blocking code runs for the asyncio driver: user code in a worker thread, Django work in Django's sync thread.

Apart from the connection so that the choice between the two is made in one place: a worker thread of the default
executor for code that may be slow and must hold only its own socket (message and disconnect hooks, presence signal
receivers, a custom subscriber), Django's thread-sensitive sync thread for what Django expects there (the run-time
subscribe policy), as Django's ASGI handler runs sync views.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

__all__ = ["in_django", "in_thread"]

T = TypeVar("T")


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Blocking user code off the loop (hooks, signal receivers), in a thread of the default executor."""
    return await asyncio.to_thread(func, *args)


async def in_django(func: Callable[..., T], *args: Any) -> T:
    """Django work (hooks, the policy) in Django's sync thread, as Django's ASGI handler runs sync views."""
    return await sync_to_async(func, thread_sensitive=True)(*args)
