"""The desk's orders, their history, pre-trade risk limits, the kill switch and the dead man's
switch (issue 11 §1-§3).

An order is the portal's record of what a member asked for; what Kraken did with it is an
exchange operation (`apps.exchange.models.Operation`, exactly once) and exchange's own record
of the order (`ExchangeOrder`, keyed by account and txid). Orders placed outside the portal on
the same account appear here too, marked external, when the private streams report them.
(The blotters' and P&L's models live in their own module, owned by §5.)
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.exchange.models import ExchangeOrder, Operation
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.trading.pnl_models import OpeningLot as OpeningLot  # §5's model, in its own module
from apps.vault.models import Credential


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    """Kraken's order types (the value is Kraken's `ordertype`)."""

    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP_LOSS = "stop-loss", "Stop loss"
    TAKE_PROFIT = "take-profit", "Take profit"
    STOP_LOSS_LIMIT = "stop-loss-limit", "Stop loss limit"
    TAKE_PROFIT_LIMIT = "take-profit-limit", "Take profit limit"
    TRAILING_STOP = "trailing-stop", "Trailing stop"
    TRAILING_STOP_LIMIT = "trailing-stop-limit", "Trailing stop limit"
    ICEBERG = "iceberg", "Iceberg"


class TimeInForce(models.TextChoices):
    GTC = "GTC", "Good till cancelled"
    IOC = "IOC", "Immediate or cancel"
    FOK = "FOK", "Fill or kill"
    GTD = "GTD", "Good till date"


class FeeCurrency(models.TextChoices):
    DEFAULT = "", "Kraken's default"
    BASE = "base", "Base asset (fcib)"
    QUOTE = "quote", "Quote asset (fciq)"


class Trigger(models.TextChoices):
    LAST = "last", "Last trade"
    INDEX = "index", "Index price"


class OrderState(models.TextChoices):
    # Its AddOrder operation is not settled yet (prepared, sending, or unknown and being
    # reconciled): it may or may not be on Kraken.
    SUBMITTING = "submitting", "Submitting"
    OPEN = "open", "Open"
    FILLED = "filled", "Filled"
    CANCELED = "canceled", "Cancelled"
    EXPIRED = "expired", "Expired"
    REJECTED = "rejected", "Rejected by Kraken"
    # The reconciler established that Kraken never received it. Never resent; the trader may
    # submit it again as a new order.
    NOT_PLACED = "not_placed", "Not placed"


LIVE_STATES: frozenset[str] = frozenset({OrderState.SUBMITTING, OrderState.OPEN})
FINAL_STATES: frozenset[str] = frozenset(
    {
        OrderState.FILLED,
        OrderState.CANCELED,
        OrderState.EXPIRED,
        OrderState.REJECTED,
        OrderState.NOT_PLACED,
    }
)


class Order(models.Model):
    """One order on one Kraken account: what was asked, by whom, with which key, and where it
    stands. `operation` is the AddOrder that placed it (None for an external order)."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="orders")
    account = models.ForeignKey(KrakenAccount, on_delete=models.PROTECT, related_name="orders")
    # Who placed it and with which key; empty for an order placed outside the portal.
    placed_by = models.ForeignKey(
        Membership, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    external = models.BooleanField(default=False)
    pair = models.CharField(max_length=32)  # the portal's symbol, BTC/USD
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=24, choices=OrderType.choices)
    # Base-asset volume as sent (after a quote quantity was converted and rounded down to the
    # lot decimals), or, for a market buy in quote (`viqc`), None and `quote_quantity` set.
    volume = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    quote_quantity = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    viqc = models.BooleanField(default=False)
    display_volume = models.DecimalField(
        max_digits=38, decimal_places=18, null=True, blank=True
    )  # iceberg
    price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    price2 = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    # The prices as the trader typed them when relative (`+5`, `-1.5%`, `#10`), for the record.
    price_text = models.CharField(max_length=40, blank=True)
    price2_text = models.CharField(max_length=40, blank=True)
    trigger = models.CharField(max_length=8, choices=Trigger.choices, blank=True)
    time_in_force = models.CharField(
        max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    post_only = models.BooleanField(default=False)
    reduce_only = models.BooleanField(default=False)
    fee_currency = models.CharField(
        max_length=8, choices=FeeCurrency.choices, blank=True, default=FeeCurrency.DEFAULT
    )
    close_order_type = models.CharField(max_length=24, choices=OrderType.choices, blank=True)
    close_price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    close_price2 = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    # What identifies it on Kraken: our cl_ord_id, or (conditional close) our userref.
    cl_ord_id = models.CharField(max_length=64, blank=True)
    # The ticket's id (forms.TicketForm): one order per ticket, however often it is sent.
    submission = models.CharField(max_length=64, blank=True, editable=False)
    userref = models.BigIntegerField(null=True, blank=True)
    txid = models.CharField(max_length=32, blank=True)
    # The order's value in its quote currency when submitted (price x volume, or the book's
    # estimate for a market order): what the notional limits counted.
    notional = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal(0))
    # The same in the organization's reporting currency (what the risk limits are set in);
    # None when no fresh price could convert it (then only orders without notional limits
    # pass).
    notional_reporting = models.DecimalField(
        max_digits=38, decimal_places=18, null=True, blank=True
    )
    state = models.CharField(
        max_length=16, choices=OrderState.choices, default=OrderState.SUBMITTING
    )
    state_reason = models.CharField(max_length=300, blank=True)
    operation = models.OneToOneField(
        Operation, null=True, blank=True, on_delete=models.PROTECT, related_name="trading_order"
    )
    exchange_order = models.OneToOneField(
        ExchangeOrder,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="trading_order",
    )
    filled_volume = models.DecimalField(max_digits=38, decimal_places=18, default=Decimal(0))
    avg_price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    # When this order was resubmitted after NOT_PLACED, the order it repeats (never automatic).
    resubmission_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resubmissions"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(fields=("org", "-created_at", "-id"), name="trading_order_org_recent"),
            models.Index(fields=("account", "state"), name="trading_order_account_state"),
            models.Index(fields=("account", "pair", "created_at"), name="trading_order_daily"),
        )
        constraints = (
            # An order that was not placed is submitted again at most once.
            models.UniqueConstraint(
                fields=("resubmission_of",),
                condition=Q(resubmission_of__isnull=False),
                name="trading_order_resubmitted_once",
            ),
            models.UniqueConstraint(
                fields=("account", "txid"),
                condition=~Q(txid=""),
                name="trading_order_txid_once",
            ),
            models.UniqueConstraint(
                fields=("account", "cl_ord_id"),
                condition=~Q(cl_ord_id=""),
                name="trading_order_cl_ord_id_once",
            ),
            models.UniqueConstraint(
                fields=("org", "submission"),
                condition=~Q(submission=""),
                name="trading_order_one_per_ticket",
            ),
        )

    def __str__(self) -> str:
        return f"{self.get_side_display()} {self.volume or self.quote_quantity} {self.pair}"

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def base(self) -> str:
        return self.pair.split("/")[0]

    @property
    def quote(self) -> str:
        return self.pair.split("/")[-1]


