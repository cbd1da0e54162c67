"""Bench-only identity hook (WS4REDIS_PROCESS_REQUEST): ``?uid=u17`` makes the connection user ``u17``.

Same as the anchor's wsproj/auth.py. ws4redis' strict policy lets anonymous clients only subscribe-broadcast; a
``request.user`` with ``is_authenticated = True`` counts as logged in (subscribe-user works).
"""


class BenchUser:
    is_authenticated = True
    is_anonymous = False

    def __init__(self, username):
        self.username = username

    def get_username(self):
        return self.username


def process_request(request):
    request.session = None
    uid = request.GET.get("uid")
    request.user = BenchUser(uid) if uid else None
