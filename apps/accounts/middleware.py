from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect

from apps.core.sessions import LAST_SEEN_KEY, session_is_idle, session_last_seen

# Set in the fresh anonymous session after an idle sign-out, so the sign-in page can say why.
IDLE_SIGNED_OUT_KEY = "idle_signed_out"
# Writing the session on every request would cost a database write per click (and per htmx
# poll); the last-seen time is refreshed at most this often, which bounds the error of the idle
# measurement to the same number of seconds.
LAST_SEEN_RESOLUTION = 30


class IdleTimeoutMiddleware:
    """Signs a user out after SESSION_IDLE_TIMEOUT seconds without a request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            last_seen = session_last_seen(request.session, default=now)
            if session_is_idle(request.session, now=now):
                logout(request)
                request.session[IDLE_SIGNED_OUT_KEY] = True
                if request.headers.get("HX-Request") == "true":
                    # An htmx swap would put the sign-in page inside a fragment; move the page.
                    current = request.headers.get("HX-Current-URL", "")
                    target = reverse("accounts:login")
                    if current:
                        parts = urlsplit(current)
                        path = parts.path + (f"?{parts.query}" if parts.query else "")
                        target += "?" + urlencode({"next": path})
                    return HttpResponseClientRedirect(target)
            elif LAST_SEEN_KEY not in request.session or now - last_seen >= LAST_SEEN_RESOLUTION:
                request.session[LAST_SEEN_KEY] = now
        return self.get_response(request)


class TimezoneMiddleware:
    """Renders times in the signed-in user's time zone (User.time_zone), UTC otherwise."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user: Any = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            try:
                timezone.activate(zoneinfo.ZoneInfo(user.time_zone))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
                timezone.deactivate()
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
