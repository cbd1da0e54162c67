"""A project middleware that refuses requests by itself, to show the websocket goes through MIDDLEWARE."""

from django.http import HttpResponseForbidden


class BlockHeaderMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.headers.get("X-Block-Me"):
            return HttpResponseForbidden("blocked by a project middleware")
        return self.get_response(request)
