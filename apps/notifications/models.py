from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Notification(models.Model):
    """One message to one member of one organization (in-app always; email per preference)."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # Set when the email task claims the row: an email goes out at most once.
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(
                fields=("recipient", "org"),
                condition=Q(read_at__isnull=True),
                name="notification_unread",
            ),
            models.Index(fields=("recipient", "org", "-created_at"), name="notification_recent"),
        )

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient_id}: {self.title}"


class NotificationPreference(models.Model):
    """A member's choice for one kind: in-app notifications always arrive; email is optional."""

    membership = models.ForeignKey(
        "orgs.Membership", on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=64)
    email = models.BooleanField()

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("membership", "kind"), name="notification_preference_unique"
            ),
        )

    def __str__(self) -> str:
        return f"{self.kind}: email {'on' if self.email else 'off'}"
