from django.contrib import admin
from django.urls import include, path

from apps.core.views import healthz
from kraken_portal.views import home

# The home page (composition: it spans accounts and orgs) and the health check (kernel) keep
# the `core:` names every template and redirect uses.
core_patterns = (
    [path("", home, name="home"), path("healthz", healthz, name="healthz")],
    "core",
)

urlpatterns = [
    path("", include(core_patterns)),
    path("accounts/activity/", include("apps.audit.account_urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("o/<slug:org>/", include("apps.orgs.urls")),
    path("o/<slug:org>/audit/", include("apps.audit.urls")),
    path("o/<slug:org>/vault/", include("apps.vault.urls")),
    path("o/<slug:org>/markets/", include("apps.market.urls")),
    path("o/<slug:org>/operations/", include("apps.exchange.urls")),
    path("o/<slug:org>/notifications/", include("apps.notifications.urls")),
    path("o/<slug:org>/approvals/", include("apps.approvals.urls")),
    path("o/<slug:org>/schedules/", include("apps.schedules.urls")),
    path("o/<slug:org>/desk/", include("apps.trading.urls")),
    path("o/<slug:org>/treasury/", include("apps.funding.urls")),
    path("o/<slug:org>/staking/", include("apps.staking.urls")),
    path("onboarding/", include("apps.orgs.onboarding_urls")),
    path("invitations/", include("apps.orgs.invitation_urls")),
    path("staff/admin/", admin.site.urls),
]
