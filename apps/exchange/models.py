"""Exchange operations: one row per intended non-idempotent Kraken call, and its history.

An operation moves PREPARED → SENDING → DONE | REJECTED | UNKNOWN, and an UNKNOWN one (or a
SENDING one whose worker died) is resolved by the reconciler to DONE or NOT_PLACED by finding it
on Kraken through its reference; it is never sent twice (../shared/ARCHITECTURE.md §1).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.orgs.models import KrakenAccount, Organization
from apps.vault.models import Credential


class Kind(models.TextChoices):
    """The Kraken method an operation calls (its value is the method's name on the wire)."""

    ADD_ORDER = "AddOrder", "Add order"
    AMEND_ORDER = "AmendOrder", "Amend order"
    CANCEL_ORDER = "CancelOrder", "Cancel order"
    CANCEL_ALL = "CancelAll", "Cancel all orders"
    WITHDRAW = "Withdraw", "Withdrawal"
    WITHDRAW_CANCEL = "WithdrawCancel", "Withdrawal cancellation"
    ACCOUNT_TRANSFER = "AccountTransfer", "Account transfer"
    EARN_ALLOCATE = "Earn/Allocate", "Earn allocation"
    EARN_DEALLOCATE = "Earn/Deallocate", "Earn deallocation"


class State(models.TextChoices):
    PREPARED = "prepared", "Prepared"
    SENDING = "sending", "Sending"
    DONE = "done", "Done"
    REJECTED = "rejected", "Rejected"
    UNKNOWN = "unknown", "Unknown"
    NOT_PLACED = "not_placed", "Not placed"


# Not settled: the operation may still act on Kraken, or nobody knows yet whether it did.
UNSETTLED: frozenset[str] = frozenset({State.PREPARED, State.SENDING, State.UNKNOWN})
SETTLED: frozenset[str] = frozenset({State.DONE, State.REJECTED, State.NOT_PLACED})


class Operation(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="operations")
    # The Kraken account it acts on (the credential's): what Kraken keys its effects by.
    account = models.ForeignKey(KrakenAccount, on_delete=models.PROTECT, related_name="operations")
    # The key that sends it (and that the finders read with). PROTECT: an operation's history
    # must survive the key's deletion, so a key with operations is revoked, not deleted.
    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="operations")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # The request as sent to Kraken (Decimals as strings). Never a secret: operation_prepare
    # refuses otp/nonce/secret parameters.
    params = models.JSONField(default=dict)
    # What identifies the call afterwards: cl_ord_id for AddOrder; for calls without one the
    # fields the finder matches on (asset, destination, amount, strategy...).
    reference = models.JSONField(default=dict)
    validate_only = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PREPARED)
    # Kraken's result (DONE), or what the finder found (DONE after UNKNOWN).
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # Reconciliation: how often the finder looked, how many looks found nothing (counted only
    # when spaced out, see services.reconcile), and a lease so two reconcilers never overlap.
    reconcile_attempts = models.PositiveIntegerField(default=0)
    reconcile_misses = models.PositiveIntegerField(default=0)
    last_miss_at = models.DateTimeField(null=True, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    reconcile_note = models.CharField(max_length=300, blank=True)
    reconcile_lease_until = models.DateTimeField(null=True, blank=True)
    # "<kind group>:<scope>" for the calls Kraken cannot tell apart afterwards; at most one
    # such operation per key is unsettled (constraint below). Empty for the others.
    in_flight_key = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(
                fields=("state", "updated_at"),
                condition=Q(state__in=["prepared", "sending", "unknown"]),
                name="exchange_op_unsettled",
            ),
            models.Index(fields=("org", "-created_at"), name="exchange_op_org_recent"),
        )
        constraints = (
            # A withdrawal, a transfer or an Earn call carries no id of ours that Kraken
            # echoes: the finder recognises it by what it did (destination, amount, time). Two
            # alike in flight at once could not be told apart, so there is at most one.
            models.UniqueConstraint(
                fields=("in_flight_key",),
                condition=Q(state__in=["prepared", "sending", "unknown"]) & ~Q(in_flight_key=""),
                name="exchange_one_alike_operation_in_flight",
            ),
        )

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def is_settled(self) -> bool:
        return self.state in SETTLED

    @property
    def queue(self) -> str:
        return queue_for(self.kind)


ORDER_KINDS: frozenset[str] = frozenset(
    {Kind.ADD_ORDER, Kind.AMEND_ORDER, Kind.CANCEL_ORDER, Kind.CANCEL_ALL}
)


