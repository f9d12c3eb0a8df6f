"""The admin app, with the portal's own admin site (kraken_portal.admin_site) as ``admin.site``.

Kept apart from the site's module because Django imports an app config before the app registry
is ready, and the site imports django-otp's forms and models.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class PortalAdminConfig(AdminConfig):
    default_site = "kraken_portal.admin_site.PortalAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin module registers its models
        # Production leaves out the admins of 2FA devices and sign-in lockouts
        # (ADMIN_HIDDEN_APPS): there a staff member could delete someone's device or lift a
        # lockout beside the audited flows that own them.
        hidden = set(settings.ADMIN_HIDDEN_APPS)
        for model in [m for m in admin.site._registry if m._meta.app_label in hidden]:
            admin.site.unregister(model)
