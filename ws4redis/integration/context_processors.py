"""Template context: ``WEBSOCKET_URI`` (``ws://`` or ``wss://`` as the request is secure) and ``WS4REDIS_HEARTBEAT``."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.utils.safestring import mark_safe

from ws4redis import settings

__all__ = ["default"]


def default(request: HttpRequest) -> dict[str, Any]:
    """The original's context processor, unchanged in meaning."""
    scheme = "wss://" if request.is_secure() else "ws://"
    heartbeat = settings.get("WS4REDIS_HEARTBEAT")
    return {
        "WEBSOCKET_URI": f"{scheme}{request.get_host()}{settings.get('WEBSOCKET_URL')}",
        # A JavaScript literal, as the original gave: "--heartbeat--" or null.
        "WS4REDIS_HEARTBEAT": mark_safe(json.dumps(heartbeat).replace("<", "\\u003c")),
    }
