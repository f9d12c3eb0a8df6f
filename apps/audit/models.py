from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditChain(models.Model):
    """Head of one hash chain (one per organization, plus `global` for events with no org).

    Appending locks this row, so records of one chain get consecutive sequence numbers and each
    carries its predecessor's hash even when many workers write at once.
    """

    key = models.CharField(max_length=64, unique=True)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"{self.key} @ {self.last_seq}"


class AuditRecord(models.Model):
    """One sensitive action. Append-only: on PostgreSQL a trigger refuses UPDATE and DELETE."""

    chain = models.CharField(max_length=64, db_index=True)
    seq = models.BigIntegerField()
    created_at = models.DateTimeField(db_index=True)
    org = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # Copied so the record still reads right after the user or organization is gone.
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = (models.UniqueConstraint(fields=("chain", "seq"), name="audit_chain_seq"),)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_email} {self.action}"
