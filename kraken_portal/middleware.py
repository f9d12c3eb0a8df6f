"""Middleware of the composition layer (kraken_portal): concerns of the server, not of an app."""

from __future__ import annotations

from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin


class ErrorPageInRequestThreadMiddleware(MiddlewareMixin):
    """Turns a view's exception (a 404, a 403, a crash) into its error page in the request's
    own thread, where Django returns the request's database connection when it ends.

    Under ASGI, Django otherwise renders that page in a thread of the event loop's default
    executor (`sync_to_async(response_for_exception, thread_sensitive=False)`), and the page
    (base.html, the organization switcher) opens a database connection there that nothing ever
    returns: each such thread kept one of its process's pooled connections for good, and
    enough 404s (an outsider trying organization URLs, a stale link) left the pages none.

    Listed last in MIDDLEWARE, so its `process_exception` runs first (Django calls it in the
    request's thread); the response then goes through every middleware's response phase as any
    other would. Sync and async capable (MiddlewareMixin), so the chain keeps its modes.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse:
        return response_for_exception(request, exception)
