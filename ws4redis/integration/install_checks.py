"""System checks for how ws4redis is installed in a project (not for its settings' values).

``manage.py runserver`` is taken from the first app in ``INSTALLED_APPS`` that defines one: listed after
``django.contrib.staticfiles``, ws4redis' runserver (websockets on the same port) is silently replaced by the
staticfiles one, and ``/ws/...`` answers Django's 404. Django offers no public way for an app to win that race, so
the check says what to change; it is a warning because a project served by uWSGI never runs ``runserver`` and may
list its apps in any order (silence it with ``SILENCED_SYSTEM_CHECKS = ["ws4redis.W001"]``). ``runserver`` runs the
checks at start, so the warning is printed where the websocket banner is missing.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Tags, Warning, register

__all__ = ["W001", "runserver_order"]

W001 = "ws4redis.W001"
_STATICFILES = "django.contrib.staticfiles"


@register(Tags.compatibility)
def runserver_order(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when ``django.contrib.staticfiles`` comes before ``ws4redis``: its runserver would win."""
    names = [config.name for config in apps.get_app_configs()]
    if _STATICFILES not in names or "ws4redis" not in names:
        return []
    if names.index(_STATICFILES) > names.index("ws4redis"):
        return []
    return [
        Warning(
            "'ws4redis' comes after 'django.contrib.staticfiles' in INSTALLED_APPS, so `manage.py runserver` is "
            "staticfiles' command: it serves no websockets (their URLs answer 404).",
            hint='Put "ws4redis" before "django.contrib.staticfiles", e.g. '
                 'INSTALLED_APPS = ["ws4redis", *INSTALLED_APPS] (or silence ws4redis.W001 if you never use '
                 "runserver).",
            id=W001,
        )
    ]
