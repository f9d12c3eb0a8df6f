"""Step-up ("sudo mode"): sensitive actions need a recent second-factor confirmation.

A session is *fresh* when its last TOTP (or recovery-code) confirmation, at sign-in or on the
step-up page, is at most ``settings.STEP_UP_MAX_AGE`` seconds old. Stale sessions are sent to
``accounts:step-up``, which asks for a new code and then returns to ``next``.

Use the decorator on an org view, *inside* ``org_view`` so that sign-in, membership and role are
checked first (outsiders get their 404, not a step-up page)::

    from apps.accounts.stepup import step_up_required

    @require_http_methods(["GET", "POST"])
    @org_view(Capability.MANAGE_KEYS)
    @step_up_required
    def credential_create(request: HttpRequest, membership: Membership) -> HttpResponse:
        ...

- GET requests come back to the same URL after the step-up.
- Other methods (a POST whose form was opened before the confirmation expired) cannot be
  replayed; the user returns to the page they submitted from (htmx ``HX-Current-URL`` or a
  same-site ``Referer``) and submits again, now fresh.
- htmx requests get ``HX-Redirect`` (status 200), so the whole page moves to the step-up form
  instead of swapping it into a fragment.

Services and views that decide for themselves (for instance a form that only needs a step-up
for large amounts) call ``step_up_is_fresh(request)`` and ``step_up_redirect(request)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from apps.accounts.services import STEP_UP_SESSION_KEY

__all__ = [
    "STEP_UP_SESSION_KEY",
    "step_up_age",
    "step_up_is_fresh",
    "step_up_redirect",
    "step_up_required",
]


def step_up_age(request: HttpRequest) -> float | None:
    """Seconds since this session last confirmed the second factor, or None if never."""
    value: Any = request.session.get(STEP_UP_SESSION_KEY)
    try:
        confirmed_at = float(value)
    except (TypeError, ValueError):
        return None
    return time.time() - confirmed_at


def step_up_is_fresh(request: HttpRequest) -> bool:
    """True if the signed-in, 2FA-verified session confirmed a code within STEP_UP_MAX_AGE."""
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    is_verified = getattr(user, "is_verified", None)
    if is_verified is None or not is_verified():
        return False
    age = step_up_age(request)
    return age is not None and 0 <= age <= settings.STEP_UP_MAX_AGE


def _safe_path(request: HttpRequest, url: str | None) -> str | None:
    if not url:
        return None
    if not url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _return_path(request: HttpRequest) -> str:
    """Where the user should land after confirming: this page, or the page they came from."""
    if request.method in ("GET", "HEAD") and not getattr(request, "htmx", False):
        return request.get_full_path()
    htmx = getattr(request, "htmx", None)
    candidates = [
        getattr(htmx, "current_url", None) if htmx else None,
        request.headers.get("Referer"),
    ]
    for candidate in candidates:
        if (path := _safe_path(request, candidate)) is not None:
            return path
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    return reverse("core:home")


def step_up_redirect(request: HttpRequest) -> HttpResponseBase:
    """Send the user to the step-up page, coming back to where they were."""
    url = reverse("accounts:step-up") + "?" + urlencode({"next": _return_path(request)})
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def step_up_required[V: Callable[..., HttpResponseBase]](view: V) -> V:
    """Let the view run only in a fresh session (see the module docstring)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not step_up_is_fresh(request):
            return step_up_redirect(request)
        return view(request, *args, **kwargs)

    wrapper.step_up = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
