from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("apps.core.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("o/<slug:org>/", include("apps.orgs.urls")),
    path("o/<slug:org>/audit/", include("apps.audit.urls")),
    path("o/<slug:org>/vault/", include("apps.vault.urls")),
    path("o/<slug:org>/markets/", include("apps.market.urls")),
    path("onboarding/", include("apps.orgs.onboarding_urls")),
    path("invitations/", include("apps.orgs.invitation_urls")),
    path("staff/admin/", admin.site.urls),
]
