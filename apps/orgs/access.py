"""The organization's view policy, `org_view(capability)`; the others (login, staff, public) and
the `Access` marker the permission-matrix test reads are the kernel's (apps.core.access)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase

from apps.core.access import Access, needs_two_factor
from apps.orgs.permissions import Capability
from apps.orgs.selectors import membership_get

V = TypeVar("V", bound=Callable[..., HttpResponseBase])


def org_view(capability: Capability) -> Callable[[V], V]:
    def decorator(view: V) -> V:
        @wraps(view)
        def wrapper(request: HttpRequest, org: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_get(user=request.user, org=org, capability=capability)
            if (response := needs_two_factor(request, membership.org.require_2fa)) is not None:
                return response
            request.membership = membership  # type: ignore[attr-defined]
            return view(request, membership, *args, **kwargs)

        wrapper.access = Access("org", capability)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
