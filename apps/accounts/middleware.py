from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LAST_SEEN_KEY = "last_seen"


class IdleTimeoutMiddleware:
    """Signs a user out after SESSION_IDLE_TIMEOUT seconds without a request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            last_seen = request.session.get(LAST_SEEN_KEY)
            if last_seen is not None and now - float(last_seen) > settings.SESSION_IDLE_TIMEOUT:
                logout(request)
            else:
                request.session[LAST_SEEN_KEY] = now
        return self.get_response(request)
