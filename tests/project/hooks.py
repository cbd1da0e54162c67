"""Hooks named by dotted path in the tests' settings overrides."""

from django.core.exceptions import PermissionDenied


def only_broadcast(request, channels):
    """WS4REDIS_ALLOWED_CHANNELS: keep broadcast flags; refuse a request asking for publish-broadcast."""
    if "publish-broadcast" in channels:
        raise PermissionDenied("publishing is not allowed here")
    return [c for c in channels if c.endswith("-broadcast")]


class TokenUser:
    is_authenticated = True
    is_anonymous = False

    def __init__(self, name):
        self.name = name

    def get_username(self):
        return self.name


def token_auth(request):
    """WS4REDIS_PROCESS_REQUEST: the user named by ?token=..., no session (as in token-auth deployments)."""
    token = request.GET.get("token")
    request.session = None
    request.user = TokenUser(token) if token else None


def secret_facilities(request, channels):
    """WS4REDIS_ALLOWED_CHANNELS keyed on the path, as projects write them: facilities 'secret-*' are alice's only."""
    facility = request.path.rsplit("/", 1)[-1]
    if facility.startswith("secret-") and getattr(request.user, "get_username", lambda: "")() != "alice":
        raise PermissionDenied("secret facilities are alice's")
    return channels