class OrderEvent(models.Model):
    """One step of an order's history: submitted, sent, open, amended, filled, cancelled..."""

    class Kind(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        PLACED = "placed", "Placed on Kraken"
        REJECTED = "rejected", "Rejected by Kraken"
        NOT_PLACED = "not_placed", "Not placed"
        AMEND_REQUESTED = "amend_requested", "Amend requested"
        AMENDED = "amended", "Amended"
        AMEND_FAILED = "amend_failed", "Amend failed"
        CANCEL_REQUESTED = "cancel_requested", "Cancel requested"
        CANCELED = "canceled", "Cancelled"
        CANCEL_FAILED = "cancel_failed", "Cancel failed"
        FILL = "fill", "Fill"
        STATUS = "status", "Status from Kraken"
        EXTERNAL = "external", "Seen on Kraken (placed outside the portal)"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The amend or cancel operation this step is about, when there is one.
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="order_events"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.order_id}: {self.kind}"


class RiskLimit(models.Model):
    """Pre-trade limits for the organization (account and member empty), one account, or one
    member (optionally on one account). Every row that applies to an order is checked, each
    counting within its own scope. Amounts are in the organization's reporting currency;
    empty means no limit."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="risk_limits")
    account = models.ForeignKey(
        KrakenAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_limits"
    )
    member = models.ForeignKey(
        Membership, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_limits"
    )
    max_order_notional = models.DecimalField(
        max_digits=38, decimal_places=18, null=True, blank=True
    )
    # Per pair, over the organization's business day (apps.orgs.business_day).
    max_daily_notional = models.DecimalField(
        max_digits=38, decimal_places=18, null=True, blank=True
    )
    # Per pair: the notional of the orders still open (or being submitted).
    max_open_exposure = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    max_open_orders = models.PositiveIntegerField(null=True, blank=True)
    # Refuse a priced order further than this from the last trade (percent).
    price_band_pct = models.DecimalField(max_digits=8, decimal_places=3, null=True, blank=True)
    # Empty lists allow every pair / order type.
    allowed_pairs = models.JSONField(default=list, blank=True)
    allowed_order_types = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"Risk limit #{self.pk} ({self.scope_label})"

    @property
    def scope_label(self) -> str:
        parts = []
        if self.member_id:
            parts.append(f"member {self.member}")
        if self.account_id:
            parts.append(f"account {self.account}")
        return ", ".join(parts) or "organization"


class DeskSettings(models.Model):
    """Per organization: when the ticket asks the trader to confirm, and whether trading is
    halted (the kill switch)."""

    org = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="desk_settings", primary_key=True
    )
    # Ask for a confirmation above this notional (reporting currency) or further than this
    # from the last trade (percent). Empty: never.
    confirm_notional = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    confirm_band_pct = models.DecimalField(
        max_digits=8, decimal_places=3, null=True, blank=True, default=Decimal(5)
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Desk settings of {self.org}"


class KillSwitch(models.Model):
    """One activation of the organization's kill switch: trading is halted from `activated_at`
    until `released_at`. At most one is active per organization."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="kill_switches")
    activated_by = models.ForeignKey(
        Membership, on_delete=models.PROTECT, related_name="kill_switches_activated"
    )
    activated_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=300, blank=True)
    cancel_all = models.BooleanField(default=False)
    # The CancelAll operations it prepared, and accounts it could not reach (no designated key).
    operations = models.ManyToManyField(Operation, blank=True, related_name="+")
    skipped = models.JSONField(default=list, blank=True)
    # The orders and amends already on their way to Kraken when the halt landed (SENDING or
    # UNKNOWN: they left, or may have, before it), and the accounts whose CancelAll was issued
    # again once those settled (an order that reached Kraken after the first CancelAll).
    in_flight = models.ManyToManyField(Operation, blank=True, related_name="+")
    reissued = models.JSONField(default=list, blank=True)
    released_by = models.ForeignKey(
        Membership,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="kill_switches_released",
    )
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-activated_at", "-id")
        constraints = (
            models.UniqueConstraint(
                fields=("org",),
                condition=Q(released_at__isnull=True),
                name="trading_one_active_kill_switch",
            ),
        )

    def __str__(self) -> str:
        return f"Kill switch of {self.org} at {self.activated_at}"

    @property
    def is_active(self) -> bool:
        return self.released_at is None


class DeadMansSwitch(models.Model):
    """Kraken's CancelAllOrdersAfter on one account, armed by a trader and refreshed by the
    streams process (never by a browser tab) while armed."""

    account = models.OneToOneField(
        KrakenAccount, on_delete=models.CASCADE, related_name="dead_mans_switch", primary_key=True
    )
    armed = models.BooleanField(default=False)
    timeout_seconds = models.PositiveIntegerField(default=120)
    armed_by = models.ForeignKey(
        Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    armed_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    # Kraken's answer to the last refresh: when it will cancel if not refreshed again.
    trigger_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"Dead man's switch on {self.account} ({'armed' if self.armed else 'off'})"
