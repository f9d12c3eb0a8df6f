"""View access policies. Every URL's view declares one, and the permission-matrix test reads it.

- `org_view(capability)` (apps.orgs.access, the layer that knows memberships): signed in, a
  member of the organization in the URL (404 otherwise), with a role that has the capability
  (403 otherwise), and 2FA-verified where the organization requires it. The view receives the
  membership.
- `login_view`: signed in, no organization.
- `staff_view`: signed-in staff (Kraken Institutional's reviewers).
- `public_view`: anyone (sign-in, onboarding, invitation landing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse


@dataclass(frozen=True)
class Access:
    kind: str  # "org", "login", "staff" or "public"
    # The capability an "org" view requires (an apps.orgs.permissions.Capability, a str enum).
    capability: str | None = None


def needs_two_factor(
    request: HttpRequest, require: bool, next_url: str | None = None
) -> HttpResponse | None:
    """Redirect to 2FA set-up or verification when the session is not verified but must be.

    ``next_url`` (default: this request's path) is where the 2FA step sends the user back to.
    """
    user: Any = request.user
    if user.is_verified():
        return None
    from django_otp import devices_for_user

    has_device = any(True for _ in devices_for_user(user, confirmed=True))
    if not (require or has_device):
        return None
    target = "accounts:two-factor-verify" if has_device else "accounts:two-factor-setup"
    next_value = next_url if next_url is not None else request.get_full_path()
    query = urlencode({"next": next_value}, safe="/")
    return HttpResponseRedirect(f"{reverse(target)}?{query}")


def login_view[V: Callable[..., HttpResponseBase]](view: V) -> V:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    wrapper.access = Access("login")  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def staff_view[V: Callable[..., HttpResponseBase]](view: V) -> V:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("Staff only.")
        if (response := needs_two_factor(request, require=True)) is not None:
            return response
        return view(request, *args, **kwargs)

    wrapper.access = Access("staff")  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def public_view[V: Callable[..., HttpResponseBase]](view: V) -> V:
    view.access = Access("public")  # type: ignore[attr-defined]
    return view