def queue_for(kind: str) -> str:
    """Trading calls go to the `orders` queue, money movements and Earn to `funding`, so a
    burst of withdrawals never delays a cancel."""
    return "orders" if kind in ORDER_KINDS else "funding"


class OperationEvent(models.Model):
    """One step of an operation's history: a state change, or a reconciliation look."""

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=State.choices)
    message = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.operation_id}: {self.from_state or '∅'} → {self.to_state}"


class ExchangeOrder(models.Model):
    """Exchange's own record of one order on one Kraken account (keyed by account and txid).

    Written when an AddOrder operation settles DONE (from its answer or what the finder found)
    and, by the private streams, for every order the account has, ours or not. The business
    apps' rows link here; `operation` is the AddOrder that placed it, when the portal did.
    """

    account = models.ForeignKey(
        KrakenAccount, on_delete=models.PROTECT, related_name="exchange_orders"
    )
    txid = models.CharField(max_length=32)
    cl_ord_id = models.CharField(max_length=64, blank=True)
    userref = models.BigIntegerField(null=True, blank=True)
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    pair = models.CharField(max_length=32, blank=True)
    side = models.CharField(max_length=4, blank=True)
    order_type = models.CharField(max_length=32, blank=True)
    # Kraken's order status: pending, open, closed, canceled, expired.
    status = models.CharField(max_length=16, blank=True)
    vol = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    vol_exec = models.DecimalField(max_digits=38, decimal_places=18, default=0)
    price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    avg_price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    cost = models.DecimalField(max_digits=38, decimal_places=18, default=0)
    fee = models.DecimalField(max_digits=38, decimal_places=18, default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = (
            # The blotters' keyset pages (apps.trading.selectors_blotter): newest first per
            # account, and the open orders alone, so neither scans an account's whole history.
            # PostgreSQL's DESC puts NULLs first, which is the pages' order (an order Kraken has
            # not dated yet is the newest); SQLite cannot say NULLS FIRST in an index.
            models.Index(fields=("account", "-opened_at", "-id"), name="exchange_order_recent"),
            models.Index(
                fields=("account", "-opened_at", "-id"),
                condition=Q(status__in=["pending", "open"]),
                name="exchange_order_open_recent",
            ),
            # A blotter filtered by pair walks the pair's own orders.
            models.Index(
                fields=("account", "pair", "-opened_at", "-id"), name="exchange_order_pair_recent"
            ),
        )
        constraints = (
            models.UniqueConstraint(fields=("account", "txid"), name="exchange_order_once"),
            # Our cl_ord_ids are UUIDs: one order per cl_ord_id per account.
            models.UniqueConstraint(
                fields=("account", "cl_ord_id"),
                condition=~Q(cl_ord_id=""),
                name="exchange_order_cl_ord_id_once",
            ),
        )

    def __str__(self) -> str:
        return f"{self.txid} ({self.status})"


class ExchangeFill(models.Model):
    """One trade (fill) on one account, keyed by account and Kraken's trade id."""

    account = models.ForeignKey(
        KrakenAccount, on_delete=models.PROTECT, related_name="exchange_fills"
    )
    trade_id = models.CharField(max_length=32)
    order = models.ForeignKey(
        ExchangeOrder, null=True, blank=True, on_delete=models.SET_NULL, related_name="fills"
    )
    order_txid = models.CharField(max_length=32, blank=True)
    pair = models.CharField(max_length=32, blank=True)
    side = models.CharField(max_length=4, blank=True)
    price = models.DecimalField(max_digits=38, decimal_places=18)
    qty = models.DecimalField(max_digits=38, decimal_places=18)
    cost = models.DecimalField(max_digits=38, decimal_places=18, default=0)
    # Fees are a list of (asset, quantity) (issue 10 §2).
    fees = models.JSONField(default=list, blank=True)
    liquidity = models.CharField(max_length=1, blank=True)  # m(aker) | t(aker)
    executed_at = models.DateTimeField()

    class Meta:
        indexes = (
            # The fills blotter's keyset pages and the P&L's walk in time order, per account.
            models.Index(fields=("account", "-executed_at", "-id"), name="exchange_fill_recent"),
            models.Index(
                fields=("account", "pair", "-executed_at", "-id"), name="exchange_fill_pair_recent"
            ),
        )
        constraints = (
            models.UniqueConstraint(fields=("account", "trade_id"), name="exchange_fill_once"),
        )

    def __str__(self) -> str:
        return self.trade_id


class LedgerEntry(models.Model):
    """One ledger entry on one account, keyed by account and Kraken's ledger id."""

    account = models.ForeignKey(
        KrakenAccount, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    ledger_id = models.CharField(max_length=32)
    refid = models.CharField(max_length=64, blank=True)
    type = models.CharField(max_length=32)
    subtype = models.CharField(max_length=32, blank=True)
    asset = models.CharField(max_length=16)
    amount = models.DecimalField(max_digits=38, decimal_places=18)
    fee = models.DecimalField(max_digits=38, decimal_places=18, default=0)
    balance = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    wallet_type = models.CharField(max_length=16, blank=True)
    wallet_id = models.CharField(max_length=16, blank=True)
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger_entries"
    )
    booked_at = models.DateTimeField()

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("account", "ledger_id"), name="exchange_ledger_once"),
        )
        indexes = (models.Index(fields=("account", "type", "booked_at")),)

    def __str__(self) -> str:
        return self.ledger_id


