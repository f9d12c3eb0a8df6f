"""Writes for the organization's Kraken accounts: a master and its subaccounts.

Owners and admins add accounts, rename them and archive them. The Kraken account id (IIBAN) and
the verification tier are set by an owner only (the views also ask for a fresh 2FA step-up): the
id says which real account the keys act on, and the tier sets how fast the portal lets them
call Kraken. Every change is audited in its transaction.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.core.trail import audit_record
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.selectors import ROLE_TOO_LOW
from apps.orgs.signals import kraken_account_archiving
from apps.orgs.validators import normalize_kraken_account_id

OWNER_SETS_ID_AND_TIER = "Only an owner can set the Kraken account id or the verification tier."
MASTER_EXISTS = (
    "The organization already has a master account (“{label}”). Add subaccounts under it."
)
MASTER_MISSING = "Add the master account first: subaccounts sit under it."
TIER_REQUIRED = "Choose the master account's verification tier."
TIER_ON_SUBACCOUNT = "A subaccount shares its master account's tier."
KIND_INVALID = "Choose master account or subaccount."
LABEL_REQUIRED = "Give the account a label."
LABEL_TAKEN = "Another account of the organization already has this label."
KRAKEN_ID_TAKEN = "This Kraken account is already registered in the portal."
ACCOUNT_ARCHIVED = "This account is archived."
MASTER_HAS_SUBACCOUNTS = "Archive the subaccounts first: they sit under this master account."
CONCURRENT_CHANGE = "Another change to the accounts happened at the same time. Please try again."

_MANAGE_ACCOUNTS = frozenset({Role.OWNER, Role.ADMIN})


def _check_actor(actor: Membership) -> str:
    """The actor's current role (re-read: a demotion a moment ago counts)."""
    role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
    if role not in _MANAGE_ACCOUNTS:
        raise PermissionDenied(ROLE_TOO_LOW)
    return str(role)


def _lock_org(org: Organization) -> None:
    # One organization's account changes queue up behind its row: "one master" and unique
    # labels are checked and written without a race.
    Organization.objects.select_for_update().filter(pk=org.pk).first()


def _detail(account: KrakenAccount) -> dict[str, Any]:
    return {
        "label": account.label,
        "kind": account.kind,
        "kraken_id": account.kraken_id,
        "parent": account.parent_id,
        "tier": account.verification_tier,
    }


def _clean_and_save(account: KrakenAccount, *, update_fields: list[str] | None = None) -> None:
    """full_clean for the shapes; the unique rules are checked here with their own messages."""
    errors: dict[str, list[str]] = {}
    try:
        account.full_clean(exclude=["org", "parent"], validate_constraints=False)
    except ValidationError as error:
        errors.update(error.message_dict)
    live = KrakenAccount.objects.filter(archived_at__isnull=True).exclude(pk=account.pk)
    if live.filter(org_id=account.org_id, label=account.label).exists():
        errors.setdefault("label", []).append(LABEL_TAKEN)
    if account.kraken_id and live.filter(kraken_id=account.kraken_id).exists():
        errors.setdefault("kraken_id", []).append(KRAKEN_ID_TAKEN)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            account.save(update_fields=update_fields)
    except IntegrityError:
        # Another organization registered the same Kraken id between the check and the write.
        raise ValidationError(CONCURRENT_CHANGE) from None


@transaction.atomic(durable=True)
def kraken_account_create(
    *,
    org: Organization,
    actor: Membership,
    label: str,
    kind: str,
    kraken_id: str = "",
    tier: str = "",
    request: HttpRequest | None = None,
) -> KrakenAccount:
    """Add the master account (with its tier) or a subaccount under the master."""
    role = _check_actor(actor)
    label, kraken_id = label.strip(), normalize_kraken_account_id(kraken_id)
    if kind not in KrakenAccount.Kind.values:
        raise ValidationError({"kind": KIND_INVALID})
    if not label:
        raise ValidationError({"label": LABEL_REQUIRED})
    is_master = kind == KrakenAccount.Kind.MASTER
    if (kraken_id or is_master) and role != Role.OWNER:
        raise ValidationError({"kraken_id" if kraken_id else "kind": OWNER_SETS_ID_AND_TIER})
    if is_master and not tier:
        raise ValidationError({"tier": TIER_REQUIRED})
    if not is_master and tier:
        raise ValidationError({"tier": TIER_ON_SUBACCOUNT})
    _lock_org(org)
    master = KrakenAccount.objects.filter(
        org=org, kind=KrakenAccount.Kind.MASTER, archived_at__isnull=True
    ).first()
    if is_master and master is not None:
        raise ValidationError({"kind": MASTER_EXISTS.format(label=master.label)})
    if not is_master and master is None:
        raise ValidationError({"kind": MASTER_MISSING})
    account = KrakenAccount(
        org=org,
        label=label[:80],
        kind=kind,
        kraken_id=kraken_id,
        parent=None if is_master else master,
        verification_tier=tier if is_master else "",
    )
    _clean_and_save(account)
    audit_record(
        action="kraken_account.create",
        actor=actor,
        org=org,
        target=account,
        detail=_detail(account),
        request=request,
    )
    return account


