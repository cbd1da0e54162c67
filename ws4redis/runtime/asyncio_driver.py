"""Placeholder until the sans-I/O core and the asyncio hub are merged (see the report)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


async def serve(handshake: Any, scope: Mapping[str, Any], receive: Any, send: Any) -> None:
    raise NotImplementedError("the asyncio driver needs ws4redis.core")


async def close_hub() -> None:
    return None