class WalletType(models.TextChoices):
    """Kraken's WS v2 `balances` wallet types."""

    SPOT = "spot", "Spot"
    EARN = "earn", "Earn"


class BalanceSource(models.TextChoices):
    STREAM = "stream", "Private stream"
    REST = "rest", "REST refresh"


# Kraken's WS v2 `balances` wallet ids (FUNDING-EARN.md): spot `main`; Earn `flex` (auto-earn,
# spendable), `flexible` (instant), `bonded`, `locked` (timed), `liquid`, `closed`.
WALLET_MAIN = "main"
WALLET_FLEX = "flex"
# Earn lock types (Earn/Strategies `lock_type.type`) → the wallet id `balances` names them by.
EARN_WALLET_BY_LOCK: dict[str, str] = {
    "flex": "flex",
    "instant": "flexible",
    "bonded": "bonded",
    "timed": "locked",
}


class AccountBalance(models.Model):
    """One wallet's balance of one asset on one Kraken account: the live state the private
    stream (`balances`) keeps, or the last REST refresh (BalanceEx + Earn/Allocations).

    `asset` is the portal's normalised name (apps.kraken.naming: `BTC`, `USD`). `hold` is the
    part of a spot wallet reserved by open orders (BalanceEx `hold_trade`; zero for Earn).
    Read it through apps.exchange.balances (`spendable`, `account_balances`), never by hand.
    """

    account = models.ForeignKey(
        KrakenAccount, on_delete=models.CASCADE, related_name="exchange_balances"
    )
    asset = models.CharField(max_length=16)
    wallet_type = models.CharField(max_length=8, choices=WalletType.choices)
    wallet_id = models.CharField(max_length=16)
    balance = models.DecimalField(max_digits=38, decimal_places=18, default=0)
    hold = models.DecimalField(max_digits=38, decimal_places=18, default=0)
    source = models.CharField(max_length=8, choices=BalanceSource.choices)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ("account_id", "asset", "wallet_type", "wallet_id")
        constraints = (
            models.UniqueConstraint(
                fields=("account", "asset", "wallet_type", "wallet_id"),
                name="exchange_balance_once",
            ),
        )

    def __str__(self) -> str:
        return f"{self.asset} {self.wallet_type}/{self.wallet_id}: {self.balance}"


class BalanceSnapshot(models.Model):
    """A wallet's quantity at a moment, with the price used then (None when no price was
    live). Quantities and prices, never totals: the reporting currency may change later."""

    account = models.ForeignKey(
        KrakenAccount, on_delete=models.CASCADE, related_name="balance_snapshots"
    )
    asset = models.CharField(max_length=16)
    wallet_type = models.CharField(max_length=8, choices=WalletType.choices)
    wallet_id = models.CharField(max_length=16)
    quantity = models.DecimalField(max_digits=38, decimal_places=18)
    price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    price_currency = models.CharField(max_length=16, blank=True)
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ("-taken_at", "account_id", "asset")
        indexes = (models.Index(fields=("account", "taken_at"), name="exchange_snap_acct_time"),)

    def __str__(self) -> str:
        return f"{self.asset} {self.quantity} @ {self.taken_at:%Y-%m-%d %H:%M}"


class StreamMark(models.Model):
    """When the private stream's last subscription to one channel of one account was
    accepted, on Kraken's clock (the subscribe answer's `time_in`), written once the gap
    before it was closed: everything after it was streamed until that socket went, so the
    next connection's gap starts there at the latest (streams/connection.py)."""

    account = models.ForeignKey(KrakenAccount, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16)
    live_since = models.DateTimeField()

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("account", "channel"), name="exchange_stream_mark"),
        )

    def __str__(self) -> str:
        return f"{self.account_id} {self.channel} since {self.live_since}"