@transaction.atomic(durable=True)
def kraken_account_update(
    *,
    account: KrakenAccount,
    actor: Membership,
    label: str,
    kraken_id: str | None = None,
    tier: str | None = None,
    request: HttpRequest | None = None,
) -> KrakenAccount:
    """Rename an account; an owner may also set its Kraken id and (on the master) its tier.
    `None` leaves the id or tier as it is."""
    role = _check_actor(actor)
    _lock_org(account.org)
    account = KrakenAccount.objects.select_related("org", "parent").get(pk=account.pk)
    if not account.is_active:
        raise ValidationError(ACCOUNT_ARCHIVED)
    changes: dict[str, list[str]] = {}
    label = label.strip()
    if not label:
        raise ValidationError({"label": LABEL_REQUIRED})
    if label != account.label:
        changes["label"] = [account.label, label]
        account.label = label[:80]
    if kraken_id is not None:
        kraken_id = normalize_kraken_account_id(kraken_id)
        if kraken_id != account.kraken_id:
            if role != Role.OWNER:
                raise ValidationError({"kraken_id": OWNER_SETS_ID_AND_TIER})
            changes["kraken_id"] = [account.kraken_id, kraken_id]
            account.kraken_id = kraken_id
    if tier is not None and tier != account.verification_tier:
        if not account.is_master:
            raise ValidationError({"tier": TIER_ON_SUBACCOUNT})
        if role != Role.OWNER:
            raise ValidationError({"tier": OWNER_SETS_ID_AND_TIER})
        if not tier:
            raise ValidationError({"tier": TIER_REQUIRED})
        changes["tier"] = [account.verification_tier, tier]
        account.verification_tier = tier
    if not changes:
        return account
    fields = {"label": "label", "kraken_id": "kraken_id", "tier": "verification_tier"}
    _clean_and_save(account, update_fields=[fields[name] for name in changes] + ["updated_at"])
    audit_record(
        action="kraken_account.update",
        actor=actor,
        org=account.org,
        target=account,
        detail={"account": account.label, "changes": changes},
        request=request,
    )
    return account


@transaction.atomic(durable=True)
def kraken_account_archive(
    *, account: KrakenAccount, actor: Membership, request: HttpRequest | None = None
) -> KrakenAccount:
    """Retire an account. Its keys must be revoked first (the vault refuses otherwise), and a
    master's subaccounts archived first; the row stays for the history that points at it."""
    _check_actor(actor)
    _lock_org(account.org)
    # The account row is locked too: the vault locks it when it stores a key on the account,
    # so a key cannot be added between the vault's check below and the archiving.
    account = (
        KrakenAccount.objects.select_for_update(of=("self",))
        .select_related("org", "parent")
        .get(pk=account.pk)
    )
    if not account.is_active:
        raise ValidationError(ACCOUNT_ARCHIVED)
    if account.subaccounts.filter(archived_at__isnull=True).exists():
        raise ValidationError(MASTER_HAS_SUBACCOUNTS)
    kraken_account_archiving.send(
        sender=KrakenAccount, account=account, actor=actor, request=request
    )
    account.archived_at = timezone.now()
    account.save(update_fields=["archived_at", "updated_at"])
    audit_record(
        action="kraken_account.archive",
        actor=actor,
        org=account.org,
        target=account,
        detail=_detail(account),
        request=request,
    )
    return account
