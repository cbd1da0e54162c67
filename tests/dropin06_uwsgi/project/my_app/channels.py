# The policy hook of 0.6's usage docs: anonymous visitors get no websocket at all.
from django.core.exceptions import PermissionDenied


def get_allowed_channels(request, channels):
    if not request.user.is_authenticated:
        raise PermissionDenied("Not allowed to subscribe nor to publish on the Websocket!")
    return channels
