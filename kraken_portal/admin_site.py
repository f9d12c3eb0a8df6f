"""The admin site behind the portal's own sign-in and the same verified 2FA as the staff pages.

Django's admin has a password form of its own; left in place it is a way into /staff/admin/
with a password alone. This site has none: its login view sends the visitor through the
portal's sign-in (with its lockouts) and 2FA verification, and ``has_permission``
(django-otp's OTPAdminSite) admits only active staff whose session a 2FA device verified.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp.admin import OTPAdminSite

from apps.core.access import needs_two_factor

ADMIN_STAFF_ONLY = "The admin site is for Kraken Institutional staff."


class PortalAdminSite(OTPAdminSite):
    site_header = "Kraken Institutional Portal administration"
    site_title = "Portal administration"

    def __init__(self, name: str = "admin") -> None:
        # OTPAdminSite names itself "otpadmin"; the URL namespace stays "admin".
        super().__init__(name)

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """No form here: the portal's sign-in, then its 2FA check, then back to ``next``."""
        next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = reverse("admin:index", current_app=self.name)
        user: Any = request.user
        if not user.is_authenticated:
            return redirect_to_login(next_url)
        if not (user.is_active and user.is_staff):
            raise PermissionDenied(ADMIN_STAFF_ONLY)
        if (response := needs_two_factor(request, require=True, next_url=next_url)) is not None:
            return response
        return HttpResponseRedirect(next_url)
