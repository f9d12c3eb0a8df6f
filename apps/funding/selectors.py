"""Treasury reads: the address book (the portal's entries beside Kraken's keys), withdrawals,
transfers. Every read is scoped to the member's organization; another organization's id is
a 404."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.http import Http404

from apps.funding import kraken_funding
from apps.funding.models import Destination, Transfer, Withdrawal
from apps.kraken.errors import KrakenError
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.vault.models import Use
from apps.vault.selectors import NoCredential, credential_for, designated_credential

NOT_FOUND = "No such withdrawal, transfer or address here."


def funding_accounts(*, org: Organization) -> QuerySet[KrakenAccount]:
    return KrakenAccount.objects.filter(org=org, archived_at__isnull=True).order_by(
        "kind", "label", "id"
    )


def destinations_allowed(
    *, org: Organization, account: KrakenAccount | None = None
) -> QuerySet[Destination]:
    rows = Destination.objects.filter(org=org, status=Destination.Status.ALLOWED).select_related(
        "account"
    )
    return rows.filter(account=account) if account is not None else rows


def destination_get(*, membership: Membership, pk: int) -> Destination:
    destination = (
        Destination.objects.select_related("account", "approval", "org")
        .filter(org_id=membership.org_id, pk=pk)
        .first()
    )
    if destination is None:
        raise Http404(NOT_FOUND)
    return destination


@dataclass
class AccountAddresses:
    account: KrakenAccount
    kraken: list[kraken_funding.WithdrawAddress] = field(default_factory=list)
    listed: dict[tuple[str, str], Destination] = field(default_factory=dict)
    problem: str = ""

    @property
    def unlisted(self) -> list[kraken_funding.WithdrawAddress]:
        """Kraken's keys with no live entry here: they may be requested."""
        live = {
            key
            for key, entry in self.listed.items()
            if entry.status in (Destination.Status.ALLOWED, Destination.Status.PENDING)
        }
        return [entry for entry in self.kraken if (entry.asset, entry.key) not in live]


def address_book(*, membership: Membership) -> list[AccountAddresses]:
    """Per account: Kraken's withdrawal keys (WithdrawAddresses, with their verified state)
    beside the portal's entries (allow-listed, waiting, removed). Read with the member's own
    funding key on the account, else its designated one; an account with neither says so."""
    book = []
    entries = Destination.objects.filter(org_id=membership.org_id).select_related(
        "approval", "account"
    )
    by_account: dict[int, list[Destination]] = {}
    for entry in entries:
        by_account.setdefault(entry.account_id, []).append(entry)
    for account in funding_accounts(org=membership.org):
        row = AccountAddresses(account=account)
        for entry in by_account.get(account.pk, []):
            current = row.listed.get((entry.asset, entry.key))
            # The live entry wins over the history of the same key.
            if current is None or entry.status in (
                Destination.Status.ALLOWED,
                Destination.Status.PENDING,
            ):
                row.listed[(entry.asset, entry.key)] = entry
        try:
            credential = credential_for(membership=membership, account=account, use=Use.FUNDING)
        except NoCredential as error:
            row.problem = str(error)
        else:
            try:
                row.kraken = kraken_funding.withdraw_addresses(credential=credential)
            except KrakenError as error:
                row.problem = f"Kraken's withdrawal addresses could not be read: {error.hint}"
        book.append(row)
    return book


def withdrawals_recent(*, org: Organization, limit: int = 100) -> list[Withdrawal]:
    return list(
        Withdrawal.objects.filter(org=org).select_related(
            "account", "destination", "approval", "requested_by", "org"
        )[:limit]
    )


def withdrawal_get(*, membership: Membership, pk: int) -> Withdrawal:
    withdrawal = (
        Withdrawal.objects.select_related(
            "account", "destination", "approval", "requested_by", "org", "operation"
        )
        .filter(org_id=membership.org_id, pk=pk)
        .first()
    )
    if withdrawal is None:
        raise Http404(NOT_FOUND)
    return withdrawal


def transfers_recent(*, org: Organization, limit: int = 100) -> list[Transfer]:
    return list(
        Transfer.objects.filter(org=org).select_related(
            "from_account", "to_account", "approval", "requested_by", "org"
        )[:limit]
    )


def unattended_ready(*, account: KrakenAccount) -> bool:
    """Whether unattended work can act on the account (it has a designated funding key)."""
    try:
        designated_credential(account=account, use=Use.FUNDING)
    except NoCredential:
        return False
    return True


@dataclass(frozen=True)
class Activity:
    kind: str  # withdrawal | transfer
    item: Withdrawal | Transfer


def funding_activity(*, org: Organization, limit: int = 5) -> list[Activity]:
    """The latest withdrawals and transfers together, newest first."""
    withdrawals = Withdrawal.objects.filter(org=org).select_related("account", "destination")[
        :limit
    ]
    transfers = Transfer.objects.filter(org=org).select_related("from_account", "to_account")[
        :limit
    ]
    items = [Activity("withdrawal", w) for w in withdrawals] + [
        Activity("transfer", t) for t in transfers
    ]
    items.sort(key=lambda a: a.item.created_at, reverse=True)
    return items[:limit]
