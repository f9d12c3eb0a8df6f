"""Staff can look at organizations, members, invitations and applications here.

Changes go through the portal's own pages, whose services check the rules and write the audit
trail, so the admin site only shows these models.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.orgs.models import (
    Invitation,
    KrakenAccount,
    Membership,
    OnboardingApplication,
    Organization,
)


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "slug",
        "country",
        "require_2fa",
        "allow_overprivileged_keys",
        "created_at",
    )
    search_fields = ("name", "slug")
    list_filter = ("require_2fa", "allow_overprivileged_keys", "country")


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ("user", "org", "role", "status", "removed_at", "created_at")
    list_filter = ("role", "status")
    search_fields = ("user__email", "org__name", "org__slug")
    list_select_related = ("user", "org")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        # Staff see removed memberships too (the default manager hides them).
        return Membership.all_objects.select_related("user", "org")


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ("email", "org", "role", "created_at", "expires_at", "accepted_at", "revoked_at")
    list_filter = ("role",)
    search_fields = ("email", "org__name")
    list_select_related = ("org",)
    # The token's hash is useless to a reader and is left out.
    exclude = ("token_hash",)


@admin.register(OnboardingApplication)
class OnboardingApplicationAdmin(ReadOnlyAdmin):
    list_display = (
        "company_name",
        "country",
        "region",
        "email",
        "business_type",
        "assets_under_management",
        "status",
        "created_at",
    )
    list_filter = ("status", "business_type", "assets_under_management", "country")
    search_fields = ("company_name", "email")


@admin.register(KrakenAccount)
class KrakenAccountAdmin(ReadOnlyAdmin):
    list_display = ("label", "org", "kind", "kraken_id", "verification_tier", "archived_at")
    list_filter = ("kind", "verification_tier")
    search_fields = ("label", "org__name", "kraken_id")
