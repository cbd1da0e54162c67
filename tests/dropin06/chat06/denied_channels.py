"""The 0.6 test project's channel hook: a request carrying ``Deny-Channels: YES`` may not use any channel."""

from django.core.exceptions import PermissionDenied


def denied_channels(request, channels):
    if request.META.get("HTTP_DENY_CHANNELS") == "YES":
        raise PermissionDenied("channels denied")
    return channels
