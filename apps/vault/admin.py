"""Read-only admin: staff may inspect key metadata; keys are added only through the portal,
which seals the secret, and revoked only through the vault's service, which writes the audit
trail (so no delete here, not even in bulk). Sealed columns are never shown."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from apps.vault.models import Credential


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("label", "masked_key", "org", "owner", "use", "status", "designated")
    list_filter = ("status", "use", "designated")
    search_fields = ("label", "org__name", "owner__user__email")
    fields = (
        "org",
        "owner",
        "label",
        "masked_key",
        "account",
        "use",
        "status",
        "status_reason",
        "designated",
        "kek_id",
        "permissions",
        "probe_status",
        "permissions_checked_at",
        "last_used_at",
        "last_error",
        "created_at",
        "updated_at",
        "revoked_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Credential | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Credential | None = None) -> bool:
        return False
