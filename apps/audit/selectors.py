"""Reads of the audit trail: filtered pages for people, and the integrity check of every chain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet

from apps.audit.chain import GLOBAL_CHAIN, chain_key_for, record_hash
from apps.audit.models import AuditChain, AuditRecord
from apps.orgs.models import Organization

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilters:
    """What a reader narrowed the trail to. Empty values filter nothing."""

    action: str = ""  # a prefix: "withdrawal." matches every withdrawal action
    actor: str = ""  # the actor's email as recorded
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    target: str = ""  # text in the target's description or id


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    # Pass as `before` to get the next (older) page; None on the last page.
    next_before: int | None


def audit_records(
    *, org: Organization, filters: AuditFilters | None = None
) -> QuerySet[AuditRecord]:
    """The organization's records matching `filters`, newest first (by chain sequence)."""
    filters = filters or AuditFilters()
    records = AuditRecord.objects.filter(chain=chain_key_for(org.pk))
    if filters.action:
        records = records.filter(action__startswith=filters.action)
    if filters.actor:
        records = records.filter(actor_email__iexact=filters.actor)
    if filters.since is not None:
        records = records.filter(created_at__gte=filters.since)
    if filters.until is not None:
        records = records.filter(created_at__lt=filters.until)
    if filters.target:
        records = records.filter(
            Q(target_repr__icontains=filters.target) | Q(target_id=filters.target)
        )
    return records.order_by("-seq")


def audit_record_page(
    *,
    org: Organization,
    filters: AuditFilters | None = None,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> AuditPage:
    """One page of matching records older than sequence `before` (keyset pagination).

    Keyset rather than offset pages: the trail only grows, so page links stay stable while new
    records arrive, and the database never counts or skips rows.
    """
    records = audit_records(org=org, filters=filters)
    if before is not None:
        records = records.filter(seq__lt=before)
    rows = list(records[: size + 1])
    has_more = len(rows) > size
    rows = rows[:size]
    return AuditPage(records=rows, next_before=rows[-1].seq if has_more and rows else None)


SECURITY_EVENTS_SHOWN = 50


def audit_security_events(
    *, user: AbstractBaseUser, limit: int = SECURITY_EVENTS_SHOWN
) -> list[AuditRecord]:
    """The user's own sign-in and 2FA events (the global chain's `auth.*` records naming them),
    newest first: what they need to spot a sign-in or a change that was not theirs."""
    return list(
        AuditRecord.objects.filter(
            chain=GLOBAL_CHAIN, actor_id=user.pk, action__startswith="auth."
        ).order_by("-seq")[:limit]
    )


RECENT_SHOWN = 8


def audit_recent(
    *,
    org: Organization,
    user: AbstractBaseUser | None = None,
    membership_id: int | None = None,
    limit: int = RECENT_SHOWN,
) -> list[AuditRecord]:
    """The organization's newest records; with `user`, only those by them or about them (their
    membership or their account), for members whose role does not oversee the others."""
    records = AuditRecord.objects.filter(chain=chain_key_for(org.pk))
    if user is not None:
        about = Q(actor_id=user.pk) | Q(target_type="accounts.user", target_id=str(user.pk))
        if membership_id is not None:
            about |= Q(target_type="orgs.membership", target_id=str(membership_id))
        records = records.filter(about)
    return list(records.order_by("-seq")[:limit])


def audit_actor_emails(*, org: Organization) -> list[str]:
    """Everyone who appears in the organization's trail, for the actor filter."""
    return list(
        AuditRecord.objects.filter(chain=chain_key_for(org.pk))
        .exclude(actor_email="")
        .order_by("actor_email")
        .values_list("actor_email", flat=True)
        .distinct()
    )


def audit_export_batch(
    *,
    org: Organization,
    filters: AuditFilters | None = None,
    after_seq: int = 0,
    up_to_seq: int | None = None,
    size: int = 1000,
) -> list[AuditRecord]:
    """The next `size` matching records after sequence `after_seq`, oldest first."""
    records = audit_records(org=org, filters=filters).filter(seq__gt=after_seq)
    if up_to_seq is not None:
        records = records.filter(seq__lte=up_to_seq)
    return list(records.order_by("seq")[:size])


# Integrity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    chain: str
    seq: int
    record_id: int | None
    problem: str

    def __str__(self) -> str:
        record = f"record id {self.record_id}" if self.record_id is not None else "no record"
        return f"chain {self.chain!r} broken at seq {self.seq} ({record}): {self.problem}"


@dataclass
class ChainReport:
    chain: str
    records: int = 0
    broken: ChainBreak | None = field(default=None)

    @property
    def ok(self) -> bool:
        return self.broken is None


def audit_chain_verify(*, chain: str) -> ChainReport:
    """Walk one chain in sequence order and report its first broken link, if any.

    A record's own HMAC is checked before its link to the predecessor, so an edited row is named
    itself rather than its successor. The chain head must also agree with the last record, which
    catches records removed from the end.
    """
    report = ChainReport(chain=chain)
    expected_seq = 1
    prev_hash = ""
    records = AuditRecord.objects.filter(chain=chain).order_by("seq").iterator(chunk_size=2000)
    for record in records:
        problem = None
        if record.seq != expected_seq:
            problem = f"sequence gap: expected seq {expected_seq}, found {record.seq}"
        elif record_hash(record) != record.hash:
            problem = "HMAC mismatch: the record's content or hash was changed"
        elif record.prev_hash != prev_hash:
            problem = "prev_hash does not match the hash of the previous record"
        if problem is not None:
            report.broken = ChainBreak(chain, expected_seq, record.pk, problem)
            return report
        report.records += 1
        prev_hash = record.hash
        expected_seq += 1
    head = AuditChain.objects.filter(key=chain).first()
    last_seq = expected_seq - 1
    if head is None:
        if last_seq:
            report.broken = ChainBreak(chain, last_seq, None, "the chain has no head row")
    elif head.last_seq != last_seq or head.last_hash != prev_hash:
        report.broken = ChainBreak(
            chain,
            last_seq + 1,
            None,
            f"the chain head says seq {head.last_seq} but the records end at seq {last_seq}"
            if head.last_seq != last_seq
            else "the chain head's hash does not match the last record",
        )
    return report


def audit_chain_keys(*, org: Organization | None = None) -> list[str]:
    """Every chain (or the organization's one), whether it has a head row, records, or both."""
    if org is not None:
        return [chain_key_for(org.pk)]
    keys = set(AuditChain.objects.values_list("key", flat=True))
    keys.update(AuditRecord.objects.order_by().values_list("chain", flat=True).distinct())
    return sorted(keys)


def audit_chains_verify(*, org: Organization | None = None) -> list[ChainReport]:
    return [audit_chain_verify(chain=key) for key in audit_chain_keys(org=org)]
