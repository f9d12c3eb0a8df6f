"""Read-only admin: staff may inspect operations and their history. Operations change state
only through apps.exchange.services (conditional updates, audited), never by hand here."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from apps.exchange.models import Operation, OperationEvent


class OperationEventInline(admin.TabularInline):  # type: ignore[type-arg]
    model = OperationEvent
    fields = ("created_at", "from_state", "to_state", "message", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("pk", "org", "kind", "state", "validate_only", "created_at", "settled_at")
    list_filter = ("state", "kind")
    search_fields = ("org__name", "in_flight_key")
    fields = (
        "org",
        "credential",
        "kind",
        "params",
        "reference",
        "validate_only",
        "state",
        "result",
        "error_code",
        "error_message",
        "requested_by",
        "created_at",
        "sent_at",
        "settled_at",
        "reconcile_attempts",
        "reconcile_misses",
        "last_reconciled_at",
        "reconcile_note",
        "in_flight_key",
    )
    readonly_fields = fields
    inlines = (OperationEventInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False
