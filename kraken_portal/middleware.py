"""Middleware of the composition layer (kraken_portal): concerns of the server, not of an app."""

from __future__ import annotations

from collections.abc import Callable

from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse


class ErrorPageInRequestThreadMiddleware:
    """Turns a view's exception (a 404, a 403, a crash) into its error page in the request's
    own thread, where Django returns the request's database connection when it ends.

    Under ASGI, Django otherwise renders that page in a thread of the event loop's default
    executor (`sync_to_async(response_for_exception, thread_sensitive=False)`), and the page
    (base.html, the organization switcher) opens a database connection there that nothing ever
    returns: each such thread kept one of its process's pooled connections for good, and
    enough 404s (an outsider trying organization URLs, a stale link) left the pages none.

    Listed last in MIDDLEWARE, so its `process_exception` runs first; the response then goes
    through every middleware's response phase as any other would.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse:
        return response_for_exception(request, exception)
