"""Who may trade and whether anything may: the member's own trading key, the organization's
kill switch, Kraken's system and pair status."""

from __future__ import annotations

from apps.orgs.models import KrakenAccount, Membership
from apps.trading import market
from apps.trading.models import (
    KillSwitch,
    OrderType,
    TimeInForce,
)
from apps.trading.rules.base import LIMIT_PRICED, Check, Ticket
from apps.trading.rules.messages import PAIR_OFFLINE, PAIR_STATUS, SYSTEM_STATUS
from apps.vault.models import Credential, Use


def own_trading_key(*, membership: Membership, account: KrakenAccount) -> Credential | None:
    """The member's own active trading key on `account` (personal first, then a designated key
    they stored themselves): never another member's."""
    return (
        Credential.objects.filter(
            owner=membership,
            org_id=membership.org_id,
            account=account,
            use=Use.TRADING,
            status=Credential.Status.ACTIVE,
        )
        .select_related("account")
        .order_by("designated", "-created_at")
        .first()
    )


def active_halt(org_id: int) -> KillSwitch | None:
    return KillSwitch.objects.filter(org_id=org_id, released_at__isnull=True).first()


def _status_rules(check: Check, ticket: Ticket, symbol: str) -> None:
    """Kraken's system and pair status, as the feeder last received them. A status nobody has
    received (no feeder) blocks nothing here: Kraken enforces its own status at the door."""
    system = market.system_status().status
    pair_word = market.pair_status(symbol).status if symbol else None
    types = list(OrderType.values)
    tifs = list(TimeInForce.values)
    for word, table, target in (
        (system, SYSTEM_STATUS, "__all__"),
        (pair_word, PAIR_STATUS, "pair"),
    ):
        if not word or word == "online":
            continue
        message = table.get(word)
        if message is None:
            message = PAIR_OFFLINE.format(pair=symbol, status=word) if target == "pair" else ""
            if not message:
                continue
            check.add(target, message)
            types = []
            continue
        message = message.format(pair=symbol)
        if word in ("post_only",):
            types = [t for t in types if t in LIMIT_PRICED]
            tifs = [t for t in tifs if t in (TimeInForce.GTC, TimeInForce.GTD)]
            if ticket.order_type not in LIMIT_PRICED or not ticket.post_only:
                check.add(
                    "order_type" if ticket.order_type not in LIMIT_PRICED else "post_only", message
                )
        elif word == "limit_only":
            types = [t for t in types if t in LIMIT_PRICED]
            if ticket.order_type not in LIMIT_PRICED:
                check.add("order_type", message)
        else:
            types = []
            check.add(target, message)
    check.allowed_types = types
    check.allowed_tifs = tifs
